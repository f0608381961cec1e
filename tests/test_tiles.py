"""Tile-by-tile processing gives the whole-image result."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from dps_stages.background import subtract_background, subtract_background_tiled
from dps_stages.tiles import apply_tiled


def test_local_operator_tiled_equals_whole(rng):
    image = rng.random((2, 150, 170)).astype(np.float32)

    def blur(block):
        return ndi.uniform_filter(block, size=(1, 7, 7), mode="nearest")

    whole = blur(image)
    tiled = apply_tiled(image, blur, halo=3, tile=64).compute()
    # the outer border sees the same edge (no padding invented), the seams see real context
    np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("radius", "tile"), [(8, 64), (20, 96), (50, 256)])
def test_tiled_rolling_ball_equals_whole_image(rng, radius, tile):
    yy, xx = np.mgrid[:600, :520]
    image = 800 * np.exp(-((yy - 250) ** 2 + (xx - 180) ** 2) / 3e4) + 40 * rng.random(yy.shape)
    image = image.astype(np.float32)[None]
    whole = subtract_background(image, radius)
    tiled = subtract_background_tiled(image, radius, tile=tile)
    assert tiled.chunksize[-1] <= tile
    np.testing.assert_array_equal(tiled.compute(), whole)

"""The opt-in structures of dps_stages.simulate.structures_extra."""

from __future__ import annotations

import numpy as np
import pytest

from dps_stages.optics import Optics, fwhm
from dps_stages.simulate import ALL_STRUCTURES, EXTRA_STRUCTURES, STRUCTURES, simulate_dataset
from dps_stages.simulate.structures_extra import (
    bundles,
    cytoplasm,
    natural,
    network,
    render_rings,
    smooth_profile,
    varying_filaments,
)

OPTICS = Optics(wavelength=525.0, na=1.4, pixel_size=65.0)


def test_default_list_is_unchanged_and_extras_come_after():
    assert list(STRUCTURES) == ["microtubules", "ccps", "er", "actin"]
    assert list(ALL_STRUCTURES)[:4] == list(STRUCTURES)
    assert set(EXTRA_STRUCTURES).isdisjoint(STRUCTURES)


@pytest.mark.parametrize("name", sorted(EXTRA_STRUCTURES))
def test_every_extra_structure_renders_reproducibly(name):
    a = ALL_STRUCTURES[name]((192, 192), 16.25, np.random.default_rng(3))
    b = ALL_STRUCTURES[name]((192, 192), 16.25, np.random.default_rng(3))
    c = ALL_STRUCTURES[name]((192, 192), 16.25, np.random.default_rng(4))
    assert a.shape == (192, 192) and a.dtype == np.float32
    assert a.min() >= 0 and 0.2 < a.max() <= 1.0 + 1e-6
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_extra_structures_in_a_dataset_leave_the_default_samples_alone():
    kw = dict(levels=[30], seed=2, split="test")
    base = simulate_dataset(["er"], 1, 16, OPTICS, **kw)
    mixed = simulate_dataset(["rings", "er", "natural"], 1, 16, OPTICS, **kw)
    np.testing.assert_array_equal(mixed["raw"][1], base["raw"][0])
    assert mixed["structure"] == ["rings", "er", "natural"]


def test_smooth_profile_spans_its_range(rng):
    p = smooth_profile(rng, 500, 20.0, 0.3, 1.0)
    assert p.min() == pytest.approx(0.3) and p.max() == pytest.approx(1.0)
    assert np.abs(np.diff(p)).max() < 0.05  # smooth


def test_ring_radial_profile_peaks_at_its_radius():
    px, n = 8.0, 160
    img = render_rings((n, n), px, np.array([[80.0, 80.0]]), np.array([250.0]), [1.0], width=40)
    yy, xx = np.mgrid[:n, :n]
    r = np.hypot(yy - 80, xx - 80) * px
    bins = (r // 8).astype(int).ravel()
    profile = np.bincount(bins, img.ravel()) / np.bincount(bins)
    assert 8 * np.argmax(profile[:70]) + 4 == pytest.approx(250, abs=8)
    assert profile[:10].max() < 0.05 * profile.max()  # hollow


def _ridge(img: np.ndarray, px: float) -> tuple[np.ndarray, np.ndarray]:
    """Peak value and FWHM (nm) across a near-horizontal line, column by column."""
    peaks, widths = [], []
    for col in img.T[20:-20]:
        if col.max() < 0.05:
            continue
        peaks.append(col.max())
        widths.append(fwhm(col, px))
    return np.array(peaks), np.array(widths)


def test_filament_brightness_and_width_vary_within_the_stated_ranges():
    px, n = 8.0, 400
    img = varying_filaments((n, n), px, np.random.default_rng(0), density=1e-6,
                            width=(30.0, 90.0), brightness=(0.4, 1.0), persistence=1e9,
                            correlation=400.0)  # fmt: skip
    # one straight filament: rotate it to horizontal by its principal axis, then read the ridge
    ys, xs = np.nonzero(img > 0.1)
    cov = np.cov(np.stack([ys, xs]))
    angle = np.degrees(np.arctan2(*np.linalg.eigh(cov)[1][:, -1]))
    from scipy import ndimage

    flat = ndimage.rotate(img, -(90 - angle), reshape=True, order=1)
    if (flat > 0.1).sum(axis=1).max() < (flat > 0.1).sum(axis=0).max():
        flat = flat.T
    peaks, widths = _ridge(flat, px)
    assert peaks.size > 100
    rel = peaks / peaks.max()
    assert rel.min() == pytest.approx(0.4, abs=0.12)  # spans the stated brightness range
    assert widths.min() < 50 and widths.max() > 70
    assert widths.min() > 20 and widths.max() < 110


def test_bundle_members_are_separated_by_the_spacing():
    px, n = 5.0, 300
    img = bundles((n, n), px, np.random.default_rng(1), density=1e-6, size=(3, 3),
                  spacing=(60.0, 60.0), wander=0.0, persistence=1e9, width=20.0,
                  intensity=(1.0, 1.0))  # fmt: skip
    ys, xs = np.nonzero(img > 0.2)
    centre = np.array([ys.mean(), xs.mean()])
    direction = np.linalg.eigh(np.cov(np.stack([ys, xs])))[1][:, -1]
    normal = np.array([direction[1], -direction[0]])
    t = np.arange(-30, 30.01, 0.25)
    pts = centre[:, None] + normal[:, None] * t[None, :]
    from scipy.ndimage import map_coordinates

    prof = map_coordinates(img, pts, order=1)
    from scipy.signal import find_peaks

    idx, _ = find_peaks(prof, height=0.5 * prof.max())
    assert idx.size == 3
    np.testing.assert_allclose(np.diff(t[idx]) * px, 60.0, atol=6.0)


def test_network_is_denser_with_density():
    cover = [
        (network((256, 256), 16.25, np.random.default_rng(2), density=d) > 0.1).mean()
        for d in (20.0, 80.0)
    ]
    assert cover[1] > 2 * cover[0] > 0


def test_cytoplasm_is_a_low_level_background_inside_the_cell():
    rng = np.random.default_rng(5)
    bg = cytoplasm((256, 256), 16.25, rng, level=(0.1, 0.3), overlay=None)
    assert bg.max() <= 0.3 + 1e-6
    assert bg[:4, :4].max() < 0.02 and bg[-4:, -4:].max() < 0.02  # outside the cell
    inside = bg[96:160, 96:160]
    assert inside.min() >= 0.1 - 1e-3  # the mask covers the centre
    with_mt = cytoplasm((256, 256), 16.25, np.random.default_rng(5), level=(0.1, 0.3))
    assert with_mt.max() == pytest.approx(1.0, abs=1e-6)
    assert np.median(with_mt[96:160, 96:160]) >= 0.1 - 1e-3


@pytest.mark.parametrize("shape", [(128, 128), (96, 160)])
def test_natural_image_is_non_negative_with_the_requested_shape(shape):
    img = natural(shape, 16.25, np.random.default_rng(0), images=("camera", "coins"))
    assert img.shape == shape and img.dtype == np.float32
    assert img.min() >= 0 and img.max() == pytest.approx(1.0)
    assert img.std() > 0.02  # not flat

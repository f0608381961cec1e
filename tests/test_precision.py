"""Inference speed paths: batched tiles, bf16 autocast with channels_last, the fp32 path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dps_stages import inference, nets
from dps_stages.io import DpsInputError

TINY = {"width": 8, "depth": 2, "blocks": 1}


def _model(name: str = "resudbpn", seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return nets.build(name, nets.default_arch(name) | TINY).eval()


def _image(model: torch.nn.Module, seed: int = 1) -> np.ndarray:
    h = model.receptive_halo()
    rng = np.random.default_rng(seed)
    return rng.random((model.in_channels, 2 * h + 40, 4 * h + 22)).astype(np.float32)


@pytest.mark.parametrize("name", ["resudbpn", "denoise"])
def test_batched_tiles_equal_one_tile_per_pass(name):
    """Several tiles per forward pass give what one tile per pass gives (float rounding of a
    different convolution batch only), whatever the batch and the ragged last tiles."""
    model = _model(name)
    image = _image(model)
    tile = model.receptive_halo()
    one = np.asarray(inference.predict(model, image, tile=tile, batch=1))
    whole = np.asarray(inference.predict(model, image, tile=None))
    for batch in (2, 3, 16):
        many = np.asarray(inference.predict(model, image, tile=tile, batch=batch))
        assert many.shape == one.shape
        np.testing.assert_allclose(many, one, rtol=0, atol=1e-5 * np.ptp(one))
    np.testing.assert_allclose(one, whole, rtol=0, atol=1e-5 * np.ptp(whole))


def test_fp32_precision_is_the_exact_path():
    """``set_precision(model, 'fp32')`` returns to the plain float32 computation: the same
    output to float32 rounding (bit for bit in a fresh process; after other tests in the same
    process oneDNN may pick another convolution kernel, which reorders the sums)."""
    model = _model()
    image = _image(model)
    plain = np.asarray(inference.predict(model, image, tile=32))
    inference.set_precision(model, "bf16")
    inference.set_precision(model, "fp32")
    assert model.autocast_dtype is None
    again = np.asarray(inference.predict(model, image, tile=32))
    np.testing.assert_allclose(again, plain, rtol=0, atol=1e-5 * np.ptp(plain))


def test_bf16_output_is_within_tolerance_of_fp32():
    """bf16 autocast (8-bit mantissa, relative rounding 2**-9 per operation) on a random-weight
    Res-U-DBPN: the largest difference from float32 stays below 0.5 % of the output range
    (measured: about 7e-4 of it), and the mean difference below 0.05 %."""
    model = _model()
    image = _image(model)
    ref = np.asarray(inference.predict(model, image, tile=32, batch=2))
    inference.set_precision(model, "bf16")
    assert model.autocast_dtype is torch.bfloat16
    low = np.asarray(inference.predict(model, image, tile=32, batch=2))
    assert low.dtype == np.float32 and low.shape == ref.shape
    err = np.abs(low - ref)
    span = np.ptp(ref)
    assert err.max() < 5e-3 * span
    assert err.mean() < 5e-4 * span
    assert err.max() > 0  # it did compute in bf16


def test_precision_choice():
    cpu = torch.device("cpu")
    local, oidn = _model(), nets.build("oidn", nets.default_arch("oidn"))
    assert inference.autocast_dtype("fp32", cpu, local) is None
    assert inference.autocast_dtype("bf16", cpu, local) is torch.bfloat16
    assert inference.autocast_dtype("fp16", cpu, local) is torch.float16
    # auto: bf16 only where the CPU has it natively; never for a network with FFTs
    native = inference.cpu_supports_bf16()
    assert inference.autocast_dtype("auto", cpu, local) is (torch.bfloat16 if native else None)
    assert inference.autocast_dtype("auto", cpu, oidn) is None
    with pytest.raises(DpsInputError):
        inference.autocast_dtype("fp8", cpu, local)

"""The denoiser's error without ground truth (Monte-Carlo SURE of the mean frame's spectrum)
against the true error, and the Wiener stage's use of it."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from dps_stages import sim
from dps_stages.noise import NoiseModel
from dps_stages.optics import Optics
from dps_stages.sim.otf import periodic_spectra, preprocess
from dps_stages.sim.wiener import _auto_wiener
from dps_stages.simulate import simulate_sample
from dps_stages.sure import ErrorProfile, error_profile, sure_profile

OPTICS = Optics(wavelength=525.0, na=1.4, pixel_size=65.0)
CUTOFF = float(OPTICS.cutoff_per_pixel)
CAMERA = {"gain": 2.0, "offset": 100.0, "read_noise": 1.5}


def pixel_variance(y: np.ndarray, camera: dict) -> np.ndarray:
    return NoiseModel.from_calibration(camera).variance(y, np.float64)


def _acquisition(photons: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Poisson-Gaussian frames of a simulated SIM acquisition (ADU) and their expectation."""
    rng = np.random.default_rng(seed)
    clean = simulate_sample("microtubules", 128, OPTICS, rng, levels=[])["raw_clean"]
    g, b, s = CAMERA["gain"], CAMERA["offset"], CAMERA["read_noise"]
    expected = g * photons * clean.astype(np.float64) + b
    y = g * (rng.poisson(photons * clean) + s * rng.standard_normal(clean.shape)) + b
    return y, expected


def test_white_noise_profile_is_its_variance(rng):
    """The profile is white-noise-equivalent: white noise of variance 4 reads 4 in every ring."""
    profile = error_profile(2.0 * rng.standard_normal((9, 128, 128)))
    assert profile.band(CUTOFF) == pytest.approx(4.0, rel=0.05)
    full = profile.count > 200
    assert np.all(np.abs(profile.error[full] / 4.0 - 1) < 0.25)


def test_identity_denoiser_reads_the_raw_noise():
    """``f(y) = y``: the error is the noise, and SURE of it is the camera's variance (the
    residual is zero; the divergence term alone carries it)."""
    y, expected = _acquisition(100.0)
    var = pixel_variance(y, CAMERA)
    profile = sure_profile(lambda z: z, y, var, np.random.default_rng(1))
    truth = error_profile(y - expected).band(CUTOFF)
    assert profile.band(CUTOFF) == pytest.approx(truth, rel=0.1)
    assert profile.raw_variance == pytest.approx(np.mean((y - expected) ** 2), rel=0.05)


@pytest.mark.parametrize("photons", [20.0, 300.0])
def test_sure_matches_the_true_error_of_a_smoothing_denoiser(photons):
    """A Gaussian smoothing (sigma 1.5 pixels) keeps little noise but blurs the signal, more
    so at high signal; SURE, which never sees ``expected``, follows its true error in the
    Wiener band and over all rings, within 10 %."""
    y, expected = _acquisition(photons, seed=2)

    def smooth(z):
        return ndi.gaussian_filter(z, (0, 1.5, 1.5), mode="wrap")

    est = sure_profile(smooth, y, pixel_variance(y, CAMERA), np.random.default_rng(3))
    true = error_profile(smooth(y) - expected)
    assert est.band(CUTOFF) == pytest.approx(true.band(CUTOFF), rel=0.1)
    inner = est.count > 0
    total = np.sum(est.error[inner] * est.count[inner])
    assert total == pytest.approx(np.sum(true.error[inner] * true.count[inner]), rel=0.1)


def test_profile_round_trip_and_band_refusal():
    profile = error_profile(np.ones((9, 32, 32)))
    back = ErrorProfile.from_dict(profile.to_dict())
    np.testing.assert_allclose(back.error, profile.error, rtol=1e-5, atol=1e-9)
    with pytest.raises(ValueError, match="no ring"):
        profile.band(1e-4)


def test_noise_variance_sets_the_same_wiener_parameter_as_white_noise():
    """For raw frames (white noise) the Wiener parameter from the true noise variance equals
    the one measured beyond the OTF cutoff: the two noise levels are in the same units."""
    y, expected = _acquisition(100.0, seed=4)
    x = preprocess(y.astype(np.float32), background_percentile=0.5, normalise_intensity=True)
    spec, _ = periodic_spectra(x)
    measured = _auto_wiener(spec, CUTOFF, 1.0, True)
    given = _auto_wiener(spec, CUTOFF, 1.0, True, float(np.mean(pixel_variance(y, CAMERA))))
    assert given == pytest.approx(measured, rel=0.1)
    # and a larger variance gives a smoother reconstruction
    a = sim.reconstruct(y, OPTICS, noise_variance=float(np.mean((y - expected) ** 2)))[0]
    b = sim.reconstruct(y, OPTICS, noise_variance=16 * float(np.mean((y - expected) ** 2)))[0]
    assert np.std(np.diff(b, axis=1)) < np.std(np.diff(a, axis=1))


def _calibrated_acquisition(tmp_path):
    """One simulated raw acquisition (200 photons, 128 x 128) and its `dps calibrate` JSON."""
    from dps_stages.cli import main

    store, raw = tmp_path / "sim.zarr", tmp_path / "raw.zarr"
    argv = ["simulate", str(store), "--size", "128", "--n-per-structure", "1",
            "--structures", "microtubules", "--levels", "200", "--seed", "5"]  # fmt: skip
    assert main(argv) == 0
    assert main(["extract", str(store), "--level", "200", "--raw", str(raw)]) == 0
    calib = tmp_path / "calib.json"
    assert main(["calibrate", str(raw), str(calib), "--wavelength", "525", "--na", "1.4"]) == 0
    return raw, calib


def test_infer_writes_the_error_and_the_wiener_stage_reads_it(tmp_path, capsys):
    """`dps infer denoise --calibration` writes one error profile per acquisition (the raw
    variance that of the simulated camera), `dps sim-reconstruct` of its frames takes the
    profile's mid band as the noise variance; a bad calibration or another network is
    refused with the file named and nothing written."""
    import json

    import torch

    from dps_stages import io
    from dps_stages.cli import main
    from dps_stages.inference import save_model
    from dps_stages.nets import build

    raw, calib = _calibrated_acquisition(tmp_path)
    torch.manual_seed(0)
    model = tmp_path / "denoise"
    model.mkdir()
    arch = {"frames": 9, "width": 4, "depth": 1, "blocks": 1}
    save_model(model / "model.pt", "denoise", build("denoise", arch), {"origin": "test_sure"})
    dn = tmp_path / "dn.zarr"
    assert main(["infer", "denoise", str(raw), str(dn), "--model", str(model),
                 "--calibration", str(calib)]) == 0  # fmt: skip
    _, attrs = io.open_stage(dn)
    (profile,) = [ErrorProfile.from_dict(d) for d in attrs["denoise_error"]]
    frames = np.asarray(io.open_stage(raw)[0])[0].astype(np.float64)
    camera = json.loads(calib.read_text())["camera"]
    assert profile.raw_variance == pytest.approx(np.mean(pixel_variance(frames, camera)))
    out = tmp_path / "wiener.zarr"
    assert main(["sim-reconstruct", str(dn), str(out), "--wavelength", "525", "--na", "1.4"]) == 0
    _, sattrs = io.open_stage(out)
    assert sattrs["noise_variance"] == [pytest.approx(profile.band(CUTOFF))]
    figure = tmp_path / "error.png"
    assert main(["denoise-error", str(dn), str(calib), str(figure)]) == 0
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"pixel": 65}))
    for net, cal in (("denoise", bad), ("artifact", calib)):
        dst = tmp_path / f"refused_{net}.zarr"
        argv = ["infer", net, str(raw), str(dst), "--model", str(model), "--calibration", str(cal)]
        assert main(argv) != 0
        assert not dst.exists()
    err = capsys.readouterr().err
    assert str(bad) in err and "not a calibration" in err
    # an undetermined camera (frames too small to calibrate): no profile, a warning
    small = tmp_path / "small.json"
    small.write_text(json.dumps({"determined": False, "reason": "frames of 32 x 32 pixels"}))
    dst = tmp_path / "dn_small.zarr"
    assert main(["infer", "denoise", str(raw), str(dst), "--model", str(model),
                 "--calibration", str(small)]) == 0  # fmt: skip
    assert "denoise_error" not in io.open_stage(dst)[1]


def test_signal_outside_the_denoisers_training_range_is_warned(tmp_path, caplog):
    """A denoiser trained on 500-2000 photo-electrons warns on an acquisition of about 200
    (the calibrated signal), one trained on 50-800 does not."""
    import json

    import torch

    from dps_stages.cli import main
    from dps_stages.inference import save_model
    from dps_stages.nets import build
    from dps_stages.pairs import photon_range

    assert photon_range(
        {"levels": [20.0, 100.0], "microscope": {"randomise": {"photons": 0.0}}}
    ) == [20.0, 100.0]
    assert photon_range(
        {"levels": [20.0, 100.0], "microscope": {"randomise": {"photons": float(np.log(2))}}}
    ) == pytest.approx([10.0, 200.0])
    raw, calib = _calibrated_acquisition(tmp_path)
    (signal,) = json.loads(calib.read_text())["camera"]["photons"]
    torch.manual_seed(0)
    arch = {"frames": 9, "width": 4, "depth": 1, "blocks": 1}
    for span, warned in (([500.0, 2000.0], True), ([50.0, 800.0], False)):
        model = tmp_path / f"denoise_{span[0]:g}"
        model.mkdir()
        save_model(model / "model.pt", "denoise", build("denoise", arch),
                   {"data": {"photons": span}})  # fmt: skip
        caplog.clear()
        assert main(["infer", "denoise", str(raw), str(tmp_path / f"dn_{span[0]:g}.zarr"),
                     "--model", str(model), "--calibration", str(calib)]) == 0  # fmt: skip
        err = caplog.text
        assert ("the denoiser was trained on" in err) == warned, (signal, err[-500:])
        if warned:
            assert f"{signal:.3g}" in err and "500-2000" in err

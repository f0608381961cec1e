"""The denoiser's error measured without ground truth: Monte-Carlo SURE of the mean frame's
spectrum.

Stein's unbiased risk estimate (Stein, Ann. Stat. 9, 1135, 1981) for Gaussian noise ``y = x +
n``, ``n ~ N(0, Sigma)`` with ``Sigma`` diagonal, and any linear map ``A``:

``E ||A (f(y) - x)||^2 = E ||A (f(y) - y)||^2 - tr(A Sigma A^H) + 2 Re tr(A J_f Sigma A^H)``

with ``J_f`` the Jacobian of the denoiser ``f``. The divergence term is estimated by one
Monte-Carlo probe (Ramani, Blu & Unser, IEEE TIP 17, 1540, 2008): with ``e ~ N(0, Sigma)``,
``tr(A J_f Sigma A^H) = E[conj(A e) A J_f e]``, and ``J_f e`` is ``(f(y + d e) - f(y)) / d``
for a small ``d``. Here ``A`` is one Fourier coefficient ``k`` of the mean of the
nine frames (``A_k = (1/9) e^{-2 pi i k.r}`` on every frame), so each coefficient's error
power ``E |C_k|^2`` of the denoised mean frame is estimated, and averaged over rings of
``|k|`` (the probe's noise averages out over a ring's many coefficients). The noise term is
``tr(A_k Sigma A_k^H) = N mean(Sigma) / 9`` (``N`` pixels per frame).

The camera's Poisson-Gaussian noise is taken as Gaussian with the calibrated per-pixel
variance ``var = g (y - b)_+ + (g s_e)^2 + q`` (ADU; gain ``g``, offset ``b``, read noise
``s_e`` photo-electrons, ``q = 1/12`` for integer ADU; :class:`dps_stages.noise.NoiseModel`),
the usual heteroscedastic approximation (Foi et al., IEEE TIP 17, 1737, 2008), evaluated at
the data ``y``.

Each ring's power is written as the variance ``v`` per pixel and frame of white noise that
gives the same power (``v = 9 E|C_k|^2 / N``, ADU^2), so that it compares directly with the
raw frames' noise variance ``mean(var)``: the ratio is how many times the raw noise the
denoised frames still carry at that frequency. The Wiener SIM stage takes its noise level from
the mid band of this profile (:meth:`ErrorProfile.band`) instead of the spectrum beyond the
OTF cutoff, where a denoiser leaves nothing although its error inside the band is that of the
raw noise or more (benchmarks/RESULTS.md, issue 12).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CROP",
    "ErrorProfile",
    "error_profile",
    "plot_profiles",
    "sure_profile",
]

#: ring width of the profiles, cycles per camera pixel
BIN = 0.005
#: the band of the Wiener parameter's object power (``sim.wiener._auto_wiener``), times f_c
WIENER_BAND = (0.3, 0.6)


@dataclass(frozen=True)
class ErrorProfile:
    """Ring-averaged error power of the mean frame as white-noise-equivalent variance (ADU^2).

    ``error[j]`` is the mean over the coefficients with ``j BIN <= |k| < (j + 1) BIN`` (cycles
    per pixel; ``count[j]`` of them); ``raw_variance`` the raw frames' mean noise variance.
    """

    error: np.ndarray
    count: np.ndarray
    raw_variance: float

    def band(self, cutoff: float, lo: float = WIENER_BAND[0], hi: float = WIENER_BAND[1]) -> float:
        """Count-weighted mean of the rings whose centre lies in ``[lo, hi] cutoff``."""
        centre = (np.arange(self.error.size) + 0.5) * BIN
        keep = (centre >= lo * cutoff) & (centre <= hi * cutoff) & (self.count > 0)
        if not keep.any():
            raise ValueError(f"no ring between {lo} and {hi} of the cutoff {cutoff:.4g}")
        return float(np.sum(self.error[keep] * self.count[keep]) / np.sum(self.count[keep]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "bin": BIN,
            "error": [float(v) for v in self.error],  # full precision: any unit
            "count": [int(c) for c in self.count],
            "raw_variance": float(self.raw_variance),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ErrorProfile:
        if float(d.get("bin", BIN)) != BIN:
            raise ValueError(f"error profile with rings of {d.get('bin')}; expected {BIN}")
        return cls(np.asarray(d["error"], float), np.asarray(d["count"], int),
                   float(d["raw_variance"]))  # fmt: skip


def _rings(shape: tuple[int, int]) -> tuple[np.ndarray, int]:
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.fftfreq(shape[1])[None, :]
    idx = (np.hypot(fy, fx) / BIN).astype(np.int64)
    return idx.ravel(), int(idx.max()) + 1


def _ring_mean(power: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx, n = _rings(power.shape)
    count = np.bincount(idx, minlength=n)
    total = np.bincount(idx, weights=power.ravel(), minlength=n)
    return total / np.maximum(count, 1), count


def _mean_spectrum(frames: np.ndarray) -> np.ndarray:
    return np.fft.fft2(np.asarray(frames, np.float64).mean(axis=0))


def error_profile(error: np.ndarray, raw_variance: float = float("nan")) -> ErrorProfile:
    """The exact profile of a known error ``f(y) - x`` ``(9, y, x)`` (simulated data)."""
    n = error.shape[-2] * error.shape[-1]
    scale = error.shape[0] / n  # v = 9 |C_k|^2 / N for nine frames
    mean, count = _ring_mean(np.abs(_mean_spectrum(error)) ** 2 * scale)
    return ErrorProfile(mean, count, float(raw_variance))


def sure_profile(
    denoise: Callable[[np.ndarray], np.ndarray],
    y: np.ndarray,
    variance: np.ndarray,
    rng: np.random.Generator,
    step: float = 1e-3,
) -> ErrorProfile:
    """Monte-Carlo SURE of ``denoise`` on the frames ``y`` ``(9, y, x)`` whose noise variance
    per pixel is ``variance`` (:meth:`dps_stages.noise.NoiseModel.variance`); one probe,
    ``step`` (times the frames' range over the noise's rms) the finite difference of the
    divergence."""
    y = np.asarray(y, np.float64)
    n = y.shape[-2] * y.shape[-1]
    fy = np.asarray(denoise(y), np.float64)
    probe = rng.standard_normal(y.shape) * np.sqrt(variance)
    d = step * float(np.ptp(y)) / float(np.sqrt(np.mean(variance)))
    jprobe = (np.asarray(denoise(y + d * probe), np.float64) - fy) / d
    c_res = _mean_spectrum(fy - y)
    div = np.real(np.conj(_mean_spectrum(probe)) * _mean_spectrum(jprobe))
    power = np.abs(c_res) ** 2 - n * float(np.mean(variance)) / y.shape[0] + 2.0 * div
    mean, count = _ring_mean(power * (y.shape[0] / n))
    return ErrorProfile(mean, count, float(np.mean(variance)))


#: edge of the central crop SURE is measured on (pixels): enough rings' coefficients, and a
#: bounded cost (two passes of the denoiser) for any image size
CROP = 512


def plot_profiles(profiles: list[ErrorProfile], cutoff: float, path: str | Path) -> Path:
    """Figure: each acquisition's error profile over its raw noise variance against ``|k| /
    f_c``, the raw noise (1) and the Wiener band (:data:`WIENER_BAND`) marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dps_stages.plotting import save_png

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for i, p in enumerate(profiles):
        q = (np.arange(p.error.size) + 0.5) * BIN / cutoff
        keep = (p.count > 0) & (q <= 1.6)
        band = p.band(cutoff) / p.raw_variance
        ax.plot(q[keep], p.error[keep] / p.raw_variance,
                label=f"image {i}: Wiener band {band:.2f}")  # fmt: skip
    ax.axhline(1.0, color="k", lw=0.8, ls="--", label="raw noise")
    ax.axvspan(*WIENER_BAND, color="0.85", zorder=0, label="Wiener band")
    ax.axvline(1.0, color="0.5", lw=0.8)
    ax.set(xlabel="|f| / f_c", ylabel="denoised error / raw noise variance", yscale="log",
           title="The denoiser's error by SURE (no ground truth)")  # fmt: skip
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, path)

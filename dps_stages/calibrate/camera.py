"""Camera gain, offset and read noise from raw frames by photon transfer beyond the OTF cutoff.

Model (ADU): ``y = g (P(lambda) + e) + b`` with ``P`` Poisson photo-electrons, ``e ~ N(0,
s_e^2)`` read noise (electrons), ``g`` the gain (ADU per photo-electron) and ``b`` the offset,
so that per pixel ``mu = g lambda + b`` and

``var = g (mu - b) + sigma_r^2`` with ``sigma_r = g s_e`` (ADU), plus ``1/12`` for integer
ADU (quantisation); the third cumulant ``k3 = g^2 (mu - b)`` (Gaussian read noise has none).

The noise is measured where only noise lives: beyond the OTF cutoff ``f_c = 2 NA / lambda``
(Heintzmann, Relich, Nieuwenhuizen, Lidke & Rieger, arXiv:1611.05654, 2016). Each frame is
high-passed by the projection ``h`` onto ``|f| > 1.1 f_c``; over a tile, ``<hp^2> / sum h^2``
and ``<hp^3> / sum h^3`` estimate the mean pixel variance and third cumulant, and ``mu`` is
the tile mean. Tiles of all nine frames give the photon-transfer points ``(mu, var)``; a
weighted line ``var = g mu + v_0`` gives the gain ``g`` and the intercept ``v_0 = sigma_r^2
- g b``. From one acquisition ``b`` and ``sigma_r`` are *not* separately identifiable by the
variance alone (only ``v_0``); the extra information used is the third cumulant: with ``g``
known, ``b = <mu - k3 / g^2>`` (weighted to the dark tiles), then ``sigma_r^2 = v_0 + g b``.
Its noise grows as ``(mu - b)^(3/2)`` (the variance of a sample third cumulant is ``~6
var^3 / n``): with no dark tile (haze; the unlike benchmark at 300 photons, three fields
giving 92 +- 19, 38 +- 35 and 81 +- 16 ADU for 100, a scatter within their noise) it is
tens of ADU. It is then combined with two physical bounds, ``sigma_r^2 >= 0`` and ``b``
below the darkest tile (:func:`_constrained_offset`).
Assumptions: the signal is band-limited by the OTF (true for any fluorescence image sampled
finer than ``1 / (2.2 f_c)``), a spatially uniform gain and offset (sCMOS pixel maps are not
resolved), no excess noise (EMCCD would give ``2 g``). Uncertainties: bootstrap over tiles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from ..optics import Optics
from ._util import NOISE_Q, as_stack, q_grid, tile_means, wls

__all__ = ["CameraCalibration", "calibrate_camera"]


@dataclass
class CameraCalibration:
    """Camera model ``var = g (mu - b) + sigma_r^2`` (ADU); ``*_sigma``: 1-sigma uncertainty.

    ``read_noise`` is ``s_e = sigma_r / g`` in photo-electrons; ``intercept`` is ``v_0 =
    sigma_r^2 - g b`` (the part of the model one acquisition determines by the variance alone).
    ``photons``: per acquisition, the signal in photo-electrons at its brightest widefield
    pixels, ``(P_99.9(mean of the 9 frames, band-limited to the OTF) - b) / g`` (the 99.9th
    percentile a noise-robust stand-in for the brightest pixel, the simulator's signal level);
    empty without an offset.
    ``points`` (figure only, not written): ``(mu, var)`` of the tiles.
    """

    gain: float
    gain_sigma: float
    offset: float
    offset_sigma: float
    read_noise: float
    read_noise_sigma: float
    intercept: float
    n_tiles: int
    photons: list[float] = field(default_factory=list)
    quantisation: float = 1.0 / 12.0
    points: np.ndarray | None = field(default=None, repr=False)


def calibrate_camera(
    frames: Any,
    optics: Optics,
    *,
    tile: int = 32,
    n_boot: int = 100,
    seed: int = 0,
) -> CameraCalibration:
    """Gain, offset and read noise from raw frames by photon transfer beyond the OTF cutoff.

    See the module docstring (model ``var = g (mu - b) + sigma_r^2``, Heintzmann et al.,
    arXiv:1611.05654; offset from the third cumulant). ``frames``: ``(9, y, x)`` or ``(n, 9,
    y, x)`` in ADU. Raises ValueError when the region beyond ``1.1 f_c`` is too small (pixels
    coarser than about ``1 / (2.2 f_c)``).
    """
    arr = as_stack(frames).reshape(-1, *np.shape(frames)[-2:])
    ny, nx = arr.shape[-2:]
    _, _, q = q_grid((ny, nx), float(optics.cutoff_per_pixel))
    mask = q > NOISE_Q
    frac = float(mask.mean())
    if frac < 0.05:
        raise ValueError(
            f"too little of the spectrum lies beyond the OTF cutoff (cutoff "
            f"{optics.cutoff_per_pixel:.3f} cycles/pixel) to measure the camera noise"
        )
    h = np.fft.ifft2(mask).real
    h2, h3 = float((h * h).sum()), float((h**3).sum())
    spec = np.fft.fft2(arr)
    hp = np.fft.ifft2(spec * mask).real
    mu = tile_means(arr, tile).ravel()
    var = (tile_means(hp * hp, tile) / h2).ravel()
    k3 = (tile_means(hp**3, tile) / h3).ravel()
    integer = bool(np.all(arr == np.round(arr)))
    # drop saturated or empty tiles
    top = float(arr.max())
    sat = (tile_means((arr >= top).astype(float), tile).ravel() > 0) & (top > 0)
    keep = np.isfinite(var) & (var > 0) & ~(sat & (top in (255.0, 4095.0, 65535.0)))
    mu, var, k3 = mu[keep], var[keep], k3[keep]
    n_pix = tile * tile * frac

    def fit(idx: np.ndarray) -> tuple[float, float, float]:
        m, v, c = mu[idx], var[idx], k3[idx]
        g, v0 = wls(m, v, np.ones_like(m))
        for _ in range(3):  # weights 1 / Var[v] = n / (2 v_model^2); reject 5-sigma outliers
            vm = np.maximum(g * m + v0, 1e-6 * max(float(v.mean()), 1e-12))
            r = (v - vm) * np.sqrt(n_pix / 2.0) / vm
            w = (np.abs(r) < 5.0) / vm**2
            g, v0 = wls(m, v, w)
        vm = np.maximum(g * m + v0, 1e-12)
        # offset: k3 = g^2 (mu - b); Var[k3] ~ 6 v^3 / n, so weights 1 / v^3
        wb = (np.abs((v - vm) / vm) * np.sqrt(n_pix / 2.0) < 5.0) / vm**3
        b = float((wb * (m - c / max(g * g, 1e-12))).sum() / max(wb.sum(), 1e-300))
        return g, v0, b

    g, v0, b = fit(np.arange(mu.size))
    rng = np.random.default_rng(seed)
    boot = np.array([fit(rng.integers(0, mu.size, mu.size)) for _ in range(n_boot)])
    quant = 1.0 / 12.0 if integer else 0.0
    b_sig = float(boot[:, 2].std())
    b, b_sig, rn, rn_sig = _constrained_offset(g, v0, b, b_sig, boot, quant, mu, var, n_pix)
    return CameraCalibration(
        gain=g,
        gain_sigma=float(boot[:, 0].std()),
        offset=b,
        offset_sigma=b_sig,
        read_noise=rn,
        read_noise_sigma=rn_sig,
        intercept=v0,
        n_tiles=int(mu.size),
        photons=_signal_photons(spec, g, b, q < 1.0),
        quantisation=quant,
        points=np.stack([mu, var]),
    )


#: the percentile of the widefield that stands for its brightest pixel (``photons``)
SIGNAL_PERCENTILE = 99.9


def _signal_photons(spec: np.ndarray, g: float, b: float, band: np.ndarray) -> list[float]:
    """Per acquisition of 9 frames (their spectra ``spec``), ``(P_99.9(widefield) - b) / g``
    photo-electrons, the widefield projected onto the OTF support ``band`` first: the signal
    is band-limited, so this removes the noise beyond the cutoff, which would raise the
    percentile, and keeps the signal."""
    if not (np.isfinite(b) and g > 0) or spec.shape[0] % 9:
        return []
    wide = np.fft.ifft2(spec.reshape(-1, 9, *spec.shape[-2:]).mean(axis=1) * band).real
    return [float((np.percentile(w, SIGNAL_PERCENTILE) - b) / g) for w in wide]


def _constrained_offset(
    g: float,
    v0: float,
    b_k3: float,
    s_k3: float,
    boot: np.ndarray,
    quant: float,
    mu: np.ndarray,
    var: np.ndarray,
    n_pix: float,
) -> tuple[float, float, float, float]:
    """Offset and read noise: the third-cumulant estimate within the physical bounds.

    The third-cumulant offset ``b_k3 +- s_k3`` (module docstring) is unbiased but its noise
    grows as ``(mu - b)^(3/2)``: where no tile is dark (haze, a bright field) it reaches tens
    of ADU. Two physical facts bound ``b``: the read-noise variance is not negative,
    ``sigma_r^2 = v_0 + g b - 1/12 >= 0``, i.e. ``b >= (1/12 - v_0) / g`` (tight when the read
    noise is small against ``g b``), and no tile is darker than the offset, ``b <= min mu +
    3 sigma_mu`` (``sigma_mu^2 = v / (tile area)``, the tile mean's noise). The posterior of
    ``b`` under a flat prior is ``N(b; b_k3, s_k3^2) Phi((v_0 + g b - 1/12) / s_v)`` on ``b
    <= min mu + 3 sigma_mu``, with ``s_v`` the bootstrap spread of ``v_0 + g b`` at fixed
    ``b`` (the bound's own uncertainty); the offset is its mean, the uncertainty its standard
    deviation, and the read noise ``s_e = sqrt(max(v_0 + g b - 1/12, 0)) / g`` its posterior
    mean and standard deviation. Where dark tiles determine ``b`` (``s_k3`` small) the bounds
    lie far away and the estimate is ``b_k3``. No prior on the read noise beyond ``>= 0``.
    """
    if not (np.isfinite(b_k3) and np.isfinite(s_k3) and s_k3 > 0 and g > 0):
        rn = float(np.sqrt(max(v0 + g * b_k3 - quant, 0.0)) / max(g, 1e-12))
        return b_k3, s_k3, rn, float("nan")
    dark = int(np.argmin(mu))
    upper = float(mu[dark] + 3.0 * np.sqrt(max(var[dark], 0.0) / max(n_pix, 1.0)))
    s_v = float(np.std(boot[:, 1] + boot[:, 0] * b_k3))
    s_v = max(s_v, 1e-6 * max(abs(v0), 1.0))
    lo = min(b_k3 - 6.0 * s_k3, (quant - v0) / g - 6.0 * s_v / g)
    hi = min(b_k3 + 6.0 * s_k3, upper)
    if not hi > lo:
        rn = float(np.sqrt(max(v0 + g * b_k3 - quant, 0.0)) / g)
        return b_k3, s_k3, rn, float("nan")
    grid = np.linspace(lo, hi, 2001)
    logp = -0.5 * ((grid - b_k3) / s_k3) ** 2 + stats.norm.logcdf((v0 + g * grid - quant) / s_v)
    w = np.exp(logp - logp.max())
    w /= w.sum()
    b = float((w * grid).sum())
    b_sig = float(np.sqrt((w * (grid - b) ** 2).sum()))
    rn_grid = np.sqrt(np.maximum(v0 + g * grid - quant, 0.0)) / g
    rn = float((w * rn_grid).sum())
    # spread over b, and that of (g, v_0) at the estimate (bootstrap)
    rn_boot = np.sqrt(np.maximum(boot[:, 1] + boot[:, 0] * b - quant, 0.0)) / boot[:, 0]
    rn_sig = float(np.sqrt((w * (rn_grid - rn) ** 2).sum() + rn_boot.var()))
    return b, b_sig, rn, rn_sig

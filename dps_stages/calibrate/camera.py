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
Assumptions: the signal is band-limited by the OTF (true for any fluorescence image sampled
finer than ``1 / (2.2 f_c)``), a spatially uniform gain and offset (sCMOS pixel maps are not
resolved), no excess noise (EMCCD would give ``2 g``). Uncertainties: bootstrap over tiles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..optics import Optics
from ._util import NOISE_Q, as_stack, q_grid, tile_means, wls

__all__ = ["CameraCalibration", "calibrate_camera"]


@dataclass
class CameraCalibration:
    """Camera model ``var = g (mu - b) + sigma_r^2`` (ADU); ``*_sigma``: 1-sigma uncertainty.

    ``read_noise`` is ``s_e = sigma_r / g`` in photo-electrons; ``intercept`` is ``v_0 =
    sigma_r^2 - g b`` (the part of the model one acquisition determines by the variance alone).
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
    hp = np.fft.ifft2(np.fft.fft2(arr) * mask).real
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

    def read_e(gg: float, vv: float, bb: float) -> float:
        return float(np.sqrt(max(vv + gg * bb - quant, 0.0)) / max(gg, 1e-12))

    rn = read_e(g, v0, b)
    rn_boot = np.array([read_e(*row) for row in boot])
    return CameraCalibration(
        gain=g,
        gain_sigma=float(boot[:, 0].std()),
        offset=b,
        offset_sigma=float(boot[:, 2].std()),
        read_noise=rn,
        read_noise_sigma=float(rn_boot.std()),
        intercept=v0,
        n_tiles=int(mu.size),
        points=np.stack([mu, var]),
    )

"""Comparison with a reference: PSNR, SSIM and NRMSE under one fixed protocol.

The protocol (docs/metrics.md) is the same for every figure of the project: percentile
normalisation of both images, least-squares scale and offset of the candidate, scikit-image
scores with data range 1.
"""

from __future__ import annotations

import math

import numpy as np
from skimage.metrics import (
    normalized_root_mse,
    peak_signal_noise_ratio,
    structural_similarity,
)

from dps_stages.metrics._common import as_2d


def normalise_percentile(image: np.ndarray, low: float = 0.1, high: float = 99.9) -> np.ndarray:
    """``clip((x - p_low) / (p_high - p_low), 0, 1)`` as float32.

    ``p_low``, ``p_high``: the ``low``-th and ``high``-th percentiles of ``x`` (numpy's
    linear interpolation). A flat percentile window (``p_high == p_low``) gives ``x > p_low``
    as 0/1: all zeros for a constant image.
    """
    x = as_2d(image)
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"need 0 <= low < high <= 100; got low={low}, high={high}")
    p_low, p_high = np.percentile(x, [low, high])
    span = p_high - p_low
    if span <= 0:
        return (x > p_low).astype(np.float32)
    return np.clip((x - p_low) / span, 0.0, 1.0).astype(np.float32)


def _affine(c: np.ndarray, r: np.ndarray) -> tuple[float, float]:
    """Least-squares ``(a, b)`` of ``r ~ a c + b``; ``a = 0``, ``b = mean(r)`` for a constant c."""
    c_mean = float(c.mean())
    r_mean = float(r.mean())
    dc = (c - c_mean).ravel()
    var = float(np.dot(dc, dc))
    if var == 0.0:
        return 0.0, r_mean
    a = float(np.dot(dc, (r - r_mean).ravel())) / var
    return a, r_mean - a * c_mean


def fit_scale_offset(candidate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Least-squares affine fit ``a c + b`` of the candidate ``c`` to the reference ``r``.

    ``a = cov(c, r) / var(c)``, ``b = mean(r) - a mean(c)``; a constant candidate gets
    ``a = 0``, ``b = mean(r)``. Returns float64.
    """
    c = as_2d(candidate, "candidate")
    r = as_2d(reference, "reference")
    if c.shape != r.shape:
        raise ValueError(f"shapes differ: candidate {c.shape} vs reference {r.shape}")
    a, b = _affine(c, r)
    if a == 0.0:
        return np.full_like(c, b)
    return a * c + b


def compare(candidate: np.ndarray, reference: np.ndarray, *, fit: str = "all") -> dict[str, float]:
    """PSNR, SSIM and NRMSE of a candidate against a reference (the project's protocol).

    Both images go through :func:`normalise_percentile` (0.1, 99.9); the candidate is then
    fitted by :func:`fit_scale_offset` (not clipped), ``fit="all"``. For a reference clipped
    at its floor (a real SIM reference that is 0 over much of its area), ``fit="censored"``
    fits scale and offset only where the normalised reference is above 0 (the censored pixels
    would bias the fitted background upwards, which SSIM's luminance term punishes) and clips
    the fitted candidate to [0, 1] like the reference. ``psnr = 10 log10(1 / MSE)`` (``inf``
    when equal); ``ssim``: :func:`skimage.metrics.structural_similarity`, data range 1,
    7 x 7 uniform window (Wang et al., IEEE TIP 13, 600-612, 2004);
    ``nrmse = ||r - c||_2 / ||r||_2``. Returns ``{"psnr", "ssim", "nrmse"}``; raises
    ValueError on differing shapes or non-2D input.
    """
    c_raw = np.asarray(candidate)
    r_raw = np.asarray(reference)
    if c_raw.shape != r_raw.shape:
        raise ValueError(f"shapes differ: candidate {c_raw.shape} vs reference {r_raw.shape}")
    ref = normalise_percentile(r_raw).astype(np.float64)
    if fit == "all":
        cand = fit_scale_offset(normalise_percentile(c_raw), ref)
    elif fit == "censored":
        keep = ref > 0
        if keep.sum() < 2:
            raise ValueError("fit='censored': the reference has fewer than 2 pixels above 0")
        c = normalise_percentile(c_raw).astype(np.float64)
        a, b = _affine(c[keep], ref[keep])
        cand = np.clip(a * c + b, 0.0, 1.0)
    else:
        raise ValueError(f"fit must be 'all' or 'censored'; got {fit!r}")
    mse = float(np.mean((ref - cand) ** 2))
    if mse == 0.0:
        psnr = math.inf
    else:
        psnr = float(peak_signal_noise_ratio(ref, cand, data_range=1.0))
    ssim = float(structural_similarity(ref, cand, data_range=1.0))
    if not np.any(ref):
        nrmse = 0.0 if mse == 0.0 else math.inf
    else:
        nrmse = float(normalized_root_mse(ref, cand, normalization="euclidean"))
    return {"psnr": psnr, "ssim": ssim, "nrmse": nrmse}

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


def fit_scale_offset(candidate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Least-squares affine fit ``a c + b`` of the candidate ``c`` to the reference ``r``.

    ``a = cov(c, r) / var(c)``, ``b = mean(r) - a mean(c)``; a constant candidate gets
    ``a = 0``, ``b = mean(r)``. Returns float64.
    """
    c = as_2d(candidate, "candidate")
    r = as_2d(reference, "reference")
    if c.shape != r.shape:
        raise ValueError(f"shapes differ: candidate {c.shape} vs reference {r.shape}")
    c_mean = c.mean()
    r_mean = r.mean()
    dc = c - c_mean
    var = float(np.dot(dc.ravel(), dc.ravel()))
    if var == 0.0:
        return np.full_like(c, r_mean)
    a = float(np.dot(dc.ravel(), (r - r_mean).ravel())) / var
    b = r_mean - a * c_mean
    return a * c + b


def compare(candidate: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """PSNR, SSIM and NRMSE of a candidate against a reference (the project's protocol).

    Both images go through :func:`normalise_percentile` (0.1, 99.9); the candidate is then
    fitted by :func:`fit_scale_offset` (not clipped). ``psnr = 10 log10(1 / MSE)`` (``inf``
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
    cand = fit_scale_offset(normalise_percentile(c_raw), ref)
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

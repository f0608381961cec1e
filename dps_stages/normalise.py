"""The intensity normalisation of the networks: ``x_n = (x - p_lo) / (p_hi - p_lo)``.

``p_lo``, ``p_hi`` are the 0.1 and 99.9 percentiles of the whole image (of the 9-frame stack
for raw frames; for images over 4 Mpixel a regular sub-sample of about 4 M pixels), the same
at training (:mod:`dps_stages.pairs`) and at inference (:mod:`dps_stages.inference`). Imports
nothing else of ``dps_stages``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["NORM_PERCENTILES", "normalise", "percentile_range"]

#: intensity percentiles of the input normalisation
NORM_PERCENTILES = (0.1, 99.9)
#: above this many pixels per image the percentiles come from a regular sub-sample
_PERCENTILE_SAMPLES = 4_000_000


def percentile_range(image: np.ndarray | Any) -> tuple[float, float]:
    """The normalisation's (p_lo, p_hi) over all pixels of ``image`` (any shape)."""
    step = 1
    n = int(np.prod(image.shape))
    if n > _PERCENTILE_SAMPLES:
        step = int(np.ceil(np.sqrt(n / _PERCENTILE_SAMPLES)))
    sample = image[..., ::step, ::step]
    values = np.asarray(sample, dtype=np.float64).ravel()
    lo, hi = np.percentile(values, NORM_PERCENTILES)
    if not hi > lo:  # a flat image: unit range, so that it maps to a constant
        hi = lo + 1.0
    return float(lo), float(hi)


def normalise(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return ((np.asarray(x, dtype=np.float32) - lo) / (hi - lo)).astype(np.float32)

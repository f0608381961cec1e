"""Image quality metrics: comparison with a reference, and resolution without one.

* :func:`compare` (``comparison``): PSNR, SSIM, NRMSE under the project's fixed protocol;
* :func:`decorrelation` (``decorrelation_analysis``): single-image resolution, Descloux,
  Grussmayer & Radenovic, Nature Methods 16, 918-924 (2019);
* :func:`frc` (``fourier_ring``): resolution from two independent acquisitions.

Protocols, derivations and caveats: docs/metrics.md.
"""

from dps_stages.metrics._common import apodise
from dps_stages.metrics.comparison import compare, fit_scale_offset, normalise_percentile
from dps_stages.metrics.decorrelation_analysis import (
    DCORR_MIN_AMPLITUDE,
    DecorrelationResult,
    decorrelation,
)
from dps_stages.metrics.fourier_ring import FRCResult, frc

__all__ = [
    "DCORR_MIN_AMPLITUDE",
    "DecorrelationResult",
    "FRCResult",
    "apodise",
    "compare",
    "decorrelation",
    "fit_scale_offset",
    "frc",
    "normalise_percentile",
]

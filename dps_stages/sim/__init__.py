"""2D-SIM reconstruction (Gustafsson, J. Microsc. 198, 82, 2000), after fairSIM (Mueller et
al., Nat. Commun. 7, 10980, 2016).

Raw frames ``D_ap = h * (x (1 + m_a cos(2 pi k_a . r + phi_ap)))``, 3 angles x 3 phases
(:class:`dps_stages.physics.SIMIllumination`). :mod:`.estimation` finds ``k_a``, ``phi_ap``,
``m_a``; :mod:`.otf` models ``h``'s transfer function; :mod:`.reconstruction` separates,
shifts and combines the bands by the generalised Wiener filter on the 2x grid, one step a
function of :mod:`.wiener`. Theory and conventions: ``docs/sim.md``.
"""

from .estimation import SIMParameters, estimate_parameters, estimate_parameters_pooled
from .otf import otf_values, periodic_smooth_decomposition, periodic_spectra, preprocess
from .reconstruction import reconstruct, reconstruct_stack
from .wiener import fourier_upsample

__all__ = [
    "SIMParameters",
    "estimate_parameters",
    "estimate_parameters_pooled",
    "fourier_upsample",
    "otf_values",
    "periodic_smooth_decomposition",
    "periodic_spectra",
    "preprocess",
    "reconstruct",
    "reconstruct_stack",
]

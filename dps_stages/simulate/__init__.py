"""Synthetic ground truth (:mod:`.structures`, opt-in :mod:`.structures_extra`), the 2D-SIM
forward model (:mod:`.forward`) and a microscope beyond the ideal one (:mod:`.microscope`).

Frame ``(a, p)`` of a simulated acquisition is ``S_4[h * (x (1 + m cos(2 pi k_a . r +
phi_ap)))]`` (Gustafsson, J. Microsc. 198, 82, 2000), ``x`` a structure on a grid 4x finer
than the camera; see the two modules for the details.
"""

from ..optics import Optics
from .forward import (
    ARRAY_ATTRS,
    MICROSCOPE_DEFAULTS,
    SPLIT_IDS,
    SIMPattern,
    bin_image,
    random_pattern,
    sim_frames,
    simulate_dataset,
    simulate_sample,
    widefield,
    write_dataset,
)
from .microscope import (
    CALIBRATED_RANDOMISE,
    RANDOMISE_KEYS,
    covering_levels,
    microscope_otf,
    photon_spread,
    sim_passband_truth,
    simulate_kwargs_from_calibration,
)
from .structures import (
    FINE_FACTOR,
    STRUCTURES,
    actin,
    clathrin_pits,
    draw_pits,
    er,
    microtubules,
    render_pits,
)
from .structures_extra import ALL_STRUCTURES, EXTRA_STRUCTURES

__all__ = [
    "CALIBRATED_RANDOMISE",
    "ALL_STRUCTURES",
    "ARRAY_ATTRS",
    "EXTRA_STRUCTURES",
    "FINE_FACTOR",
    "MICROSCOPE_DEFAULTS",
    "RANDOMISE_KEYS",
    "SPLIT_IDS",
    "STRUCTURES",
    "Optics",
    "SIMPattern",
    "actin",
    "bin_image",
    "clathrin_pits",
    "covering_levels",
    "draw_pits",
    "er",
    "microscope_otf",
    "microtubules",
    "photon_spread",
    "random_pattern",
    "render_pits",
    "sim_frames",
    "sim_passband_truth",
    "simulate_dataset",
    "simulate_kwargs_from_calibration",
    "simulate_sample",
    "widefield",
    "write_dataset",
]

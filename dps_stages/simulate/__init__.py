"""Synthetic ground truth (:mod:`.structures`) and the 2D-SIM forward model (:mod:`.forward`).

Frame ``(a, p)`` of a simulated acquisition is ``S_4[h * (x (1 + m cos(2 pi k_a . r +
phi_ap)))]`` (Gustafsson, J. Microsc. 198, 82, 2000), ``x`` a structure on a grid 4x finer
than the camera; see the two modules for the details.
"""

from ..optics import Optics
from .forward import (
    SPLIT_IDS,
    SIMPattern,
    bin_image,
    random_pattern,
    sim_frames,
    simulate_dataset,
    simulate_sample,
    widefield,
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

__all__ = [
    "FINE_FACTOR",
    "SPLIT_IDS",
    "STRUCTURES",
    "Optics",
    "SIMPattern",
    "actin",
    "bin_image",
    "clathrin_pits",
    "draw_pits",
    "er",
    "microtubules",
    "random_pattern",
    "render_pits",
    "sim_frames",
    "simulate_dataset",
    "simulate_sample",
    "widefield",
]

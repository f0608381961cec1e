"""Calibration of a 2D-SIM microscope from its own raw frames: camera, pattern, OTF, haze.

Everything is estimated from the nine raw frames of one or more acquisitions, with no
calibration images and no reference reconstruction.

Modules (each documents its model, formula and references):

* :mod:`.camera`: gain, offset, read noise (:func:`calibrate_camera`);
* pattern: :func:`dps_stages.sim.estimate_parameters` (wave vectors, phases, modulation);
* :mod:`.otf`: the OTF attenuation ``a`` of ``O_ideal(q) a^q`` (:func:`calibrate_otf`);
* :mod:`.pupil`: the pupil's astigmatism, coma and spherical aberration, fitted with the
  attenuation to the 2-D band overlap (:func:`calibrate_pupil`);
* :mod:`.haze`: out-of-focus background level and scale (:func:`calibrate_haze`, through
  the fitted pupil's OTF where there is one);
* :mod:`.core`: :func:`calibrate` (all of them), :func:`calibrated_sim_settings`,
  :func:`write_calibration`; :mod:`.figure`: :func:`plot_calibration`.
"""

from .camera import CameraCalibration, calibrate_camera
from .core import (
    Calibration,
    calibrate,
    calibrated_sim_settings,
    resolve_sim_settings,
    significant_aberration,
    undetermined,
    write_calibration,
)
from .figure import plot_calibration
from .haze import HazeCalibration, calibrate_haze
from .otf import OTFCalibration, calibrate_otf
from .pupil import PupilCalibration, calibrate_pupil

__all__ = [
    "Calibration",
    "CameraCalibration",
    "HazeCalibration",
    "OTFCalibration",
    "PupilCalibration",
    "calibrate",
    "calibrate_camera",
    "calibrate_haze",
    "calibrate_otf",
    "calibrate_pupil",
    "calibrated_sim_settings",
    "plot_calibration",
    "resolve_sim_settings",
    "significant_aberration",
    "undetermined",
    "write_calibration",
]

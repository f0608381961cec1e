"""All estimates together: :class:`Calibration`, :func:`calibrate`, the Wiener settings and JSON."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..optics import Optics
from ..sim import SIMParameters, estimate_parameters_pooled
from ._util import MIN_SIZE, as_stack
from .camera import CameraCalibration, calibrate_camera
from .haze import HazeCalibration, calibrate_haze
from .otf import OTFCalibration, calibrate_otf
from .pupil import ABERRATION_FLOOR, DELTA_CHI2_MIN, PupilCalibration, calibrate_pupil

log = logging.getLogger("dps.calibrate")

__all__ = [
    "Calibration",
    "calibrate",
    "calibrated_sim_settings",
    "resolve_sim_settings",
    "undetermined",
    "write_calibration",
]


@dataclass
class Calibration:
    """Everything :func:`calibrate` estimates from a dataset's raw frames.

    ``pattern_sigma``: the pattern's 1-sigma noise from the estimator itself
    (:func:`dps_stages.sim.estimate_parameters_pooled`): ``k_sigma`` ``(n, 3, 2)`` cycles per
    pixel, ``phase_sigma`` ``(n, 3, 3)`` rad (each frame's own noise and that of ``k``),
    ``pooled`` (per angle: one ``k`` for all fields). Noise only: systematic errors (an
    aberrated pupil's OTF phase) are not in it.
    """

    optics: Optics
    camera: CameraCalibration
    pattern: list[SIMParameters]
    otf: OTFCalibration
    haze: HazeCalibration
    seconds: float
    pattern_sigma: dict[str, Any] | None = None
    pupil: PupilCalibration | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (figure-only arrays left out)."""

        def strip(obj: Any, drop: tuple[str, ...]) -> dict[str, Any]:
            d = asdict(obj)
            return {k: v for k, v in d.items() if k not in drop}

        return {
            "optics": self.optics.to_dict(),
            "camera": strip(self.camera, ("points",)),
            "pattern": [p.to_dict() for p in self.pattern],
            "pattern_sigma": {
                k: np.asarray(v).tolist() for k, v in (self.pattern_sigma or {}).items()
            },
            "otf": strip(self.otf, ("ratio", "radial")),
            "haze": strip(self.haze, ("map",)),
            "pupil": _pupil_dict(self.pupil),
            "sim_settings": calibrated_sim_settings(self, self.optics),
            "seconds": self.seconds,
        }


def _pupil_dict(pupil: PupilCalibration | None) -> dict[str, Any] | None:
    """The pupil's JSON record (Noll indices as strings), None when there is none."""
    if pupil is None:
        return None
    d = {k: v for k, v in asdict(pupil).items() if k != "otf"}
    for key in ("aberration", "aberration_sigma"):
        d[key] = {str(j): v for j, v in d[key].items()}
    d["determined"] = pupil.determined
    return d


def calibrate(frames: Any, optics: Optics, *, seed: int = 0) -> Calibration:
    """Camera, pattern, OTF, pupil and haze of a dataset from its raw frames (module docstring).

    ``frames``: ``(9, y, x)`` or ``(n, 9, y, x)`` raw 2D-SIM frames in ADU, angle-major. The
    ``n`` fields are taken as one session: their wave vectors are pooled where they agree
    (:func:`dps_stages.sim.estimate_parameters_pooled`).
    """
    t0 = time.perf_counter()
    arr = as_stack(frames)
    camera = calibrate_camera(arr, optics, seed=seed)
    params, info = estimate_parameters_pooled(arr, optics, full_output=True)
    b = camera.offset if np.isfinite(camera.offset) else None
    otf = calibrate_otf(arr, optics, params, offset=b)
    pupil = calibrate_pupil(arr, optics, params, offset=b, attenuation=otf.attenuation)
    # the haze through the fitted pupil only where the aberration is real (else the ideal OTF
    # as before: a spurious pupil fit would move the level for nothing)
    aberrated = pupil if significant_aberration(pupil) else None
    haze = calibrate_haze(arr, optics, params, otf, offset=b, pupil=aberrated)
    return Calibration(
        optics=optics,
        camera=camera,
        pattern=params,
        otf=otf,
        haze=haze,
        seconds=time.perf_counter() - t0,
        pattern_sigma=info,
        pupil=pupil,
    )


def calibrated_sim_settings(
    calib: Calibration, optics: Optics | None = None, *, max_rel_sigma: float = 1.0
) -> dict[str, float]:
    """Wiener settings of :func:`dps_stages.sim.reconstruct` from a calibration.

    ``otf_decay``: the fitted attenuation ``a``, converted to ``optics`` when its cutoff
    differs from the calibration's (``a^(f / f_c) = a'^(f / f_c')`` gives ``a' = a^(f_c' /
    f_c)``). When ``a`` is not determined (nan, or its relative uncertainty ``sigma_a / a``
    above ``max_rel_sigma``: too little signal in the band overlap) the ideal OTF (1) is kept.
    ``pupil`` (only when a term is significant, :func:`significant_aberration`): the pupil's
    Zernike terms (waves rms on the unit pupil, the same for any optics), with ``a`` from the
    radial fit (the pupil fit's own ``a`` trades off against spherical aberration at low
    signal). Everything else stays at the reconstruction's defaults.
    """
    out: dict[str, Any] = {"otf_decay": _otf_decay(calib.otf, calib.optics, optics, max_rel_sigma)}
    pupil = significant_aberration(calib.pupil)
    if pupil:
        out["pupil"] = {str(j): c for j, c in pupil.items()}
    return out


def significant_aberration(
    pupil: PupilCalibration | None, sigmas: float = 3.0, floor: float = ABERRATION_FLOOR
) -> dict[int, float]:
    """The fitted pupil's Zernike terms at least ``sigmas`` standard errors and ``floor``
    waves from 0, when the aberration as a whole improves the fit by ``DELTA_CHI2_MIN`` (none
    when the pupil is not determined): what the Wiener stage and the simulator take from it.
    Both tests are needed besides the standard error: near 0 an even term changes the OTF only
    to second order, so its linearised error is too small there (:mod:`.pupil`)."""
    if pupil is None or not pupil.determined or not pupil.delta_chi2 >= DELTA_CHI2_MIN:
        return {}
    return {
        int(j): float(c)
        for j, c in pupil.aberration.items()
        if np.isfinite(c) and np.isfinite(pupil.aberration_sigma[j])
        and abs(c) >= max(sigmas * pupil.aberration_sigma[j], floor)
    }  # fmt: skip


def _otf_decay(
    otf: OTFCalibration, fitted: Optics, optics: Optics | None, max_rel_sigma: float = 1.0
) -> float:
    """``a`` of ``otf`` on the cutoff of ``optics``; 1 (the ideal OTF) when undetermined."""
    a, s = otf.attenuation, otf.attenuation_sigma
    if not (np.isfinite(a) and a > 0 and np.isfinite(s) and s / a <= max_rel_sigma):
        return 1.0
    a = min(float(a), 1.0)
    if optics is not None:
        a = a ** (optics.cutoff / fitted.cutoff)
    return float(a)


def resolve_sim_settings(
    sim_kw: dict[str, Any] | None,
    frames: Any,
    optics: Optics,
    *,
    calibration: str | Path | None = None,
    pupil: bool = True,
) -> dict[str, Any]:
    """The Wiener settings with ``otf_decay="auto"`` made the calibrated OTF; other values
    pass through (and keep the ideal pupil). ``pupil=False``: the attenuation only (no pupil
    fit, no ``pupil`` key).

    ``auto``: ``sim_settings`` of a calibration JSON (:func:`write_calibration`: ``otf_decay``
    and, where significant, ``pupil``) when one is given, else the attenuation and pupil
    fitted to ``frames`` themselves (the camera offset, the pattern pooled over the fields,
    :func:`calibrate_otf` and :func:`calibrate_pupil`, as in :func:`calibrate`; no haze). Frames
    under ``MIN_SIZE`` pixels cannot be calibrated: the ideal OTF (1), as for any
    undetermined attenuation.
    """
    kw = dict(sim_kw or {})
    if kw.get("otf_decay", "auto") != "auto":
        return kw
    if calibration is not None:
        settings = json.loads(Path(calibration).read_text())["sim_settings"]
        kw["otf_decay"] = float(settings["otf_decay"])
        if pupil and settings.get("pupil"):
            kw["pupil"] = {int(j): float(c) for j, c in settings["pupil"].items()}
        return kw
    if min(np.shape(frames)[-2:]) < MIN_SIZE:
        kw["otf_decay"] = 1.0
        return kw
    arr = as_stack(frames)
    try:
        camera = calibrate_camera(arr, optics)
        params = estimate_parameters_pooled(arr, optics)
        offset = camera.offset if np.isfinite(camera.offset) else None
        otf = calibrate_otf(arr, optics, params, offset=offset)
        terms = (
            significant_aberration(
                calibrate_pupil(arr, optics, params, offset=offset, attenuation=otf.attenuation)
            )
            if pupil
            else {}
        )
    except ValueError as exc:  # e.g. pixels too coarse for a noise band beyond the cutoff
        log.warning("no OTF attenuation from the frames (%s); the ideal OTF is used", exc)
        kw["otf_decay"] = 1.0
        return kw
    kw["otf_decay"] = _otf_decay(otf, optics, optics)
    if terms:
        kw["pupil"] = terms
    return kw


def undetermined(
    frames_shape: tuple[int, ...], optics: Optics, reason: str | None = None
) -> dict[str, Any]:
    """The calibration record of frames that cannot be calibrated (too small, or ``reason``):
    every estimate undetermined, the ideal OTF for the Wiener stage."""
    return {
        "optics": optics.to_dict(),
        "determined": False,
        "reason": reason
        or f"frames of {frames_shape[-2]} x {frames_shape[-1]} pixels; calibration "
        f"needs at least {MIN_SIZE} x {MIN_SIZE}",
        "sim_settings": {"otf_decay": 1.0},
    }


def write_calibration(path: str | Path, calib: Calibration | dict[str, Any]) -> Path:
    """Write :meth:`Calibration.to_dict` as JSON (``NaN`` written as null)."""

    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, (float, np.floating)):
            return float(v) if np.isfinite(v) else None
        if isinstance(v, np.integer):
            return int(v)
        return v

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    record = calib if isinstance(calib, dict) else {"determined": True} | calib.to_dict()
    tmp.write_text(json.dumps(clean(record), indent=2) + "\n")
    tmp.replace(path)
    return path

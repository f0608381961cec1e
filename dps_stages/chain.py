"""The DPS chain: raw frames -> denoise -> SIM reconstruction -> artifact removal ->
background removal -> Res-U-DBPN, one function per step on whole stacks.

The workflow runs each step as its own stage (``dps infer``, ``dps sim-reconstruct``,
``dps background``); :func:`restore` runs them in a row for a single file (``dps restore``).
Both call the same functions, so a file restored outside the DAG matches the DAG's output.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from dps_stages.io import DpsInputError

log = logging.getLogger("dps.chain")


def _sim_networks() -> dict[str, str]:
    """The network behind each SIM method, from the registry (imported late: it loads torch,
    which the chain's classical steps do not need)."""
    from dps_stages.nets.registry import SIM_NETWORKS

    return SIM_NETWORKS


def run_network(
    model,
    stack: np.ndarray | da.Array,
    *,
    tile: int | None = 256,
    denormalise: bool = False,
    batch: int = 1,
) -> da.Array:
    """A network on every image of a stack, lazily; see :func:`inference.restore_stack`."""
    from dps_stages.inference import restore_stack

    outs = list(restore_stack(model, stack, tile=tile, denormalise=denormalise, batch=batch))
    return da.stack([da.asarray(o) for o in outs])


def check_pixel_size(record: dict[str, Any], pixel_size: float | None, what: str) -> None:
    """Warn when an image's pixel differs from the one a PSF-bound model was trained at."""
    trained = (record.get("psf") or {}).get("input_pixel_size")
    if trained and pixel_size and abs(pixel_size / trained - 1) > 0.1:
        log.warning(
            "%s: pixel %.1f nm, but the Res-U-DBPN model was trained at %.1f nm: its srPSF "
            "does not fit this image; train it on these images (dps train resudbpn --data)",
            what,
            pixel_size,
            trained,
        )


def _denoise_noise(model, image, optics) -> list[float | None]:
    """Per raw acquisition, the denoiser's error in the Wiener band (SURE under the camera
    calibrated from the frames themselves; :mod:`dps_stages.sure`), as the workflow's
    ``dps infer denoise --calibration`` measures it; None where the camera is undetermined."""
    from dps_stages.calibrate import calibrate_camera
    from dps_stages.inference import denoiser_error
    from dps_stages.noise import NoiseModel

    rng = np.random.default_rng(0)
    out: list[float | None] = []
    for i in range(image.shape[0]):
        frames = np.asarray(image[i], np.float32)
        try:
            noise = NoiseModel.from_calibration(calibrate_camera(frames, optics))
        except ValueError as exc:
            log.warning("image %d: camera not calibrated (%s): Wiener noise beyond the OTF", i, exc)
            out.append(None)
            continue
        v = denoiser_error(model, frames, noise, rng).band(float(optics.cutoff_per_pixel))
        out.append(v if v > 0 else None)
    return out


def restore(
    image: np.ndarray | da.Array,
    *,
    kind: str,
    models: str | Path,
    optics,
    sim_method: str = "wiener",
    background_radius: float = 50.0,
    sim_kw: dict[str, Any] | None = None,
    tile: int | None = 256,
    device: str = "auto",
    batch: int = 1,
    precision: str = "fp32",
) -> tuple[np.ndarray, dict[str, Any]]:
    """The whole chain on one input. ``kind``: ``raw`` (n, 9, y, x), ``sim`` or ``widefield``
    (n, y, x). Returns the Res-U-DBPN output (n, 2y', 2x') and a record of every step; the
    networks run ``batch`` tiles per pass in ``precision`` (:func:`inference.set_precision`)."""
    from dps_stages.background import subtract_background_tiled
    from dps_stages.inference import describe, load_model, select_device

    dev = select_device(device)
    models = Path(models)

    def model(name: str, expect: str):
        # a models folder holds one folder per network, as `results/models` does
        return load_model(models / name, expect=expect, device=dev, precision=precision)

    steps: list[dict[str, Any]] = []
    pixel = optics.pixel_size
    x: Any = image
    if kind == "raw" and sim_method == "wiener":
        from dps_stages.calibrate import resolve_sim_settings

        # the OTF attenuation ('auto') fitted to the raw frames, before denoising
        sim_kw = resolve_sim_settings(sim_kw, np.asarray(image), optics)
    if kind == "raw":
        net, rec = model("denoise", "denoise")
        x = np.asarray(run_network(net, x, tile=tile, batch=batch, denormalise=True))
        steps.append({"step": "denoise"} | describe(net, rec))
        if sim_method == "wiener":
            from dps_stages.sim import reconstruct

            noise = _denoise_noise(net, image, optics)
            bg = np.asarray(subtract_background_tiled(x, background_radius))
            out, params = [], []
            for i in range(bg.shape[0]):
                o, p = reconstruct(bg[i], optics, noise_variance=noise[i], **dict(sim_kw or {}))
                out.append(o)
                params.append(p)
            x = np.stack(out)
            steps.append({"step": "sim_wiener", "settings": sim_kw, "noise_variance": noise,
                          "parameters": [p.to_dict() for p in params]})  # fmt: skip
        elif sim_method in _sim_networks():
            name = _sim_networks()[sim_method]
            net, rec = model(name, name)
            x = np.asarray(run_network(net, x, tile=tile, batch=batch))
            steps.append({"step": f"sim_{sim_method}"} | describe(net, rec))
        else:
            raise DpsInputError(f"unknown SIM method {sim_method!r}; expected wiener, dps or oidn")
        pixel = pixel / 2
        net, rec = model("artifact", "artifact")
        x = np.asarray(run_network(net, x, tile=tile, batch=batch))
        steps.append({"step": "artifact"} | describe(net, rec))
    elif kind not in ("sim", "widefield"):
        raise DpsInputError(f"unknown input kind {kind!r}; expected raw, sim or widefield")
    x = np.asarray(subtract_background_tiled(np.asarray(x, np.float32), background_radius))
    steps.append({"step": "background", "radius": background_radius})
    name = "resudbpn_widefield" if kind == "widefield" else "resudbpn"
    net, rec = model(name, "resudbpn")
    check_pixel_size(rec, pixel, name)
    x = np.asarray(run_network(net, x, tile=tile, batch=batch))
    steps.append({"step": name} | describe(net, rec))
    return x, {"chain": steps, "pixel_size": pixel / 2}

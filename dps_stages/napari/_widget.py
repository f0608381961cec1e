"""napari widget ``dps restore``: the DPS chain on an image layer, with a progress bar.

The function :func:`restore_layer` runs :func:`dps_stages.chain.restore` (what ``dps restore``
runs) image by image over the layer's stack, advancing a :class:`napari.utils.progress` bar
per image, and returns the restored stack as a new layer at the output pixel size;
:data:`restore_widget` is its magicgui form (napari adds the returned layer to the viewer).
The Wiener settings ``otf_decay="auto"`` of raw frames are fitted once on the whole stack, as
``dps restore`` fits them, before the images are restored one by one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import napari
import numpy as np
from magicgui import magic_factory
from napari.utils import progress

from dps_stages import io
from dps_stages.settings import default

KINDS = ("raw", "sim", "widefield")


def layer_pixel_size(layer: napari.layers.Image) -> float | None:
    """The pixel size (nm) of a layer: the ``pixel_size_nm`` the dps reader stores in its
    metadata, else its x scale when its x unit is a length (pint), else None."""
    px = (layer.metadata or {}).get("pixel_size_nm")
    if px:
        return float(px)
    try:
        length = float(layer.scale[-1]) * layer.units[-1]
        return float(length.to("nanometer").magnitude)
    except Exception:  # a unit that is not a length (napari's default: pixel)
        return None


def restore_layer(
    image: napari.layers.Image,
    models: Path = Path("results/models"),
    kind: str = "raw",
    pixel_size: float = 0.0,
    sim_method: str = default("networks.sim_method"),
    background_radius: float = default("background.radius"),
    wavelength: float = default("optics.wavelength"),
    na: float = default("optics.na"),
    modulation_factor: float = default("optics.modulation_factor"),
    tile: int = default("networks.tile"),
    device: str = default("networks.device"),
) -> napari.types.LayerDataTuple:
    """Restore the layer ``image`` with the trained networks of ``models`` (the folder with
    ``denoise/``, ``sim/``, ``artifact/``, ``resudbpn/`` of ``dps train`` or a run).

    ``kind``: ``raw`` 2D-SIM frames ((9, y, x), (n, 9, y, x) or (9n, y, x)), or a ``sim`` or
    ``widefield`` image ((y, x) or (n, y, x)). ``pixel_size``: nm at the sample; 0 takes the
    layer's (:func:`layer_pixel_size`). Returns ``(data, kwargs, "image")``: the restored
    (n, Y, X) stack (or (Y, X) for one image), named ``<layer> restored``, on the layer's
    grid: scale s' = s * px_out / px in the layer's units (µm for a layer of the dps reader)
    and a translation that keeps the field of view in place (the first pixel centre moves by
    (s' - s) / 2, a pixel of size s' at the corner of one of size s).
    """
    from dps_stages.chain import restore
    from dps_stages.cli.checks import check_radius
    from dps_stages.optics import Optics

    if kind not in KINDS:
        raise io.DpsInputError(f"{image.name}: unknown input kind {kind!r}; expected {KINDS}")
    px = float(pixel_size) if pixel_size > 0 else layer_pixel_size(image)
    if not px:
        raise io.DpsInputError(
            f"{image.name}: the layer gives no pixel size (its scale has no length unit); "
            "set the pixel size (nm)"
        )
    data = np.asarray(image.data, dtype=np.float32)
    shape = io.as_raw_sim if kind == "raw" else io.as_image_stack
    stack = shape(data, image.name)
    stack = np.asarray(io.check_image(stack, image.name, min_size=16 if kind == "raw" else 8))
    check_radius(background_radius, stack.shape, image.name, "background radius")
    optics = Optics(wavelength=wavelength, na=na, pixel_size=px,
                    modulation_factor=modulation_factor)  # fmt: skip
    sim_kw: dict[str, Any] = {k: default(f"sim.{k}") for k in
                              ("wiener", "wiener_factor", "otf_decay", "local_wiener")}  # fmt: skip
    if kind == "raw" and sim_method == "wiener":
        from dps_stages.calibrate import resolve_sim_settings

        sim_kw = resolve_sim_settings(sim_kw, stack, optics)
    outs, info = [], {}
    for i in progress(range(stack.shape[0]), desc=f"dps restore {image.name}"):
        out, info = restore(stack[i : i + 1], kind=kind, models=models, optics=optics,
                            sim_method=sim_method, background_radius=background_radius,
                            sim_kw=sim_kw, tile=tile, device=device)  # fmt: skip
        outs.append(out[0])
    result = np.stack(outs)
    px_out = float(info["pixel_size"])
    single = image.data.ndim == 2 or (kind == "raw" and image.data.ndim == 3
                                      and image.data.shape[0] == io.RAW_FRAMES)  # fmt: skip
    if single:
        result = result[0]
    # on the layer's own grid: each of y, x scaled by px_out / px, the origin moved so that
    # the field of view stays where it was
    s_in = np.asarray(image.scale[-2:], dtype=float)
    s_out = s_in * px_out / px
    origin = np.asarray(image.translate[-2:], dtype=float) + (s_out - s_in) / 2
    lead = result.ndim - 2
    kwargs = {
        "name": f"{image.name} restored",
        "scale": (1.0,) * lead + tuple(s_out),
        "translate": (0.0,) * lead + tuple(origin),
        "units": ("pixel",) * lead + tuple(str(u) for u in image.units[-2:]),
        "metadata": {"pixel_size_nm": px_out, "source": image.name, "dps": info},
    }
    return result, kwargs, "image"


restore_widget = magic_factory(
    restore_layer,
    call_button="Restore",
    models={"mode": "d", "label": "models folder"},
    kind={"choices": list(KINDS), "label": "input"},
    pixel_size={"label": "pixel size (nm, 0: layer's)", "min": 0.0, "max": 1e4},
    sim_method={"choices": ["wiener", "dps", "oidn"], "label": "SIM method"},
    background_radius={"min": 1.0, "max": 1e4},
    tile={"min": 8, "max": 8192},
)

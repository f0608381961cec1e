"""Export a trained network as a BioImage Model Zoo package (bioimage.io model spec 0.5).

The package (a zip that ``bioimageio.core`` loads, tests and runs, and that CAREamics, the
bioimage.io website and deepImageJ-style consumers read) holds:

- ``rdf.yaml``: the description (made with :mod:`bioimageio.spec`);
- ``dps_architecture.py``: the architecture, a callable ``dps_network(net, arch)`` that
  rebuilds the network from ``dps_stages`` (the project must be installed where the model
  runs: the package's ``environment.yaml`` says so), and ``weights.pt``, its state dict
  (weights format ``pytorch_state_dict``);
- ``test_input.npy`` / ``test_output.npy``: a test image and what this project's own
  inference (:func:`dps_stages.inference.restore_stack`) makes of it;
- ``cover.png`` and ``README.md``.

Pre-processing is the project's normalisation, ``x_n = (x - p_lo) / (p_hi - p_lo)`` with the
0.1 and 99.9 percentiles of each image (all its channels), as ``scale_range``. The networks'
outputs are in normalised units (as in ``dps infer``), except the denoiser's, which ``dps``
maps back to the input's units; bioimage.io has no data-dependent inverse of ``scale_range``,
so the package returns the denoised frames normalised (the README of the package says so).
PSF identification normalises with ``clip((y - p_1) / (max - p_1), -1, 2)`` (the project takes
the maximum of the 3 x 3 median filter instead of the maximum: a hot pixel therefore weighs
more here). Networks that upsample (``sim``, ``oidn``, ``resudbpn``) declare output axes whose
size is twice the input's and whose pixel size is half of it.

Citations: Ye et al., Intelligent Computing 2024 (DPS: denoise, SIM, artifact removal,
Res-U-DBPN; doi 10.34133/icomputing.0082); Haris, Shakhnarovich & Ukita, CVPR 2018 (DBPN);
Jin et al., Optics Express 32(21), 2024 (OIDN); Nguyen, Sarron, Escande & Weiss (PSF
identification).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dps_stages.io import DpsInputError, atomic_path
from dps_stages.normalise import NORM_PERCENTILES

__all__ = ["CITATIONS", "EXPORTABLE", "export_model"]

#: the networks that stand alone (an image in, an image or a PSF out)
EXPORTABLE = ("denoise", "sim", "artifact", "resudbpn", "oidn", "psfid")

_DPS = ("Ye et al., Deep physics-informed sparsity framework for accurate resolution "
        "extension in fluorescence microscopy, Intelligent Computing 2024",
        "10.34133/icomputing.0082")  # fmt: skip
_DBPN = ("Haris, Shakhnarovich & Ukita, Deep Back-Projection Networks for Super-Resolution, "
         "CVPR 2018", "10.1109/CVPR.2018.00179")  # fmt: skip
_OIDN = ("Jin et al., Physical prior-guided deep learning for SIM reconstruction: modeling "
         "object-to-image degradation, Optics Express 32(21), 2024", None)  # fmt: skip
_PSFID = ("Nguyen, Sarron, Escande & Weiss, Training identification network for blind "
          "deconvolution in microscopy", None)  # fmt: skip
#: the papers of each network (text, doi or None)
CITATIONS: dict[str, tuple[tuple[str, str | None], ...]] = {
    "denoise": (_DPS,),
    "sim": (_DPS,),
    "artifact": (_DPS,),
    "resudbpn": (_DPS, _DBPN),
    "oidn": (_OIDN,),
    "psfid": (_PSFID,),
}
_PROJECT_URL = "https://github.com/bioimage-io/spec-bioimage-io"  # where the format is defined

ARCHITECTURE_SOURCE = '''"""The architecture of a dps network for bioimage.io: rebuilt from the
dps_stages package (the project's `pip install -e .`), by name and constructor arguments."""


def dps_network(net, arch):
    from dps_stages import nets

    return nets.build(net, dict(arch))
'''


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _test_image(model: torch.nn.Module, net: str, size: int, seed: int) -> np.ndarray:
    """A test input (1, C, size, size): smooth blobs under Poisson noise, from ``seed``."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    obj = gaussian_filter(rng.random((size, size)) ** 8, 1.5) * 400
    x = np.arange(size)
    frames = [  # a striped illumination per frame, so that 9 SIM frames differ
        rng.poisson(obj * (1 + 0.5 * np.cos(0.9 * x[None, :] + 0.7 * k)) + 20)
        for k in range(model.in_channels)
    ]
    return np.stack(frames)[None].astype(np.float32)


def _psfid_normalise(x: np.ndarray) -> np.ndarray:
    """The package's PSF-identification pre-processing: scale_range (1 %, max), clip."""
    lo, hi = np.percentile(x, 1.0), x.max()
    return np.clip((x - lo) / (hi - lo + 1e-6), -1.0, 2.0).astype(np.float32)


@torch.no_grad()
def _reference_output(model: torch.nn.Module, net: str, x: np.ndarray) -> np.ndarray:
    """What the project's inference makes of ``x`` (1, C, y, x), normalised as the package
    says (see the module docstring)."""
    from dps_stages.inference import restore_stack, run_block

    if net == "psfid":
        return run_block(model, _psfid_normalise(x[0]))[None]
    stack = x if model.in_channels > 1 else x[:, 0]
    out = np.asarray(next(restore_stack(model, stack, tile=None, progress=False)))
    return (out if out.ndim == 3 else out[None])[None].astype(np.float32)


def _cover(path: Path, x: np.ndarray, y: np.ndarray, net: str) -> None:
    """A 2:1 cover: the test input (first channel) beside the output."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(6, 3), dpi=100)
    for ax, img, title in zip(axes, (x[0, 0], y[0, 0]), ("input", f"{net} output"), strict=True):
        ax.imshow(img, cmap="magma")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def export_model(
    net: str,
    model_dir: str | Path,
    output: str | Path,
    *,
    pixel_size: float | None = None,
    test_size: int = 32,
    seed: int = 0,
) -> Path:
    """Write the bioimage.io package (spec 0.5) of the trained ``net`` in ``model_dir``.

    ``pixel_size``: nm per pixel of the network's input grid (the camera's for raw frames,
    the SIM grid's for ``artifact``); ``None``: the axes carry no physical scale. The
    package is validated by :mod:`bioimageio.spec` as it is built; run
    ``bioimageio.core.test_model`` on it to check it reproduces its test output.
    """
    from bioimageio.spec import save_bioimageio_package
    from bioimageio.spec.model import v0_5 as bio

    from dps_stages.inference import load_model

    if net not in EXPORTABLE:
        raise DpsInputError(f"{net}: not a standalone network; exportable: {EXPORTABLE}")
    model, record = load_model(model_dir, expect=net)
    m = int(getattr(model, "multiple", 1))
    size = max(m, -(-test_size // m) * m)
    x = _test_image(model, net, size, seed)
    y = _reference_output(model, net, x)
    um = pixel_size / 1e3 if pixel_size else 1.0
    unit = "micrometer" if pixel_size else None
    channels = [bio.Identifier(f"frame{i}") for i in range(model.in_channels)]
    if model.in_channels == 1:
        channels = [bio.Identifier("intensity")]
    in_axes = [
        bio.BatchAxis(),
        bio.ChannelAxis(channel_names=channels),
        *(bio.SpaceInputAxis(id=bio.AxisId(a), size=bio.ParameterizedSize(min=m, step=m),
                             scale=um, unit=unit) for a in ("y", "x")),
    ]  # fmt: skip
    if net == "psfid":
        k = int(model.psf_size)
        in_axes[2:] = [bio.SpaceInputAxis(id=bio.AxisId(a), size=size, scale=um, unit=unit)
                       for a in ("y", "x")]  # fmt: skip
        out_space = [bio.SpaceOutputAxis(id=bio.AxisId(a), size=k, scale=um, unit=unit)
                     for a in ("y", "x")]  # fmt: skip
        pre = [
            bio.ScaleRangeDescr(kwargs=bio.ScaleRangeKwargs(
                axes=[bio.AxisId("y"), bio.AxisId("x")], min_percentile=1.0,
                max_percentile=100.0)),
            bio.ClipDescr(kwargs=bio.ClipKwargs(min=-1.0, max=2.0)),
        ]  # fmt: skip
    else:
        s = int(model.scale)
        out_space = [
            bio.SpaceOutputAxis(
                id=bio.AxisId(a),
                size=bio.SizeReference(tensor_id=bio.TensorId("input"), axis_id=bio.AxisId(a)),
                scale=um / s,
                unit=unit,
            )
            for a in ("y", "x")
        ]
        pre = [
            bio.ScaleRangeDescr(kwargs=bio.ScaleRangeKwargs(
                axes=[bio.AxisId("channel"), bio.AxisId("y"), bio.AxisId("x")],
                min_percentile=NORM_PERCENTILES[0], max_percentile=NORM_PERCENTILES[1])),
        ]  # fmt: skip
    out_names = [bio.Identifier(f"frame{i}") for i in range(y.shape[1])]
    if y.shape[1] == 1:
        out_names = [bio.Identifier("psf" if net == "psfid" else "intensity")]

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        np.save(tmp / "test_input.npy", x)
        np.save(tmp / "test_output.npy", y)
        (tmp / "dps_architecture.py").write_text(ARCHITECTURE_SOURCE)
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()},
                   tmp / "weights.pt")  # fmt: skip
        _cover(tmp / "cover.png", x, y, net)
        (tmp / "environment.yaml").write_text(
            "# the architecture is rebuilt by the dps_stages package (this project)\n"
            "channels: [conda-forge, nodefaults]\ndependencies:\n"
            f"  - python>=3.11\n  - pytorch={torch.__version__.split('+')[0]}\n"
            "  - pip\n  - pip:\n      - dps-stages  # pip install -e <the dps project>\n"
        )
        (tmp / "README.md").write_text(_readme(net, model, record, pixel_size))
        arch = bio.ArchitectureFromFileDescr(
            source=tmp / "dps_architecture.py",
            sha256=_sha256(tmp / "dps_architecture.py"),
            callable=bio.Identifier("dps_network"),
            kwargs={"net": net, "arch": dict(model.arch)},
        )
        descr = bio.ModelDescr(
            name=f"dps {net}",
            description=f"{record.get('net', net)}: {_summary(net)} (dps project)",
            authors=[bio.Author(name="dps project")],
            cite=[
                bio.CiteEntry(text=t, doi=d) if d else bio.CiteEntry(text=t, url=_PROJECT_URL)
                for t, d in CITATIONS[net]
            ],  # fmt: skip
            license=bio.LicenseId("MIT"),
            documentation=bio.FileDescr(source=tmp / "README.md"),
            covers=[bio.FileDescr(source=tmp / "cover.png")],
            tags=[
                "fluorescence-light-microscopy",
                "2d",
                "pytorch",
                net,
                "structured-illumination"
                if net in ("sim", "oidn", "denoise")
                else "image-restoration",
            ],  # noqa: E501
            inputs=[
                bio.InputTensorDescr(
                    id=bio.TensorId("input"),
                    axes=in_axes,
                    test_tensor=bio.FileDescr(source=tmp / "test_input.npy"),
                    preprocessing=pre,
                )
            ],  # fmt: skip
            outputs=[
                bio.OutputTensorDescr(
                    id=bio.TensorId("output"),
                    axes=[bio.BatchAxis(), bio.ChannelAxis(channel_names=out_names), *out_space],
                    test_tensor=bio.FileDescr(source=tmp / "test_output.npy"),
                )
            ],  # fmt: skip
            weights=bio.WeightsDescr(
                pytorch_state_dict=bio.PytorchStateDictWeightsDescr(
                    source=tmp / "weights.pt",
                    sha256=_sha256(tmp / "weights.pt"),
                    architecture=arch,
                    pytorch_version=bio.Version(torch.__version__.split("+")[0]),
                    dependencies=bio.FileDescr(source=tmp / "environment.yaml"),
                )
            ),  # fmt: skip
        )
        output = Path(output)
        with atomic_path(output) as target:
            save_bioimageio_package(descr, output_path=target.with_suffix(".zip"))
            shutil.move(target.with_suffix(".zip"), target)
    return output


def _summary(net: str) -> str:
    from dps_stages.nets.registry import REGISTRY

    return REGISTRY[net].summary


def _readme(net: str, model: torch.nn.Module, record: dict[str, Any], px: float | None) -> str:
    scale = getattr(model, "scale", 1)
    units = "the input's units (normalised, see below)"
    lines = [
        f"# dps {net}",
        "",
        f"{_summary(net)}. Trained by `dps train {net}` of the dps project "
        f"({record.get('settings', {}).get('steps', '?')} steps).",
        "",
        "## Input and output",
        f"- input: (batch, channel, y, x), {model.in_channels} channel(s), pixel size "
        f"{px if px else 'unknown'} nm;",
        f"- output: {'a PSF (unit sum)' if net == 'psfid' else f'{scale}x the input grid'}, "
        f"in {units if net == 'denoise' else 'normalised intensities'}.",
        "",
        "## Processing",
        "Pre-processing: `x_n = (x - p_lo) / (p_hi - p_lo)`, p = 0.1 and 99.9 percentiles of "
        "each image (all channels), as in `dps infer`."
        if net != "psfid"
        else "Pre-processing: `clip((y - p_1) / (max - p_1), -1, 2)` (dps uses the maximum of "
        "the 3x3 median filter as the upper value).",
        "The denoiser's output is returned normalised; `dps infer` maps it back with "
        "`x = x_n (p_hi - p_lo) + p_lo`."
        if net == "denoise"
        else "",
        "",
        "## Running",
        "The architecture file rebuilds the network with the `dps_stages` package: install the "
        "dps project (`make install`) where the model runs.",
        "",
        "## Citations",
        *[f"- {t}" + (f", doi:{d}" if d else "") for t, d in CITATIONS[net]],
        "",
    ]
    return "\n".join(lines)

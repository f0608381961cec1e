"""VGG16 convolutional features for the perceptual (feature reconstruction) loss.

The layout is VGG16, configuration D of Simonyan & Zisserman, "Very deep convolutional
networks for large-scale image recognition", ICLR 2015: thirteen 3 x 3 convolutions (stride 1,
padding 1), each followed by a ReLU, in five blocks of widths 64, 64 | 128, 128 |
256, 256, 256 | 512, 512, 512 | 512, 512, 512, with a 2 x 2 max-pool (stride 2) closing every
block. :class:`VGG16Features` holds it as ``self.features``, an ``nn.Sequential`` of 31
modules with the same indices as ``torchvision.models.vgg16().features`` (conv ``k`` of the
network at the index torchvision gives it), so a torchvision state dict loads unchanged;
torchvision itself is not needed.

Layers are named ``relu{block}_{conv}``: ``relu1_1`` is the ReLU after the first convolution,
``relu4_2`` the one after the second convolution of block 4 (at 1/8 of the input resolution).

Weights (:func:`load_vgg16`)
----------------------------
* A file of ImageNet weights (e.g. torchvision's ``vgg16-397923af.pth``), read with
  ``torch.load(weights_only=True)``; keys ``features.<i>.weight|bias`` or ``<i>.weight|bias``,
  ``classifier.*`` ignored.
* None: fixed random features, the documented fallback for machines without the file. The
  same layout with Kaiming-normal convolution weights (He et al., ICCV 2015; ``fan_out``
  mode, ReLU gain: ``w ~ N(0, 2 / (C_out k^2))``) and zero biases, drawn from
  ``torch.Generator().manual_seed(seed)`` in layer order, so that a seed fixes the features
  exactly on the CPU. Deep convolutional features with random weights still measure
  multi-scale image structure: He, Wang & Hopcroft, "A powerful generative model using random
  weights for the deep image representation", NeurIPS 2016, reconstruct and synthesise
  images from the features of an untrained VGG; Ulyanov, Vedaldi & Lempitsky, "Deep image
  prior", CVPR 2018, show how much image structure a random convolutional network carries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = ["LAYER_INDEX", "VGG16Features", "load_vgg16"]

#: Configuration D: output channels of each convolution, "M" for a 2 x 2 max-pool.
_CFG_D: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip


def _layer_index() -> dict[str, int]:
    """``relu{block}_{conv}`` -> index of that ReLU in ``features`` (torchvision's order)."""
    index: dict[str, int] = {}
    i, block, conv = 0, 1, 0
    for v in _CFG_D:
        if v == "M":
            i += 1
            block, conv = block + 1, 0
        else:
            conv += 1
            index[f"relu{block}_{conv}"] = i + 1  # conv at i, its ReLU at i + 1
            i += 2
    return index


#: Index in ``VGG16Features.features`` of every named ReLU layer (relu1_1 -> 1, ... relu5_3 -> 29).
LAYER_INDEX: dict[str, int] = _layer_index()


class VGG16Features(nn.Module):
    """The 31-module VGG16 feature extractor (configuration D), torchvision's indices.

    ``forward(x, layers)`` returns ``{name: activation}`` for the requested ReLU layers and
    runs the network only up to the deepest of them. Input ``(N, 3, H, W)``; any ``H, W >= 1``
    works (padding 1 keeps sizes through the convolutions, each pool halves them, rounding
    down; a side that reaches 0 raises in ``max_pool2d``).
    """

    def __init__(self) -> None:
        super().__init__()
        modules: list[nn.Module] = []
        c_in = 3
        for v in _CFG_D:
            if v == "M":
                modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                assert isinstance(v, int)
                modules.append(nn.Conv2d(c_in, v, kernel_size=3, padding=1))
                # not in place: the activations are returned to the caller and kept for backward
                modules.append(nn.ReLU(inplace=False))
                c_in = v
        self.features = nn.Sequential(*modules)

    def forward(self, x: Tensor, layers: Sequence[str] | None = None) -> dict[str, Tensor]:
        """Activations of ``layers`` (default: all 13 ReLU layers) for input ``x``."""
        names = list(LAYER_INDEX) if layers is None else list(layers)
        unknown = [n for n in names if n not in LAYER_INDEX]
        if unknown:
            raise ValueError(f"unknown VGG16 layer(s) {unknown}; choose from {list(LAYER_INDEX)}")
        if not names:
            return {}
        wanted = {LAYER_INDEX[n]: n for n in names}
        last = max(wanted)
        out: dict[str, Tensor] = {}
        for i, module in enumerate(self.features):
            x = module(x)
            if i in wanted:
                out[wanted[i]] = x
            if i == last:
                break
        return {n: out[n] for n in names}


def _random_init(model: VGG16Features, seed: int) -> None:
    """Kaiming-normal (fan_out, ReLU) weights and zero biases from one seeded generator."""
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for m in model.features:
            if isinstance(m, nn.Conv2d):
                fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
                std = (2.0 / fan_out) ** 0.5
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * std)
                assert m.bias is not None
                m.bias.zero_()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _feature_state(raw: object, path: Path) -> dict[str, tuple[str, Tensor]]:
    """The ``features`` part of a torchvision-style state dict: name without the prefix ->
    (key in the file, tensor)."""
    if not isinstance(raw, Mapping):
        raise ValueError(
            f"VGG16 weights {path}: expected a state dict (mapping of names to tensors), "
            f"got {type(raw).__name__}"
        )
    state: dict[str, tuple[str, Tensor]] = {}
    unexpected: list[str] = []
    for key, value in raw.items():
        key = str(key)
        if key.startswith("classifier."):
            continue  # the fully connected head of a full vgg16 state dict: not used
        name = key.removeprefix("features.")
        if not isinstance(value, Tensor):
            unexpected.append(key)
            continue
        state[name] = (key, value)
    if unexpected:
        raise ValueError(f"VGG16 weights {path}: entries that are not tensors: {unexpected}")
    return state


def _check_state(model: VGG16Features, state: dict[str, tuple[str, Tensor]], path: Path) -> None:
    """Raise ValueError naming ``path`` unless ``state`` fits ``model.features`` exactly."""
    expected = {k: tuple(v.shape) for k, v in model.features.state_dict().items()}
    missing = [f"features.{k}" for k in expected if k not in state]
    unexpected = [key for k, (key, _) in state.items() if k not in expected]
    mismatched = [
        f"{state[k][0]}: file {tuple(state[k][1].shape)}, VGG16 {shape}"
        for k, shape in expected.items()
        if k in state and tuple(state[k][1].shape) != shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if mismatched:
        problems.append(f"shape mismatch {mismatched}")
    if problems:
        raise ValueError(
            f"VGG16 weights {path} do not fit the VGG16 feature layout (configuration D, "
            f"torchvision indices): " + "; ".join(problems)
        )


def load_vgg16(weights: str | Path | None, seed: int = 0) -> tuple[VGG16Features, str]:
    """A frozen VGG16 feature extractor in eval mode, and a string naming its weights.

    Parameters
    ----------
    weights
        Path to a torchvision-style state dict (``features.<i>.weight`` / ``.bias``, with or
        without the ``features.`` prefix; ``classifier.*`` keys are ignored), or None for the
        fixed random features (module docstring).
    seed
        Seed of the random features; unused with a file.

    Returns
    -------
    (VGG16Features, str)
        The network (parameters with ``requires_grad=False``) and its source:
        ``"imagenet:<file name>:sha256=<first 16 hex digits>"`` or ``"random:seed=<seed>"``.

    Raises
    ------
    ValueError
        When the file cannot be read as a state dict of tensors or does not fit the layout;
        the message names the file and the missing, unexpected or mismatched keys.
    """
    model = VGG16Features()
    if weights is None:
        _random_init(model, seed)
        source = f"random:seed={int(seed)}"
    else:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"VGG16 weights file {path} does not exist")
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # unpickling errors come in many types
            raise ValueError(
                f"VGG16 weights {path} could not be read as a state dict: {err}"
            ) from err
        state = _feature_state(raw, path)
        _check_state(model, state, path)
        model.features.load_state_dict({k: v.float() for k, (_, v) in state.items()})
        source = f"imagenet:{path.name}:sha256={_sha256(path)[:16]}"
    model.requires_grad_(False)
    model.eval()
    return model, source

"""Building blocks of the DPS networks, and the receptive-field bookkeeping of all of them.

Every block is a stack of local operations: convolutions with zero padding, strided and
transposed convolutions, pixel shuffles and point-wise activations (ReLU, PReLU). There is no
normalisation layer and nothing global, so a network built from them is equivariant to
translations by its down-sampling factor ``2**depth`` and its output at a pixel depends only
on the input within a bounded window. That window is what makes tiled inference exact
(:mod:`dps_stages.inference`): it is computed here from the layers' geometry.

Residual block (:class:`ResBlock`)
----------------------------------
``y = x + conv(relu(conv(x)))``, the block of EDSR without batch normalisation (Lim et al.,
"Enhanced Deep Residual Networks for Single Image Super-Resolution", CVPRW 2017).

Back-projection units (:class:`UpProjection`, :class:`DownProjection`)
---------------------------------------------------------------------
Haris, Shakhnarovich & Ukita, "Deep Back-Projection Networks for Super-Resolution", CVPR 2018,
equations (1)-(2), for a factor of 2. The up-projection of a low-resolution map ``L``:

``H0 = up1(L)``, ``L0 = down(H0)``, ``E = L0 - L``, ``H1 = up2(E)``, ``H = H0 + H1``;

the down-projection of a high-resolution map ``H``:

``L0 = down1(H)``, ``H0 = up(L0)``, ``E = H0 - H``, ``L1 = down2(E)``, ``L = L0 + L1``.

``up`` is a transposed convolution and ``down`` a convolution, both 6x6 with stride 2 and
padding 2 (the paper's setting for 2x), each followed by a PReLU (one slope, as in the
authors' code). ``E`` is the back-projection error: what the round trip through the other
resolution fails to reproduce. The 6x6 kernel is a multiple of the stride, so a transposed
convolution covers every output pixel with the same number of taps (no checkerboard of
uneven overlap).

Receptive field (:class:`Reach`, :class:`Footprint`)
----------------------------------------------------
Each network traces its own graph (its ``reach`` method, the same graph as ``forward``) with
one of two values. A feature pixel ``i`` of a map with ``step`` input pixels per feature
pixel sits at the anchor ``i step`` in input coordinates. :class:`Reach` bounds the input
pixels it depends on by offsets ``[lo, hi]`` from its anchor: through a convolution with
kernel ``k``, stride ``s`` and padding ``p``, output ``i`` reads input ``s i - p + t``
(``t = 0..k-1``), so

``lo' = lo - p step``, ``hi' = hi + (k - 1 - p) step``, ``step' = s step``;

through a transposed convolution output ``o`` reads the inputs ``i`` with ``s i = o + p - t``,
so with ``step' = step / s``

``lo' = lo + (p - k + 1) step'``, ``hi' = hi + p step'``;

a pixel shuffle (or nearest up-sampling) by ``f`` is the transposed case with ``k = f``,
``p = 0``; a sum or concatenation takes the union. The bound is exact for the Res-U-Net, but
it forgets on which phase of a stride-2 grid a pixel sits, and so overestimates the
back-projection units (68 instead of 62 pixels for a 2-level Res-U-DBPN). :class:`Footprint`
follows marks through the same graph pixel by pixel along one axis and is exact:

- :meth:`LocalNet.receptive_radius`: an impulse at each phase of the ``2**depth`` grid; the
  farthest output it reaches is the radius of the receptive field;
- :meth:`LocalNet.receptive_halo`: tiled inference itself. A tile is marked where it reads
  zero padding (at any layer) where the whole image has data, and the marks spread
  downstream; the halo is the smallest multiple of ``2**depth`` that keeps them out of the
  interior. Tile origins on the ``2**depth`` grid give every tile the whole image's
  down-sampling grid, so the unmarked outputs equal the whole image's.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "Down",
    "DownProjection",
    "Footprint",
    "LocalNet",
    "Reach",
    "ResBlock",
    "Up",
    "UpProjection",
    "Window",
    "conv1x1",
    "conv3x3",
    "res_stack",
    "trace_reach",
]

# point-wise layers: they leave the receptive field as it is
_POINTWISE = (nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.Identity)


# --------------------------------------------------------------------------- receptive field


def _geometry(m: nn.Conv2d | nn.ConvTranspose2d) -> tuple[int, int, int]:
    """(kernel, stride, padding) of a square, undilated convolution."""
    k, s, p, d = m.kernel_size, m.stride, m.padding, m.dilation
    if isinstance(p, str) or k[0] != k[1] or s[0] != s[1] or p[0] != p[1] or d != (1, 1):
        raise ValueError(f"{m}: only square, undilated convolutions are traced")
    if isinstance(m, nn.ConvTranspose2d) and m.output_padding != (0, 0):
        raise ValueError(f"{m}: output padding is not traced")
    return k[0], s[0], p[0]


@dataclass(frozen=True)
class Reach:
    """The input window ``[anchor + lo, anchor + hi]`` (input pixels) of a feature pixel.

    ``step`` is the number of input pixels per feature pixel (2 after one stride-2
    convolution, 0.5 after a 2x up-sampling of the input grid). ``Reach()`` is the input.
    """

    lo: float = 0.0
    hi: float = 0.0
    step: float = 1.0

    def conv(self, m: nn.Conv2d) -> Reach:
        k, s, p = _geometry(m)
        return Reach(self.lo - p * self.step, self.hi + (k - 1 - p) * self.step, self.step * s)

    def conv_t(self, m: nn.ConvTranspose2d) -> Reach:
        k, s, p = _geometry(m)
        step = self.step / s
        return Reach(self.lo + (p - k + 1) * step, self.hi + p * step, step)

    def upsample(self, factor: int) -> Reach:
        """Pixel shuffle or nearest up-sampling: output ``f i + r`` reads input ``i``."""
        step = self.step / factor
        return Reach(self.lo - (factor - 1) * step, self.hi, step)

    def __or__(self, other: Reach) -> Reach:
        """Sum or concatenation of two maps on the same grid."""
        if self.step != other.step:
            raise ValueError(f"maps on different grids merged: step {self.step} and {other.step}")
        return Reach(min(self.lo, other.lo), max(self.hi, other.hi), self.step)

    @property
    def radius(self) -> float:
        """The farthest input pixel from the anchor, in input pixels."""
        return max(-self.lo, self.hi)


class Footprint:
    """Which pixels of a 1-D feature line are marked, followed exactly through the layers.

    The same interface as :class:`Reach` (``conv``, ``conv_t``, ``upsample``, ``|``), but it
    follows the dependency graph pixel by pixel instead of bounding it by an interval, so it
    keeps track of the phase of a stride-2 grid a pixel sits on. An output pixel is marked
    when it reads a marked pixel; positions beyond the ends of the line (a convolution's
    zero padding) count as marked when ``edge`` is true. Two uses:

    - :meth:`impulse`: the pixels that depend on one input pixel (``edge`` false);
    - :meth:`tile`: the pixels of a tile that differ from the whole image's, because somewhere
      upstream they read padding where the whole image has data (``edge`` true).

    Every layer has square kernels and equal strides, so the dependencies along y do not
    depend on x: the footprint along one axis is that of a 1-D line.
    """

    def __init__(self, dep: np.ndarray, step: float = 1.0, edge: bool = False) -> None:
        self.dep = np.asarray(dep, dtype=bool)
        self.step = step
        self.edge = edge

    @classmethod
    def impulse(cls, length: int, at: int) -> Footprint:
        dep = np.zeros(length, dtype=bool)
        dep[at] = True
        return cls(dep)

    @classmethod
    def tile(cls, length: int) -> Footprint:
        return cls(np.zeros(length, dtype=bool), edge=True)

    def _new(self, dep: np.ndarray, step: float) -> Footprint:
        return Footprint(dep, step, self.edge)

    def conv(self, m: nn.Conv2d) -> Footprint:
        # output i reads input s i - p + t, t = 0..k-1
        k, s, p = _geometry(m)
        n_out = (self.dep.size + 2 * p - k) // s + 1
        padded = np.pad(self.dep, p, constant_values=self.edge)
        windows = np.lib.stride_tricks.sliding_window_view(padded, k)[::s][:n_out]
        return self._new(windows.any(axis=1), self.step * s)

    def conv_t(self, m: nn.ConvTranspose2d) -> Footprint:
        # input i writes output s i - p + t, t = 0..k-1; inputs beyond the ends (e of them on
        # each side) write to the first and last outputs
        k, s, p = _geometry(m)
        n, e = self.dep.size, -(-k // s)
        ext = np.pad(self.dep, e, constant_values=self.edge)
        full = np.zeros((ext.size - 1) * s + k, dtype=bool)
        for t in range(k):
            full[t : t + s * (ext.size - 1) + 1 : s] |= ext
        start = p + s * e  # output o is full[o + p + s e]
        return self._new(full[start : start + (n - 1) * s - 2 * p + k], self.step / s)

    def upsample(self, factor: int) -> Footprint:
        return self._new(np.repeat(self.dep, factor), self.step / factor)

    def __or__(self, other: Footprint) -> Footprint:
        if self.step != other.step or self.dep.size != other.dep.size:
            raise ValueError("maps on different grids merged")
        return self._new(self.dep | other.dep, self.step)


#: what the networks' ``reach`` methods trace: an interval bound or an exact footprint
Window = Reach | Footprint


def trace_reach(module: nn.Module, r: Window) -> Window:
    """The window after ``module``: its own ``reach`` method, or a known layer, or a chain."""
    if hasattr(module, "reach"):
        return module.reach(r)
    if isinstance(module, nn.ConvTranspose2d):
        return r.conv_t(module)
    if isinstance(module, nn.Conv2d):
        return r.conv(module)
    if isinstance(module, nn.PixelShuffle):
        return r.upsample(module.upscale_factor)
    if isinstance(module, _POINTWISE):
        return r
    if isinstance(module, nn.Sequential):
        for m in module:
            r = trace_reach(m, r)
        return r
    raise TypeError(f"no receptive-field rule for {type(module).__name__}")


class LocalNet(nn.Module):
    """Base of the DPS networks: the attributes that tiled inference and training rely on.

    ``scale`` (output size / input size), ``multiple`` (input sizes must be multiples of it,
    ``2**depth``), ``in_channels``, ``out_channels``, ``arch`` (the constructor's keyword
    arguments: ``type(net)(**net.arch)`` rebuilds the network) and :meth:`reach`, the
    network's graph traced with :class:`Reach` or :class:`Footprint` values.
    """

    scale: int
    multiple: int
    in_channels: int
    out_channels: int
    arch: dict

    @staticmethod
    def init_arguments() -> dict[str, Any]:
        """The calling constructor's arguments but ``self``, ``{name: value}`` in signature order.

        Read from the caller's frame (its code object's argument names, its locals), so call
        it before any argument is reassigned; ``self.arch = self.init_arguments()`` in
        ``__init__`` makes ``type(net)(**net.arch)`` rebuild the network without restating the
        signature (a subclass that calls it after ``super().__init__`` records its own).
        """
        frame = inspect.currentframe()
        caller = frame.f_back if frame is not None else None
        try:
            if caller is None:
                raise RuntimeError("init_arguments needs the caller's frame")
            code = caller.f_code
            names = code.co_varnames[1 : code.co_argcount + code.co_kwonlyargcount]
            return {name: caller.f_locals[name] for name in names}
        finally:
            del frame, caller  # no reference cycle through the frames

    def reach(self, r: Window | None = None) -> Window:
        """The output's window (:class:`Reach`) or footprint, from ``r`` (default: the input)."""
        raise NotImplementedError

    def receptive_radius(self) -> float:
        """The farthest input pixel any output pixel depends on, from its anchor (input px).

        Exact for the dependency graph: an impulse at each phase of the ``multiple`` grid is
        traced through the layers (:class:`Footprint`) on a line long enough to hold the
        interval bound (:class:`Reach`) on either side, and the largest distance
        ``|q - o step|`` between the impulse ``q`` and an output pixel ``o`` it reaches is
        taken. The output pixel ``o`` has its anchor at ``o step`` (``step = 1 / scale``).
        """
        m = self.multiple
        margin = math.ceil(self.reach(Reach()).radius / m + 2) * m
        length, centre = 2 * margin + m, margin
        radius = 0.0
        for phase in range(m):
            out = self.reach(Footprint.impulse(length, centre + phase))
            anchors = np.flatnonzero(out.dep) * out.step
            radius = max(radius, float(np.abs(anchors - (centre + phase)).max()))
        return radius

    def receptive_halo(self) -> int:
        """Halo (input pixels, a multiple of ``multiple``) that makes tiled inference exact.

        Tiled inference itself, traced along one axis (:meth:`Footprint.tile`): a tile line
        whose length is a multiple of ``multiple`` is marked where its output differs from the
        whole image's, because some upstream feature read zero padding at the tile's edge where
        the whole image has data (missing input pixels and missing intermediate pixels alike).
        The halo is the smallest multiple of ``multiple`` that keeps the marked pixels at
        either end out of the tile's interior. For these networks it is at most
        :meth:`receptive_radius` rounded up (a missing feature pixel depends on a missing
        input pixel), and it can be one grid step less: the tile's interior is made of whole
        grid cells, and the farthest reach belongs to one phase of the grid.
        """
        m, s = self.multiple, self.scale
        margin = math.ceil(self.reach(Reach()).radius / m + 2) * m
        length = 2 * margin + 2 * m
        dirty = self.reach(Footprint.tile(length)).dep
        clean = np.flatnonzero(~dirty)
        if clean.size == 0 or dirty[clean[0] : clean[-1] + 1].any():
            raise RuntimeError("the receptive-field trace found no clean interior")
        # interior = outputs of the input cells [h, length - h): every dirty output outside
        left = math.ceil(clean[0] / (s * m)) * m
        right = math.ceil((s * length - 1 - clean[-1]) / (s * m)) * m
        return max(left, right)

    def check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} takes (N, {self.in_channels}, H, W); got {tuple(x.shape)}"
            )
        if x.shape[-2] % self.multiple or x.shape[-1] % self.multiple:
            raise ValueError(
                f"{type(self).__name__}: H and W must be multiples of {self.multiple}; "
                f"got {tuple(x.shape[-2:])}"
            )


# --------------------------------------------------------------------------- convolutions


def conv3x3(cin: int, cout: int) -> nn.Conv2d:
    """3x3 convolution with zero padding 1 (same size)."""
    return nn.Conv2d(cin, cout, 3, padding=1)


def conv1x1(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1)


class ResBlock(nn.Module):
    """``y = x + conv(relu(conv(x)))`` (EDSR, Lim et al. 2017; no batch normalisation)."""

    def __init__(self, ch: int, kernel: int = 3) -> None:
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"kernel must be odd (same-size convolution); got {kernel}")
        self.conv1 = nn.Conv2d(ch, ch, kernel, padding=kernel // 2)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(ch, ch, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x)))

    def reach(self, r: Window) -> Window:
        return r | r.conv(self.conv1).conv(self.conv2)


def res_stack(ch: int, blocks: int) -> nn.Sequential:
    """``blocks`` residual blocks in a row (the identity for 0)."""
    return nn.Sequential(*(ResBlock(ch) for _ in range(blocks)))


class Down(nn.Module):
    """2x down-sampling by a strided convolution and ReLU, in place of pooling.

    Kernel 2 (padding 0): non-overlapping 2x2 cells, the learned counterpart of max pooling;
    kernel 4 (padding 1): overlapping cells.
    """

    def __init__(self, cin: int, cout: int, kernel: int = 2) -> None:
        super().__init__()
        if kernel not in (2, 4):
            raise ValueError(f"kernel must be 2 or 4; got {kernel}")
        self.conv = nn.Conv2d(cin, cout, kernel, stride=2, padding=(kernel - 2) // 2)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))

    def reach(self, r: Window) -> Window:
        return r.conv(self.conv)


class Up(nn.Module):
    """2x up-sampling by a 2x2 transposed convolution with stride 2, and ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(cin, cout, 2, stride=2)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))

    def reach(self, r: Window) -> Window:
        return r.conv_t(self.conv)


# --------------------------------------------------------------------------- back-projection

# DBPN's 2x setting: 6x6 kernels, stride 2, padding 2 (Haris et al. 2018, section 4)
_K, _S, _P = 6, 2, 2


class _ConvP(nn.Sequential):
    """Convolution (or transposed convolution) 6x6/2/2 followed by a PReLU."""

    def __init__(self, ch: int, transposed: bool) -> None:
        cls = nn.ConvTranspose2d if transposed else nn.Conv2d
        super().__init__(cls(ch, ch, _K, stride=_S, padding=_P), nn.PReLU())


class UpProjection(nn.Module):
    """DBPN up-projection unit (Haris et al., CVPR 2018, eq. 1), 2x.

    ``H0 = up1(L)``, ``L0 = down(H0)``, ``E = L0 - L``, ``H1 = up2(E)``, returns ``H0 + H1``
    (:meth:`project` also returns the low-resolution error ``E``).
    """

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.up1 = _ConvP(ch, transposed=True)
        self.down = _ConvP(ch, transposed=False)
        self.up2 = _ConvP(ch, transposed=True)

    def project(self, low: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h0 = self.up1(low)
        err = self.down(h0) - low
        return h0 + self.up2(err), err

    def forward(self, low: torch.Tensor) -> torch.Tensor:
        return self.project(low)[0]

    def reach(self, r: Window) -> Window:
        h0 = trace_reach(self.up1, r)
        err = trace_reach(self.down, h0) | r
        return h0 | trace_reach(self.up2, err)


class DownProjection(nn.Module):
    """DBPN down-projection unit (Haris et al., CVPR 2018, eq. 2), 2x.

    ``L0 = down1(H)``, ``H0 = up(L0)``, ``E = H0 - H``, ``L1 = down2(E)``, returns ``L0 + L1``
    (:meth:`project` also returns the high-resolution back-projection error ``E``).
    """

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.down1 = _ConvP(ch, transposed=False)
        self.up = _ConvP(ch, transposed=True)
        self.down2 = _ConvP(ch, transposed=False)

    def project(self, high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        l0 = self.down1(high)
        err = self.up(l0) - high
        return l0 + self.down2(err), err

    def forward(self, high: torch.Tensor) -> torch.Tensor:
        return self.project(high)[0]

    def reach(self, r: Window) -> Window:
        """Window of the output ``L``; that of ``E`` is :meth:`error_reach`."""
        l0 = trace_reach(self.down1, r)
        return l0 | trace_reach(self.down2, self.error_reach(r))

    def error_reach(self, r: Window) -> Window:
        return trace_reach(self.up, trace_reach(self.down1, r)) | r

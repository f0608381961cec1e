"""Blur by a point-spread function: ``y = h * x``, one operator for numpy and torch.

``(h * x)(r) = sum_s h(s) x(r - s)`` with the PSF ``h`` centred at index ``size // 2`` on each
axis. The boundary decides what ``x`` is outside the image:

``"periodic"``
    circular convolution through the FFT, ``irfft2(H . rfft2(x))`` with ``H`` the transfer
    function (OTF) of the PSF placed with its centre at ``(0, 0)``; the adjoint multiplies by
    ``conj(H)``.
``"symmetric"``
    half-sample mirror continuation (``x(-1) = x(0)``). For a PSF even along both axes it is
    diagonalised by the type-II DCT (Martucci, IEEE Trans. Signal Process. 42, 1038, 1994):
    ``h * x = IDCT(lambda . DCT(x))``, ``lambda`` the real DFT of the PSF on the mirrored
    ``(2 ny, 2 nx)`` grid (numpy); otherwise (and in torch) the mirrored image is blurred
    periodically on the doubled grid and cropped.
``"reflect"``, ``"replicate"``, ``"zero"``
    whole-sample mirror (``x(-1) = x(1)``; edge replication when the image is not larger than
    the PSF's half-width), edge replication or zeros beyond the border, over the PSF's
    half-width; same output size (odd PSF sizes only).
``"valid"``
    no continuation: only the ``(ny - ky + 1, nx - kx + 1)`` outputs whose support lies in the
    image (``scipy.signal.fftconvolve(x, h, mode="valid")``).

Arrays: ``x`` is ``(..., ny, nx)``; the PSF ``(ky, kx)`` (one for all) or ``(..., ky, kx)``
broadcast against ``x``'s leading axes (one PSF per example). numpy inputs go through
``scipy.fft`` / ``scipy.signal.fftconvolve``; torch tensors through ``torch.fft`` (periodic,
symmetric) or ``conv2d`` (the others), differentiable in ``x`` and in a tensor PSF. The OTF
of a fixed PSF is computed once per grid and cached.

How the other copies map on it (for their migration):

* ``losses.reblur_to_input``: ``Blur(h, boundary="reflect")(x)`` then :class:`Binning`.
* ``nets.oidn`` (``degrade``): ``Blur(h, boundary="reflect")(obj)`` (a symmetric ``h``: the
  flipped kernel is the same).
* ``training.dbpn_pairs_simulated``: ``Blur(psf, boundary="zero")(truth)`` (``fftconvolve``
  ``mode="same"``).
* ``psf_id.reblur``: ``Blur(h, boundary="valid")(x)`` with ``h`` ``(N, 1, k, k)``.

References: Goodman, *Introduction to Fourier Optics*, ch. 6 (incoherent imaging as a
convolution with the intensity PSF); Hansen, Nagy & O'Leary, *Deblurring Images: Matrices,
Spectra, and Filtering*, SIAM 2006, ch. 4 (boundary conditions and their fast transforms).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.fft as sfft
from scipy.signal import fftconvolve

from .base import LinearOperator, is_torch

__all__ = ["BOUNDARIES", "Blur", "place_psf"]

BOUNDARIES = ("periodic", "symmetric", "reflect", "replicate", "zero", "valid")
_PAD_MODES = {"reflect": ("reflect", "reflect"), "replicate": ("edge", "replicate")}


def place_psf(psf: Any, shape: tuple[int, int]) -> Any:
    """The PSF on a zero grid of ``shape`` with its centre (index ``size // 2``) at ``(0, 0)``.

    ``g[..., (i - ky // 2) mod ny, (j - kx // 2) mod nx] += h[..., i, j]`` (a PSF larger than
    the grid wraps around, like :func:`dps_stages.optics.otf_from_psf`); numpy (float64) or
    torch (the PSF's dtype, differentiable). Its DFT is the transfer function of the periodic
    convolution.
    """
    ky, kx = psf.shape[-2:]
    ny, nx = shape
    if is_torch(psf):
        import torch

        iy = (torch.arange(ky, device=psf.device) - ky // 2) % ny
        ix = (torch.arange(kx, device=psf.device) - kx // 2) % nx
        flat = (iy[:, None] * nx + ix[None, :]).reshape(-1)
        out = psf.new_zeros(psf.shape[:-2] + (ny * nx,))
        out = out.index_add(-1, flat, psf.reshape(psf.shape[:-2] + (ky * kx,)))
        return out.reshape(psf.shape[:-2] + (ny, nx))
    psf = np.asarray(psf, dtype=np.float64)
    iy = (np.arange(ky) - ky // 2) % ny
    ix = (np.arange(kx) - kx // 2) % nx
    out = np.zeros(psf.shape[:-2] + (ny, nx), dtype=np.float64)
    if psf.ndim == 2:
        np.add.at(out, np.ix_(iy, ix), psf)
    else:
        for idx in np.ndindex(psf.shape[:-2]):
            np.add.at(out[idx], np.ix_(iy, ix), psf[idx])
    return out


def _is_even(psf: np.ndarray) -> bool:
    """Whether an odd-sized 2D PSF is even about its centre along each axis (to 1e-6)."""
    if psf.ndim != 2 or psf.shape[0] % 2 == 0 or psf.shape[1] % 2 == 0:
        return False
    tol = 1e-6 * float(np.abs(psf).max())
    return bool(np.abs(psf - psf[::-1, :]).max() <= tol and np.abs(psf - psf[:, ::-1]).max() <= tol)


def _mirror(x: Any) -> Any:
    """Half-sample mirror continuation of the last two axes onto the doubled grid."""
    if is_torch(x):
        import torch

        x = torch.cat([x, x.flip(-2)], dim=-2)
        return torch.cat([x, x.flip(-1)], dim=-1)
    x = np.concatenate([x, x[..., ::-1, :]], axis=-2)
    return np.concatenate([x, x[..., ::-1]], axis=-1)


def _fold(x: Any, shape: tuple[int, int]) -> Any:
    """Adjoint of :func:`_mirror`: each doubled-grid sample added back to its source."""
    ny, nx = shape
    if is_torch(x):
        x = x[..., :ny, :] + x[..., ny:, :].flip(-2)
        return x[..., :nx] + x[..., nx:].flip(-1)
    x = x[..., :ny, :] + x[..., ny:, :][..., ::-1, :]
    return x[..., :nx] + x[..., nx:][..., ::-1]


def _pad_matrix(n: int, w: int, mode: str) -> np.ndarray:
    """``P`` with ``np.pad(v, w, mode) = P v`` for a 1D ``v`` of length ``n`` (0/1 entries)."""
    if mode == "constant":
        idx = np.pad(np.arange(n), w, mode="constant", constant_values=-1)
    else:
        idx = np.pad(np.arange(n), w, mode=mode)
    p = np.zeros((n + 2 * w, n))
    keep = idx >= 0
    p[np.flatnonzero(keep), idx[keep]] = 1.0
    return p


class Blur(LinearOperator):
    """``A x = h * x`` with a boundary rule (module docstring); ``A^T y = h^T * y`` (correlation).

    Parameters
    ----------
    psf
        ``(ky, kx)`` or ``(..., ky, kx)`` PSF centred at ``size // 2`` (numpy or torch), used
        as given (no normalisation). Give either ``psf`` or ``otf``.
    otf
        Transfer function of the periodic convolution on the image grid (unshifted FFT
        layout), full ``(ny, nx)`` or real half ``(ny, nx // 2 + 1)``; ``boundary`` must be
        ``"periodic"``.
    boundary
        One of :data:`BOUNDARIES`.
    workers
        ``scipy.fft`` workers (numpy paths).
    """

    def __init__(
        self,
        psf: Any = None,
        *,
        otf: Any = None,
        boundary: str = "periodic",
        workers: int = -1,
    ) -> None:
        if (psf is None) == (otf is None):
            raise ValueError("give exactly one of psf and otf")
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {BOUNDARIES}; got {boundary!r}")
        if otf is not None and boundary != "periodic":
            raise ValueError("an OTF defines a periodic blur; boundary must be 'periodic'")
        if psf is not None and boundary in ("reflect", "replicate", "zero"):
            if psf.shape[-2] % 2 == 0 or psf.shape[-1] % 2 == 0:
                raise ValueError(f"boundary {boundary!r} needs odd PSF sizes; got {psf.shape}")
        self.psf = psf
        self.otf = otf
        self.boundary = boundary
        self.workers = workers
        self._cache: dict[Any, Any] = {}

    # ------------------------------------------------------------------ transfer functions
    def rotf(self, shape: tuple[int, int], like: Any = None) -> Any:
        """Real-half transfer function ``(..., ny, nx // 2 + 1)`` of the periodic blur on
        ``shape``: complex64 numpy, or a torch tensor on ``like``'s device (cached unless the
        PSF carries a gradient)."""
        torch_out = like is not None and is_torch(like)
        grad = is_torch(self.psf) and self.psf.requires_grad
        key = (shape, str(like.device), like.dtype) if torch_out else (shape,)
        if not grad and key in self._cache:
            return self._cache[key]
        hx = shape[1] // 2 + 1
        if self.otf is not None:
            otf = self.otf
            if otf.shape[-2:] == shape:
                otf = otf[..., :hx]
            if otf.shape[-2:] != (shape[0], hx):
                raise ValueError(f"OTF of shape {otf.shape} does not fit the grid {shape}")
            tf = otf
        elif is_torch(self.psf):
            import torch

            tf = torch.fft.rfft2(place_psf(self.psf, shape))
        else:
            tf = sfft.rfft2(place_psf(self.psf, shape), workers=self.workers)
            tf = tf.astype(np.complex64)
        if torch_out:
            import torch

            if not is_torch(tf):
                tf = torch.from_numpy(np.ascontiguousarray(tf))
            cdtype = torch.complex128 if like.dtype == torch.float64 else torch.complex64
            tf = tf.to(device=like.device, dtype=cdtype)
        if not grad:
            self._cache[key] = tf
        return tf

    def _dct_lambda(self, shape: tuple[int, int]) -> np.ndarray:
        """Eigenvalues ``lambda(ky, kx) = sum_r h(r) cos(pi ky ry / ny) cos(pi kx rx / nx)``
        (``r`` from the PSF centre) of the mirrored blur, for an even PSF."""
        key = ("dct", shape)
        if key not in self._cache:
            psf = np.asarray(self.psf, dtype=np.float64)
            cy, cx = (
                np.cos(np.pi * np.outer(np.arange(n), np.arange(m) - m // 2) / n)
                for n, m in zip(shape, psf.shape, strict=True)
            )
            self._cache[key] = np.ascontiguousarray(cy @ psf @ cx.T, dtype=np.float32)
        return self._cache[key]

    def uses_dct(self) -> bool:
        """Whether the numpy symmetric path is the exact DCT one (an even 2D PSF)."""
        key = "even"
        if key not in self._cache:
            self._cache[key] = (
                self.psf is not None and not is_torch(self.psf) and _is_even(np.asarray(self.psf))
            )
        return self._cache[key]

    # ------------------------------------------------------------------ periodic core
    def _periodic(self, x: Any, adjoint: bool, overwrite: bool = False) -> Any:
        shape = tuple(x.shape[-2:])
        tf = self.rotf(shape, like=x if is_torch(x) else None)
        if is_torch(x):
            import torch

            spec = torch.fft.rfft2(x)
            spec = spec * (tf.conj() if adjoint else tf)
            return torch.fft.irfft2(spec, s=shape)
        spec = sfft.rfft2(x, workers=self.workers, overwrite_x=overwrite)
        spec *= np.conj(tf) if adjoint else tf
        return sfft.irfft2(spec, s=shape, workers=self.workers, overwrite_x=True)

    def _symmetric(self, x: Any, adjoint: bool, overwrite: bool = False) -> Any:
        shape = tuple(x.shape[-2:])
        if not is_torch(x) and self.uses_dct():
            spec = sfft.dctn(x, type=2, axes=(-2, -1), workers=self.workers, overwrite_x=overwrite)
            spec *= self._dct_lambda(shape)
            return sfft.idctn(spec, type=2, axes=(-2, -1), workers=self.workers, overwrite_x=True)
        if adjoint:
            big = self._periodic(_mirror_adjoint_pad(x), True)
            return _fold(big, shape)
        return self._periodic(_mirror(x), False)[..., : shape[0], : shape[1]]

    # ------------------------------------------------------------------ spatial modes
    def _spatial(self, x: Any, adjoint: bool) -> Any:
        if is_torch(x):
            if adjoint:
                return self._torch_adjoint(x)
            return self._torch_spatial(x)
        h = np.asarray(self.psf)
        x = np.asarray(x)
        h = h.reshape((1,) * (x.ndim - h.ndim) + h.shape)
        hh = h[..., ::-1, ::-1] if adjoint else h
        ky, kx = h.shape[-2:]
        if self.boundary == "valid":
            return fftconvolve(x, hh, mode="full" if adjoint else "valid", axes=(-2, -1))
        if self.boundary == "zero":
            return fftconvolve(x, hh, mode="same", axes=(-2, -1))
        py, px = ky // 2, kx // 2
        mode = self._pad_mode(x.shape[-2:], numpy=True)
        if not adjoint:
            widths = [(0, 0)] * (x.ndim - 2) + [(py, py), (px, px)]
            return fftconvolve(np.pad(x, widths, mode=mode), h, mode="valid", axes=(-2, -1))
        full = fftconvolve(x, hh, mode="full", axes=(-2, -1))
        ny, nx = x.shape[-2:]
        out = np.tensordot(full, _pad_matrix(nx, px, mode), axes=([-1], [0]))
        out = np.moveaxis(np.tensordot(out, _pad_matrix(ny, py, mode), axes=([-2], [0])), -1, -2)
        return out

    def _pad_mode(self, shape: tuple[int, ...], numpy: bool) -> str:
        """numpy / torch padding mode; reflection falls back to replication on tiny images."""
        ky, kx = self.psf.shape[-2:]
        if self.boundary == "zero":
            return "constant"
        name = self.boundary
        if name == "reflect" and not (ky // 2 < shape[-2] and kx // 2 < shape[-1]):
            name = "replicate"
        return _PAD_MODES[name][0 if numpy else 1]

    def _torch_spatial(self, x: Any) -> Any:
        import torch
        import torch.nn.functional as F

        h = self.psf
        if not is_torch(h):
            h = torch.as_tensor(np.ascontiguousarray(h))
        h = h.to(device=x.device, dtype=x.dtype).flip(-2, -1)
        ky, kx = h.shape[-2:]
        lead = x.shape[:-2]
        ny, nx = x.shape[-2:]
        if self.boundary != "valid":
            py, px = ky // 2, kx // 2
            flat = x.reshape(-1, 1, ny, nx)
            if py or px:
                mode = self._pad_mode((ny, nx), numpy=False)
                flat = F.pad(flat, (px, px, py, py), mode=mode)
            x = flat.reshape(*lead, flat.shape[-2], flat.shape[-1])
        if h.ndim == 2:
            flat = x.reshape(-1, 1, x.shape[-2], x.shape[-1])
            out = F.conv2d(flat, h[None, None])
        else:
            shape = torch.broadcast_shapes(lead, h.shape[:-2])
            xb = x.expand(*shape, x.shape[-2], x.shape[-1])
            n = int(np.prod(shape)) if shape else 1
            w = h.expand(*shape, ky, kx).reshape(n, 1, ky, kx)
            out = F.conv2d(xb.reshape(1, n, x.shape[-2], x.shape[-1]), w, groups=n)
            lead = shape
        return out.reshape(*lead, out.shape[-2], out.shape[-1])

    def _torch_adjoint(self, y: Any) -> Any:
        """``A^T y`` as the vector-Jacobian product of the (linear) forward map."""
        import torch

        ky, kx = self.psf.shape[-2:]
        grow = (ky - 1, kx - 1) if self.boundary == "valid" else (0, 0)
        lead = y.shape[:-2]
        if self.boundary == "valid" and is_torch(self.psf) and self.psf.ndim > 2:
            lead = torch.broadcast_shapes(lead, self.psf.shape[:-2])
        x0 = y.new_zeros(*lead, y.shape[-2] + grow[0], y.shape[-1] + grow[1])
        _, vjp = torch.func.vjp(self._torch_spatial, x0)
        return vjp(y.expand(*self._torch_spatial(x0).shape))[0]

    # ------------------------------------------------------------------ operator
    def A(self, x: Any, *, overwrite: bool = False) -> Any:  # noqa: N802
        """``h * x`` (numpy: float32/float64 as the transforms give; ``overwrite`` lets the
        numpy FFT paths reuse ``x``'s memory)."""
        if self.boundary == "periodic":
            return self._periodic(x, False, overwrite)
        if self.boundary == "symmetric":
            return self._symmetric(x, False, overwrite)
        return self._spatial(x, False)

    def A_adjoint(self, y: Any, *, overwrite: bool = False) -> Any:  # noqa: N802
        """``h^T * y``: correlation with the PSF, the adjoint of :meth:`A` (for ``"valid"``
        the full correlation, one PSF size larger)."""
        if self.boundary == "periodic":
            return self._periodic(y, True, overwrite)
        if self.boundary == "symmetric":
            return self._symmetric(y, True, overwrite)
        return self._spatial(y, True)


def _mirror_adjoint_pad(y: Any) -> Any:
    """``C^T y``: the crop's adjoint, zeros on the doubled grid with ``y`` in the corner."""
    ny, nx = y.shape[-2:]
    if is_torch(y):
        import torch.nn.functional as F

        return F.pad(y, (0, nx, 0, ny))
    out = np.zeros(y.shape[:-2] + (2 * ny, 2 * nx), dtype=y.dtype)
    out[..., :ny, :nx] = y
    return out

"""Sub-pixel registration of a candidate image to a reference by phase correlation.

Two acquisitions of the same field are rarely on the same pixels (stage drift, a refocus
between acquisitions), and a metric such as SSIM, which compares pixel neighbourhoods, then
penalises a sharp candidate more than a smooth one. Registration estimates the translation
``d = (dy, dx)`` that best aligns the *moving* image ``m`` to the reference ``r``,

    d = argmax_s  c(s),   c(s) = F^-1[ R(f) conj(M(f)) / N(f) ](s),

with ``R = F[p(r)]`` and ``M = F[p(m)]`` the spectra of the periodic components of the
images (Moisan 2011: ``u = p + s`` with ``s`` the smooth image whose Laplacian matches the
jumps across the image borders, ``s_hat(q) = v_hat(q) / (2 cos(2 pi q_y / N_y) + 2 cos(2 pi
q_x / N_x) - 4)``, ``v`` the border differences; the borders, which do not match between
two fields, then add no cross at zero frequency and no spurious peak at zero shift, and,
unlike a fixed apodisation window, the periodic component does not bias the peak towards
zero shift), and ``N = 1`` (plain cross-correlation, the matched filter: robust at low
signal, the default) or ``N = |R conj(M)|`` (phase correlation, Kuglin & Hines 1975: a
sharper peak, but it weights every frequency alike, so noise beyond the optical cutoff
biases it). The integer peak is refined to ``1 / upsample_factor`` pixel by the
matrix-multiply DFT of the cross-power spectrum around it (Guizar-Sicairos, Thurman &
Fienup 2008), as :func:`skimage.registration.phase_cross_correlation` implements it.

The moving image is then resampled at ``x - d`` (cubic spline, :func:`scipy.ndimage.shift`),
so that ``shifted(x) = m(x - d)`` lines up with ``r(x)``. The ``ceil(|d|)`` pixels along the
borders the shift uncovers hold no data of the moving image; :func:`valid_region` gives the
slices that exclude them, so that a score can be taken over the overlap only.

References
----------
.. [1] M. Guizar-Sicairos, S. T. Thurman, J. R. Fienup, "Efficient subpixel image
       registration algorithms", Opt. Lett. 33, 156-158 (2008), doi:10.1364/OL.33.000156.
.. [2] C. D. Kuglin, D. C. Hines, "The phase correlation image alignment method", Proc.
       IEEE Int. Conf. Cybernetics and Society, 163-165 (1975).
.. [3] L. Moisan, "Periodic plus smooth image decomposition", J. Math. Imaging Vis. 39,
       161-179 (2011), doi:10.1007/s10851-010-0227-1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.registration import phase_cross_correlation

__all__ = [
    "Registration",
    "estimate_shift",
    "periodic_component",
    "register",
    "shift_image",
    "valid_region",
]


@dataclass(frozen=True)
class Registration:
    """The result of :func:`register`.

    Attributes
    ----------
    image
        The moving image resampled onto the reference: ``image(x) = moving(x - shift)``.
    shift
        ``(dy, dx)`` in pixels, the translation applied to the moving image.
    error
        Normalised RMS error of the alignment from the cross-correlation peak
        (``sqrt(1 - |c_max|^2 / (E_r E_m))``, Guizar-Sicairos et al. 2008): 0 for a perfect
        match of the periodic components, near 1 for unrelated images (meaningful with
        ``normalization=None`` only: after phase normalisation it is near 1 always).
    valid
        ``(rows, cols)`` slices of ``image`` that hold data of the moving image (see
        :func:`valid_region`).
    """

    image: np.ndarray
    shift: tuple[float, float]
    error: float
    valid: tuple[slice, slice]


def periodic_component(u: np.ndarray) -> np.ndarray:
    """The periodic component ``p = u - s`` of a 2D image (Moisan 2011), float64.

    ``v`` holds the jumps across the borders (``v[0, :] = u[-1, :] - u[0, :]``,
    ``v[-1, :] = -v[0, :]``, the same along the columns, added), and the smooth component is
    ``s_hat(q) = v_hat(q) / (2 cos(2 pi q_y / N_y) + 2 cos(2 pi q_x / N_x) - 4)`` with
    ``s_hat(0) = 0``.
    """
    u = np.asarray(u, dtype=np.float64)
    ny, nx = u.shape
    v = np.zeros_like(u)
    dy = u[-1, :] - u[0, :]
    dx = u[:, -1] - u[:, 0]
    v[0, :] += dy
    v[-1, :] -= dy
    v[:, 0] += dx
    v[:, -1] -= dx
    cy = np.cos(2.0 * np.pi * np.arange(ny) / ny)[:, None]
    cx = np.cos(2.0 * np.pi * np.arange(nx) / nx)[None, :]
    denom = 2.0 * cy + 2.0 * cx - 4.0
    denom[0, 0] = 1.0
    s_hat = np.fft.fft2(v) / denom
    s_hat[0, 0] = 0.0
    return u - np.fft.ifft2(s_hat).real


def _check_pair(moving: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = np.asarray(moving, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if m.ndim != 2 or r.ndim != 2:
        raise ValueError(f"expected two 2D images; got shapes {m.shape} and {r.shape}")
    if m.shape != r.shape:
        raise ValueError(f"shapes differ: moving {m.shape} vs reference {r.shape}")
    if not (np.isfinite(m).all() and np.isfinite(r).all()):
        raise ValueError("images hold NaN or infinite pixels")
    return m, r


def estimate_shift(
    moving: np.ndarray,
    reference: np.ndarray,
    *,
    upsample_factor: int = 100,
    normalization: str | None = None,
    periodic: bool = True,
) -> tuple[np.ndarray, float]:
    """The translation ``(dy, dx)`` that aligns ``moving`` to ``reference``, sub-pixel.

    ``reference(x) ~ moving(x - d)``: a feature at ``p`` in ``moving`` sits at ``p + d`` in
    ``reference``. The periodic components of both images (:func:`periodic_component`,
    mean removed) are correlated, or the images themselves (``periodic=False``: for images
    that are periodic already, e.g. related by a circular shift, whose smooth components
    would differ).

    Parameters
    ----------
    moving, reference
        2D images of the same shape (any scale and offset).
    upsample_factor
        The shift is resolved to ``1 / upsample_factor`` pixel.
    normalization
        None: plain cross-correlation (default; robust to noise); ``"phase"``: phase
        correlation (see the module docstring).

    Returns
    -------
    (shift, error)
        ``shift`` float64 array ``(dy, dx)`` in pixels and the normalised RMS error.
    """
    m, r = _check_pair(moving, reference)
    if normalization not in (None, "phase"):
        raise ValueError(f"normalization must be None or 'phase'; got {normalization!r}")
    pr = periodic_component(r) if periodic else r
    pm = periodic_component(m) if periodic else m
    shift, error, _ = phase_cross_correlation(
        pr - pr.mean(),
        pm - pm.mean(),
        upsample_factor=int(upsample_factor),
        normalization=normalization,
    )
    return np.asarray(shift, dtype=np.float64), float(error)


def shift_image(image: np.ndarray, shift: tuple[float, float] | np.ndarray, *, order: int = 3):
    """``out(x) = image(x - shift)`` by spline interpolation of ``order`` (borders: nearest).

    Returns float32 for float32 input, else float64.
    """
    arr = np.asarray(image)
    dtype = np.float32 if arr.dtype == np.float32 else np.float64
    out = ndi.shift(arr.astype(np.float64), tuple(float(s) for s in shift), order=order,
                    mode="nearest")  # fmt: skip
    return out.astype(dtype, copy=False)


def valid_region(shape: tuple[int, int], shift: tuple[float, float] | np.ndarray):
    """Slices ``(rows, cols)`` of an image shifted by ``shift`` that hold its own data.

    A shift ``d`` along an axis uncovers ``ceil(|d|)`` pixels at the start (``d > 0``) or
    the end (``d < 0``) of that axis; they are excluded.
    """
    out = []
    for n, d in zip(shape, shift, strict=True):
        k = int(math.ceil(abs(float(d)) - 1e-9))
        if k >= n:
            raise ValueError(f"shift {tuple(shift)} leaves no overlap for shape {tuple(shape)}")
        out.append(slice(k, n) if d > 0 else slice(0, n - k))
    return out[0], out[1]


def register(
    moving: np.ndarray,
    reference: np.ndarray,
    *,
    upsample_factor: int = 100,
    normalization: str | None = None,
    periodic: bool = True,
    order: int = 3,
    shift: tuple[float, float] | np.ndarray | None = None,
) -> Registration:
    """Align ``moving`` to ``reference`` by a translation found by phase correlation.

    Parameters
    ----------
    moving, reference
        2D images of the same shape.
    upsample_factor, normalization, periodic
        See :func:`estimate_shift`.
    order
        Spline order of the resampling (:func:`shift_image`).
    shift
        A known shift ``(dy, dx)`` to apply instead of estimating one (for example the
        shift measured between two acquisitions' widefield images, scaled to this grid);
        ``error`` is then NaN.

    Returns
    -------
    Registration
    """
    m, _ = _check_pair(moving, reference)
    if shift is None:
        d, error = estimate_shift(
            moving, reference, upsample_factor=upsample_factor,
            normalization=normalization, periodic=periodic,
        )  # fmt: skip
    else:
        d, error = np.asarray(shift, dtype=np.float64).reshape(2), math.nan
    image = shift_image(np.asarray(moving), d, order=order)
    return Registration(
        image=image,
        shift=(float(d[0]), float(d[1])),
        error=error,
        valid=valid_region(m.shape, d),
    )

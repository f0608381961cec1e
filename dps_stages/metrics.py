"""Image quality metrics: reference-based scores and reference-free resolution.

Three families of measurement live here.

* **Comparison with a reference** (:func:`compare`): PSNR, SSIM and NRMSE under one fixed
  protocol (percentile normalisation, least-squares scale and offset, scikit-image scores),
  so that every figure of the project is computed the same way.
* **Decorrelation analysis** (:func:`decorrelation`): the resolution of a single image without
  any reference, after Descloux, Grussmayer & Radenovic, "Parameter-free image resolution
  estimation based on decorrelation analysis", Nature Methods 16, 918-924 (2019).
* **Fourier ring correlation** (:func:`frc`): the resolution from two independent
  acquisitions of the same field (Banterle et al., J. Struct. Biol. 183, 363-367, 2013;
  Nieuwenhuizen et al., Nature Methods 10, 557-562, 2013).

All functions are pure: they take 2D arrays with axes (y, x) of any real dtype and return new
values; nothing is modified in place.

Implementation note on speed
----------------------------
The decorrelation function of one filter is a ratio of sums over discs of growing radius in
Fourier space. Every quantity summed depends on the pixel only through its amplitude and its
(normalised) radius, so the spectrum is reduced once to an exact radial histogram (one bin
per distinct integer squared radius, ``kx**2 + ky**2`` on a square grid, through
``np.bincount``). A disc sum for any radius and any radial filter is then a cumulative sum
over that histogram read at the disc's edge, O(1) per radius after one O(N log N) FFT. Only
half of the spectrum (``rfft2``) is needed, the other half being its Hermitian mirror. The
result equals, to float rounding, the mask-by-mask computation of the reference code.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.fft
from skimage.metrics import (
    normalized_root_mse,
    peak_signal_noise_ratio,
    structural_similarity,
)

__all__ = [
    "DecorrelationResult",
    "FRCResult",
    "apodise",
    "compare",
    "decorrelation",
    "fit_scale_offset",
    "frc",
    "normalise_percentile",
]

#: Decorrelation peaks with an amplitude below this are discarded (reference code: 0.05).
DCORR_MIN_AMPLITUDE = 0.05

_WORKERS = max(1, os.cpu_count() or 1)


# --------------------------------------------------------------------------- helpers


def _as_2d(image: Any, name: str = "image") -> np.ndarray:
    """Return ``image`` as a float64 2D array or raise ValueError."""
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2D array (y, x); got shape {arr.shape}")
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real-valued; got dtype {arr.dtype}")
    if not np.issubdtype(arr.dtype, np.number) and arr.dtype != np.bool_:
        raise ValueError(f"{name} must be numeric; got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


# --------------------------------------------------------------------------- comparison


def normalise_percentile(image: np.ndarray, low: float = 0.1, high: float = 99.9) -> np.ndarray:
    """Normalise an image to its percentiles and clip to [0, 1].

    ``out = clip((x - p_low) / (p_high - p_low), 0, 1)`` with ``p_low`` and ``p_high`` the
    ``low``-th and ``high``-th percentiles of ``x`` (linear interpolation, numpy's default).
    When ``p_high == p_low`` (a flat image, or one whose percentile window is flat) the
    denominator would vanish: the result is then ``x > p_low`` as 0/1, i.e. all zeros for a
    constant image.

    Parameters
    ----------
    image : array_like, 2D
        Image (y, x) of any real dtype.
    low, high : float
        Percentiles in [0, 100], ``low < high``.

    Returns
    -------
    numpy.ndarray
        float32 image in [0, 1], same shape as ``image``.
    """
    x = _as_2d(image)
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"need 0 <= low < high <= 100; got low={low}, high={high}")
    p_low, p_high = np.percentile(x, [low, high])
    span = p_high - p_low
    if span <= 0:
        return (x > p_low).astype(np.float32)
    return np.clip((x - p_low) / span, 0.0, 1.0).astype(np.float32)


def fit_scale_offset(candidate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Least-squares affine fit of ``candidate`` to ``reference``.

    Returns ``a * candidate + b`` with ``(a, b) = argmin sum (a c + b - r)**2``, i.e.
    ``a = cov(c, r) / var(c)`` and ``b = mean(r) - a mean(c)``. A constant candidate
    (``var(c) == 0``) gets ``a = 0`` and ``b = mean(r)``.

    Parameters
    ----------
    candidate, reference : array_like, 2D, same shape

    Returns
    -------
    numpy.ndarray
        float64 array, the fitted candidate.
    """
    c = _as_2d(candidate, "candidate")
    r = _as_2d(reference, "reference")
    if c.shape != r.shape:
        raise ValueError(f"shapes differ: candidate {c.shape} vs reference {r.shape}")
    c_mean = c.mean()
    r_mean = r.mean()
    dc = c - c_mean
    var = float(np.dot(dc.ravel(), dc.ravel()))
    if var == 0.0:
        return np.full_like(c, r_mean)
    a = float(np.dot(dc.ravel(), (r - r_mean).ravel())) / var
    b = r_mean - a * c_mean
    return a * c + b


def compare(candidate: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """PSNR, SSIM and NRMSE of a candidate against a reference, under a fixed protocol.

    Protocol (the one used for every figure of the project):

    1. both images are normalised to their 0.1 and 99.9 percentiles and clipped to [0, 1]
       (:func:`normalise_percentile`);
    2. the candidate is fitted to the reference by least squares, scale and offset
       (:func:`fit_scale_offset`), and not clipped afterwards;
    3. ``psnr = 10 log10(1 / MSE)`` (:func:`skimage.metrics.peak_signal_noise_ratio`,
       data_range=1; ``inf`` when the fitted candidate equals the reference);
       ``ssim``: :func:`skimage.metrics.structural_similarity` with data_range=1 and its
       defaults (7 x 7 uniform window, K1=0.01, K2=0.03; Wang et al., IEEE TIP 13, 600, 2004);
       ``nrmse``: :func:`skimage.metrics.normalized_root_mse` with the 'euclidean'
       normalisation, ``||ref - cand||_2 / ||ref||_2`` on the normalised images.

    Parameters
    ----------
    candidate, reference : array_like, 2D, same shape

    Returns
    -------
    dict
        ``{"psnr": float, "ssim": float, "nrmse": float}``.

    Raises
    ------
    ValueError
        If the shapes differ or an input is not 2D.
    """
    c_raw = np.asarray(candidate)
    r_raw = np.asarray(reference)
    if c_raw.shape != r_raw.shape:
        raise ValueError(f"shapes differ: candidate {c_raw.shape} vs reference {r_raw.shape}")
    ref = normalise_percentile(r_raw).astype(np.float64)
    cand = fit_scale_offset(normalise_percentile(c_raw), ref)
    mse = float(np.mean((ref - cand) ** 2))
    if mse == 0.0:
        psnr = math.inf
    else:
        psnr = float(peak_signal_noise_ratio(ref, cand, data_range=1.0))
    ssim = float(structural_similarity(ref, cand, data_range=1.0))
    if not np.any(ref):
        nrmse = 0.0 if mse == 0.0 else math.inf
    else:
        nrmse = float(normalized_root_mse(ref, cand, normalization="euclidean"))
    return {"psnr": psnr, "ssim": ssim, "nrmse": nrmse}


# --------------------------------------------------------------------------- apodisation


def _edge_window(n: int, width: int) -> np.ndarray:
    """1D raised-cosine edge window: ``width`` pixels on each side rising from 0 to 1.

    ``w[i] = (1 - cos(pi i / (width - 1))) / 2`` for the i-th pixel from an edge,
    i = 0 .. width-1, and 1 elsewhere: the outermost pixel has weight 0 and the innermost
    tapered pixel weight 1, as in the reference code's ``apodImRect``.
    """
    w = np.ones(n, dtype=np.float64)
    width = min(int(width), n // 2)
    if width <= 0:
        return w
    if width == 1:
        ramp = np.zeros(1)
    else:
        ramp = 0.5 * (1.0 - np.cos(np.pi * np.arange(width) / (width - 1)))
    w[:width] = ramp
    w[n - width :] = ramp[::-1]
    return w


def apodise(image: np.ndarray, width: int = 20) -> np.ndarray:
    """Taper the borders of an image with a raised-cosine edge (Descloux et al. 2019).

    ``out = (x - mean(x)) * w_y[:, None] * w_x[None, :] + mean(x)``, where ``w`` is 1 inside
    and ``(1 - cos(pi i / (width - 1))) / 2`` on the ``width`` pixels i = 0..width-1 next to each
    border (the border pixel itself gets weight 0, hence the image mean). This suppresses the
    cross-shaped leakage that the periodic boundary of the FFT puts in the spectrum.

    On a square image this is the authors' ``apodImRect``. On a rectangular image each axis
    gets ``width`` pixels (the authors instead stretch the short axis' window to the long
    axis).

    Parameters
    ----------
    image : array_like, 2D
    width : int
        Number of tapered pixels on each border; 0 disables the apodisation. Clamped to half
        the image side.

    Returns
    -------
    numpy.ndarray
        float64 apodised image.
    """
    x = _as_2d(image)
    if width < 0:
        raise ValueError(f"apodisation width must be >= 0; got {width}")
    if width == 0:
        return x.copy()
    mean = float(x.mean())
    wy = _edge_window(x.shape[0], width)
    wx = _edge_window(x.shape[1], width)
    return (x - mean) * wy[:, None] * wx[None, :] + mean


# --------------------------------------------------------------------------- radial spectrum


@dataclass(frozen=True, eq=False)
class _RadialSpectrum:
    """Radial histogram of a spectrum inside the unit disc (normalised frequency < 1).

    ``r2`` are the distinct squared normalised radii present (sorted), ``amp`` and ``power``
    the sums of ``|I|`` and ``|I|**2`` over the pixels at that radius, ``count`` the number of
    pixels with ``|I| > 0`` there (the support of the normalised spectrum ``I / |I|``).
    ``key`` are the integer keys of the bins and ``scale`` converts a squared radius to a key.
    """

    key: np.ndarray
    r2: np.ndarray
    amp: np.ndarray
    power: np.ndarray
    count: np.ndarray
    scale: float


def _radial_spectrum(image: np.ndarray) -> _RadialSpectrum:
    """FFT an (odd-sized) image and bin its half spectrum by squared normalised radius.

    The normalised radius follows the reference code: on an image of odd size (ny, nx) the
    frequency index (ky, kx), |ky| <= hy = (ny - 1) / 2, has radius
    ``R = sqrt((kx / hx)**2 + (ky / hy)**2)``, so that R = 1 at the last sampled frequency of
    each axis (the Nyquist frequency, within half a pixel of the spectrum).

    Bins are exact: the integer key ``kx**2 + ky**2`` (square image, ``R**2 = key / h**2``)
    or ``kx**2 hy**2 + ky**2 hx**2`` (rectangular image, ``R**2 = key / (hx hy)**2``) is the
    same for two pixels exactly when their radii are equal. A square image is binned with
    ``np.bincount`` over all keys; a rectangular one, whose keys are sparse, through
    ``np.unique`` (a sort, still well under a second for 2048 x 2048).
    """
    ny, nx = image.shape
    hy, hx = (ny - 1) // 2, (nx - 1) // 2
    spec = scipy.fft.rfft2(image.astype(np.float32), workers=_WORKERS)
    amp = np.abs(spec).astype(np.float64)
    ky = np.fft.fftfreq(ny, 1.0 / ny).round().astype(np.int64)
    kx = np.arange(spec.shape[1], dtype=np.int64)
    # Hermitian symmetry: every column kx > 0 stands for itself and its mirror -kx (nx is odd,
    # so the half spectrum has no unpaired Nyquist column).
    weight = np.full(kx.size, 2.0)
    weight[0] = 1.0
    if hy == hx:
        scale = hx * hx
        key = (ky * ky)[:, None].astype(np.int32) + (kx * kx)[None, :].astype(np.int32)
    else:
        scale = hx * hx * hy * hy
        key = (ky * ky * hx * hx)[:, None] + (kx * kx * hy * hy)[None, :]
    inside = key < scale  # the unit disc R < 1
    key = key[inside]
    amp = amp[inside]
    wgt = np.broadcast_to(weight[None, :], inside.shape)[inside]
    has_amp = wgt * (amp > 0)
    wamp = wgt * amp
    if hy == hx:
        npix = np.bincount(key, weights=wgt, minlength=scale)
        present = np.flatnonzero(npix)
        sums = [
            np.bincount(key, weights=w, minlength=scale)[present]
            for w in (wamp, wamp * amp, has_amp)
        ]
    else:
        present, inverse = np.unique(key, return_inverse=True)
        sums = [
            np.bincount(inverse, weights=w, minlength=present.size)
            for w in (wamp, wamp * amp, has_amp)
        ]
    return _RadialSpectrum(
        key=present,
        r2=present / float(scale),
        amp=sums[0],
        power=sums[1],
        count=sums[2],
        scale=float(scale),
    )


def _dcorr_curve(spec: _RadialSpectrum, radii: np.ndarray, g: float | None) -> np.ndarray:
    """Decorrelation function d(r) for the high-pass filter of parameter ``g``.

    ``d(r) = sum_{R<r} Re{I_g I_n*} / (sqrt(sum_{R<1} |I_g|^2) sqrt(sum_{R<r} |I_n|^2))``
    with ``I_g = I (1 - exp(-2 g^2 R^2))`` (``g=None``: no filter) and ``I_n = I / |I|``.
    Because ``Re{I I_n*} = |I|``, the numerator is a filtered radial sum of ``|I|``.
    """
    if g is None:
        f = np.ones_like(spec.r2)
    else:
        f = -np.expm1(-2.0 * g * g * spec.r2)
    num = np.concatenate(([0.0], np.cumsum(spec.amp * f)))
    cnt = np.concatenate(([0.0], np.cumsum(spec.count)))
    c = math.sqrt(float(np.sum(spec.power * f * f)))
    # number of radial bins strictly inside each disc R < r, i.e. key < r^2 * scale
    pos = np.searchsorted(spec.key, radii * radii * spec.scale, side="left")
    denom = c * np.sqrt(cnt[pos])
    with np.errstate(divide="ignore", invalid="ignore"):
        d = num[pos] / denom
    d[~np.isfinite(d)] = 0.0
    return d


def _dcorr_peak(d: np.ndarray) -> tuple[int, float]:
    """Peak of a decorrelation curve, by the reference code's rule (getDcorrLocalMax).

    Take the global maximum (first occurrence); while it sits at the last sample of the curve,
    drop that sample and look again. A curve still rising at its end has no peak of its own
    and yields index 0 (r = 0 on a curve starting at 0). Curves shorter than 3 samples
    yield index 0. (The reference code also tests the maximum against the minimum of the
    samples after it, with a margin of 0.01; while the maximum is the last sample that test
    compares it with itself, so it never changes the outcome and is left out here.)
    """
    n = d.size
    if n < 3:
        return 0, float(d[0])
    m = n
    ind = int(np.argmax(d[:m]))
    while ind == m - 1 and m > 1:
        m -= 1
        ind = int(np.argmax(d[:m]))
    return ind, float(d[ind])


# --------------------------------------------------------------------------- decorrelation


@dataclass(frozen=True, eq=False)
class DecorrelationResult:
    """Result of :func:`decorrelation`.

    Attributes
    ----------
    kc : float
        Cut-off frequency, normalised (1 = Nyquist); 0 when no significant peak was found.
    a0 : float
        Amplitude of the peak of the unfiltered decorrelation curve (a contrast / SNR gauge).
    resolution_px : float
        ``2 / kc`` in pixels (``inf`` when kc = 0).
    resolution_nm : float or None
        ``resolution_px * pixel_size`` when a pixel size was given, else None.
    pixel_size : float or None
        The pixel size given (nm).
    radii0 : numpy.ndarray
        Radii (normalised frequency) of the first pass, shape (n_r,).
    d0 : numpy.ndarray
        Unfiltered decorrelation curve on ``radii0``.
    g_first : numpy.ndarray
        High-pass parameters of the first pass, shape (n_g + 1,).
    d_first : numpy.ndarray
        First-pass curves, shape (n_g + 1, n_r), on ``radii0``.
    radii_refined : numpy.ndarray
        Radii of the refined pass, shape (n_r,).
    g_refined : numpy.ndarray
        High-pass parameters of the refined pass, shape (n_g,).
    d_refined : numpy.ndarray
        Refined-pass curves, shape (n_g, n_r), on ``radii_refined``.
    kc_candidates, a_candidates : numpy.ndarray
        Peak positions and amplitudes of every curve that enters the final maximum (before
        the amplitude threshold): d0, first-pass filters 1..n_g, refined filters 1..n_g.
    """

    kc: float
    a0: float
    resolution_px: float
    resolution_nm: float | None
    pixel_size: float | None
    radii0: np.ndarray = field(repr=False)
    d0: np.ndarray = field(repr=False)
    g_first: np.ndarray = field(repr=False)
    d_first: np.ndarray = field(repr=False)
    radii_refined: np.ndarray = field(repr=False)
    g_refined: np.ndarray = field(repr=False)
    d_refined: np.ndarray = field(repr=False)
    kc_candidates: np.ndarray = field(repr=False)
    a_candidates: np.ndarray = field(repr=False)

    def to_dict(self, curves: bool = False) -> dict[str, Any]:
        """Plain-Python view (JSON-ready; an infinite resolution becomes None).

        Parameters
        ----------
        curves : bool
            Also include the curves and their radii as lists.
        """
        res_px = self.resolution_px if math.isfinite(self.resolution_px) else None
        res_nm = (
            self.resolution_nm
            if self.resolution_nm is not None and math.isfinite(self.resolution_nm)
            else None
        )
        out: dict[str, Any] = {
            "kc": float(self.kc),
            "a0": float(self.a0),
            "resolution_px": res_px,
            "resolution_nm": res_nm,
            "pixel_size": self.pixel_size,
        }
        if curves:
            for name in (
                "radii0",
                "d0",
                "g_first",
                "d_first",
                "radii_refined",
                "g_refined",
                "d_refined",
                "kc_candidates",
                "a_candidates",
            ):
                out[name] = np.asarray(getattr(self, name)).tolist()
        return out


def decorrelation(
    image: np.ndarray,
    pixel_size: float | None = None,
    n_r: int = 50,
    n_g: int = 10,
    apodise_px: int = 20,
) -> DecorrelationResult:
    """Image resolution by decorrelation analysis (Descloux, Grussmayer & Radenovic 2019).

    Descloux, A., Grussmayer, K. S. & Radenovic, A. "Parameter-free image resolution
    estimation based on decorrelation analysis." Nature Methods 16, 918-924 (2019),
    doi:10.1038/s41592-019-0515-7. Written from the paper and checked against the authors'
    reference code (ImDecorr, ``getDcorr``), whose choices it follows step by step:

    1. **Apodisation** of the borders over ``apodise_px`` pixels (:func:`apodise`); the image
       is then cropped by one row / column where needed so that both sides are odd (a
       spectrum symmetric about its zero frequency).
    2. **Spectra.** ``I(k)`` is the Fourier transform, restricted to the unit disc R < 1 of
       normalised frequency, and ``I_n = I / |I|`` (0 where ``|I| = 0``). The normalised
       radius is taken **per axis** (R = 1 at the Nyquist frequency of each axis), as in the
       reference code, so a rectangular image is analysed whole; its "disc" is an ellipse in
       cycles per pixel.
    3. **Decorrelation function** for a disc mask M(k; r) = [R(k) < r]::

           d(r) = sum_k Re{I(k) I_n*(k) M(k; r)}
                  / sqrt( sum_k |I(k)|^2 * sum_k |I_n(k) M(k; r)|^2 )

       on ``r = linspace(0, 1, n_r)``. Its **peak** (see ``_dcorr_peak``: the global maximum
       after discarding the curve's rising end) gives ``k0`` and ``A0``.
    4. **High-pass repeats.** The curve is recomputed with ``I`` multiplied by the Gaussian
       high-pass ``1 - exp(-2 g^2 R^2)`` (``g = 1 / sigma``), for ``g`` in
       ``[n / 4, exp(linspace(log(2 / k0), log(0.15), n_g))]`` (``n`` the number of rows;
       ``2 / k0`` is replaced by ``max(shape) / 2`` when k0 = 0). Each curve's peak is
       recorded.
    5. **Refinement.** Around the filter that gave the highest peak frequency, ``n_g`` new
       filters are spaced geometrically between that filter and its neighbour (towards the
       stronger filter; towards the weaker one when it is among the last two, and between
       ``n`` and ``n / 4`` when the unfiltered curve won), and the radii are resampled on
       ``linspace(kc - dr, min(kc + 0.4, 1), n_r)`` (``dr`` the first-pass step).
       As in the reference code, the refined curves take the place of the strongest
       first-pass filter among the candidates.
    6. **Result.** Peaks with amplitude below 0.05 are discarded;
       ``kc = max`` of the remaining peak positions (0 if none), ``A0`` the amplitude of the
       unfiltered peak, and the resolution is ``2 / kc`` pixels.

    All the disc sums are computed from one radial histogram of the spectrum by cumulative
    sums (see the module note), so the cost is one FFT plus O(number of radii) per curve.

    Parameters
    ----------
    image : array_like, 2D
        Image (y, x), any real dtype; at least 3 x 3 after cropping to odd sides.
    pixel_size : float, optional
        Pixel size in nm; gives ``resolution_nm``.
    n_r : int
        Number of radii per curve (reference default 50; values below 30 are raised to 30,
        as in the reference code).
    n_g : int
        Number of high-pass filters (reference default 10; values below 5 are raised to 5).
    apodise_px : int
        Width of the cosine edge apodisation in pixels (reference default 20; 0: none).

    Returns
    -------
    DecorrelationResult
        ``kc``, ``a0``, the resolution and every curve computed.

    Notes
    -----
    An image of constant value has no structure to resolve: it returns kc = 0, A0 = 0 and
    zero curves without analysis. A curve that rises to its end (white noise, or noise that
    dominates the signal at every frequency) has no peak, so such an image also gets kc = 0,
    as with the reference code.

    Validation (``benchmarks/bench_decorrelation.py``): on the five reference images of the
    project's test data the result equals the reference code's kc on four and is 0.6 % above
    it on the fifth; every curve equals the mask-by-mask computation to float rounding
    (``tests/test_metrics.py``). A 2048 x 2048 image takes about 0.2 s on 2 CPU cores.
    """
    x = _as_2d(image)
    shape = x.shape
    n_r = max(int(n_r), 30)
    n_g = max(int(n_g), 5)
    if apodise_px < 0:
        raise ValueError(f"apodise_px must be >= 0; got {apodise_px}")
    if pixel_size is not None and not (pixel_size > 0):
        raise ValueError(f"pixel_size must be positive; got {pixel_size}")

    x = apodise(x, apodise_px)
    ny = x.shape[0] - (1 - x.shape[0] % 2)
    nx = x.shape[1] - (1 - x.shape[1] % 2)
    x = x[:ny, :nx]
    if ny < 3 or nx < 3:
        raise ValueError(
            f"image too small for decorrelation analysis: shape {shape}; "
            "need at least 3 x 3 after cropping to odd sides"
        )

    radii0 = np.linspace(0.0, 1.0, n_r)
    if np.ptp(x) == 0:
        return _empty_result(pixel_size, radii0, n_r, n_g)

    spec = _radial_spectrum(x)

    # -- unfiltered curve
    d0 = _dcorr_curve(spec, radii0, None)
    i0, a0 = _dcorr_peak(d0)
    k0 = float(radii0[i0])

    # -- first pass: Ng + 1 high-pass filters
    g_max = 2.0 / k0 if k0 > 0 else max(ny, nx) / 2.0
    g_first = np.concatenate(
        ([ny / 4.0], np.exp(np.linspace(math.log(g_max), math.log(0.15), n_g)))
    )
    d_first = np.empty((g_first.size, n_r))
    kc_first = np.empty(g_first.size)
    a_first = np.empty(g_first.size)
    for h, g in enumerate(g_first):
        d_first[h] = _dcorr_curve(spec, radii0, float(g))
        ind, amp = _dcorr_peak(d_first[h])
        kc_first[h] = radii0[ind]
        a_first[h] = amp

    # -- refinement of the filter range and of the radius sampling
    kc_all = np.concatenate(([k0], kc_first))  # index 0: unfiltered, h + 1: filter h
    i1 = int(np.flatnonzero(kc_all == kc_all.max())[-1])
    if i1 == 0:
        g1, g2 = float(ny), float(g_first[0])
    elif i1 >= n_g:
        g1, g2 = float(g_first[i1 - 2]), float(g_first[i1 - 1])
    else:
        g1, g2 = float(g_first[i1 - 1]), float(g_first[i1])
    g_refined = np.exp(np.linspace(math.log(g1), math.log(g2), n_g))
    dr = radii0[1] - radii0[0]
    r1 = max(kc_all[i1] - dr, 0.0)
    r2 = min(kc_all[i1] + 0.4, 1.0, radii0[-1])
    radii_refined = np.linspace(r1, r2, n_r)

    d_refined = np.empty((n_g, n_r))
    kc_ref = np.empty(n_g)
    a_ref = np.empty(n_g)
    for h, g in enumerate(g_refined):
        d_refined[h] = _dcorr_curve(spec, radii_refined, float(g))
        ind, amp = _dcorr_peak(d_refined[h])
        kc_ref[h] = radii_refined[ind]
        a_ref[h] = amp

    # The reference code stores the refined results over the last first-pass filter.
    kc_cand = np.concatenate(([k0], kc_first[:n_g], kc_ref))
    a_cand = np.concatenate(([a0], a_first[:n_g], a_ref))
    valid = a_cand >= DCORR_MIN_AMPLITUDE
    kc = float(kc_cand[valid].max()) if np.any(valid) else 0.0
    return _make_result(
        kc,
        a0,
        pixel_size,
        radii0=radii0,
        d0=d0,
        g_first=g_first,
        d_first=d_first,
        radii_refined=radii_refined,
        g_refined=g_refined,
        d_refined=d_refined,
        kc_candidates=kc_cand,
        a_candidates=a_cand,
    )


def _make_result(
    kc: float, a0: float, pixel_size: float | None, **curves: np.ndarray
) -> DecorrelationResult:
    res_px = 2.0 / kc if kc > 0 else math.inf
    res_nm = None if pixel_size is None else res_px * float(pixel_size)
    for arr in curves.values():
        arr.setflags(write=False)
    return DecorrelationResult(
        kc=float(kc),
        a0=float(a0),
        resolution_px=res_px,
        resolution_nm=res_nm,
        pixel_size=None if pixel_size is None else float(pixel_size),
        **curves,
    )


def _empty_result(
    pixel_size: float | None, radii0: np.ndarray, n_r: int, n_g: int
) -> DecorrelationResult:
    return _make_result(
        0.0,
        0.0,
        pixel_size,
        radii0=radii0,
        d0=np.zeros(n_r),
        g_first=np.zeros(n_g + 1),
        d_first=np.zeros((n_g + 1, n_r)),
        radii_refined=radii0.copy(),
        g_refined=np.zeros(n_g),
        d_refined=np.zeros((n_g, n_r)),
        kc_candidates=np.zeros(2 * n_g + 1),
        a_candidates=np.zeros(2 * n_g + 1),
    )


# --------------------------------------------------------------------------- FRC


@dataclass(frozen=True, eq=False)
class FRCResult:
    """Result of :func:`frc`.

    Attributes
    ----------
    frequencies : numpy.ndarray
        Ring frequencies in cycles per pixel, from 0 to the Nyquist frequency 0.5.
    curve : numpy.ndarray
        FRC value per ring (raw, unsmoothed).
    smoothed : numpy.ndarray
        The curve after the moving average used to find the threshold crossing.
    threshold : float
        The threshold used (1/7 by default).
    resolution_px : float
        ``1 / q_c`` in pixels, ``q_c`` the first frequency where the smoothed curve falls
        below the threshold (linear interpolation between rings). When it never does,
        ``1 / 0.5 = 2`` px, the sampling limit, and ``threshold_reached`` is False.
    resolution_nm : float or None
        ``resolution_px * pixel_size`` when a pixel size was given.
    threshold_reached : bool
        Whether the smoothed curve crossed the threshold.
    """

    frequencies: np.ndarray = field(repr=False)
    curve: np.ndarray = field(repr=False)
    smoothed: np.ndarray = field(repr=False)
    threshold: float
    resolution_px: float
    resolution_nm: float | None
    threshold_reached: bool

    def to_dict(self, curves: bool = False) -> dict[str, Any]:
        """Plain-Python view; ``curves=True`` adds the curves as lists."""
        out: dict[str, Any] = {
            "threshold": self.threshold,
            "resolution_px": self.resolution_px,
            "resolution_nm": self.resolution_nm,
            "threshold_reached": self.threshold_reached,
        }
        if curves:
            out["frequencies"] = self.frequencies.tolist()
            out["curve"] = self.curve.tolist()
            out["smoothed"] = self.smoothed.tolist()
        return out


def frc(
    image1: np.ndarray,
    image2: np.ndarray,
    pixel_size: float | None = None,
    threshold: float = 1.0 / 7.0,
    apodise_px: int = 20,
    smooth: int = 3,
) -> FRCResult:
    """Fourier ring correlation of two independent images of the same field.

    ``FRC(q) = sum_{k in ring q} F1(k) F2*(k)
    / sqrt(sum_{ring} |F1(k)|^2 * sum_{ring} |F2(k)|^2)``
    (Saxton & Baumeister 1982; for light microscopy Banterle et al., J. Struct. Biol. 183,
    363-367, 2013, and Nieuwenhuizen et al., Nature Methods 10, 557-562, 2013, who use the
    fixed 1/7 threshold). The resolution is the inverse of the first frequency at which the
    smoothed FRC falls below the threshold.

    Both images are apodised as in :func:`decorrelation` (:func:`apodise`, each about its own
    mean). Rings are 1 / min(ny, nx) cycles/pixel wide (one pixel on a square image), centred
    on ``q_i = i / min(ny, nx)``, with ``q = sqrt((ky/ny)^2 + (kx/nx)^2)``; rings run up to the
    Nyquist frequency 0.5 (the corners of the spectrum are left out). The FRC is real: the
    spectrum of a real image is Hermitian, so the imaginary parts cancel over a ring. The curve
    is smoothed by a centred moving average over ``smooth`` rings (edges: shrinking window)
    before looking for the crossing, which is interpolated linearly between rings.

    Two caveats, both of the method rather than of this code: the lowest rings hold few pixels
    (ring i about 2 pi i), so at low SNR their FRC is noisy and the first crossing may come
    there; and the apodisation spreads the spectrum (by up to about 1 / apodise_px
    cycles/pixel), so an object with a hard band edge reads finer than its band limit (by
    3-15 % on a 256 x 256 image with the default 20-pixel edge; 2-4 % without apodisation,
    the residue being the smoothing).

    Parameters
    ----------
    image1, image2 : array_like, 2D, same shape
        Two independent acquisitions (or halves of one) of the same field.
    pixel_size : float, optional
        Pixel size in nm; gives ``resolution_nm``.
    threshold : float
        FRC threshold (default 1/7).
    apodise_px : int
        Edge apodisation width in pixels (0: none).
    smooth : int
        Width of the moving average in rings (1: none; odd values keep it centred).

    Returns
    -------
    FRCResult
    """
    a = _as_2d(image1, "image1")
    b = _as_2d(image2, "image2")
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: image1 {a.shape} vs image2 {b.shape}")
    if min(a.shape) < 4:
        raise ValueError(f"images too small for FRC: {a.shape}")
    if smooth < 1:
        raise ValueError(f"smooth must be >= 1; got {smooth}")
    ny, nx = a.shape
    f1 = scipy.fft.rfft2(apodise(a, apodise_px), workers=_WORKERS)
    f2 = scipy.fft.rfft2(apodise(b, apodise_px), workers=_WORKERS)
    qy = np.fft.fftfreq(ny)
    qx = np.fft.rfftfreq(nx)
    n_min = min(ny, nx)
    q = np.sqrt(qy[:, None] ** 2 + qx[None, :] ** 2)
    ring = np.rint(q * n_min).astype(np.int64)
    n_rings = n_min // 2 + 1  # rings 0 .. n_min // 2, i.e. up to Nyquist
    np.minimum(ring, n_rings, out=ring)
    # Hermitian weights: columns with a mirror image outside the half spectrum count twice.
    w = np.full(qx.size, 2.0)
    w[0] = 1.0
    if nx % 2 == 0:
        w[-1] = 1.0
    w2 = np.broadcast_to(w[None, :], ring.shape).ravel()
    ring_flat = ring.ravel()

    def ring_sum(values: np.ndarray) -> np.ndarray:
        return np.bincount(ring_flat, weights=values.ravel() * w2, minlength=n_rings + 1)[:n_rings]

    cross = ring_sum((f1 * np.conj(f2)).real)
    p1 = ring_sum(np.abs(f1) ** 2)
    p2 = ring_sum(np.abs(f2) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        curve = cross / np.sqrt(p1 * p2)
    curve[~np.isfinite(curve)] = 0.0
    freqs = np.arange(n_rings) / n_min

    if smooth > 1:
        kernel = np.ones(smooth)
        num = np.convolve(curve, kernel, mode="same")
        den = np.convolve(np.ones_like(curve), kernel, mode="same")
        smoothed = num / den
    else:
        smoothed = curve.copy()

    below = np.flatnonzero(smoothed[1:] < threshold)
    if below.size:
        i = int(below[0]) + 1
        y0, y1 = smoothed[i - 1], smoothed[i]
        t = (y0 - threshold) / (y0 - y1) if y0 > y1 else 1.0
        q_c = freqs[i - 1] + min(max(t, 0.0), 1.0) * (freqs[i] - freqs[i - 1])
        reached = True
    else:
        q_c = freqs[-1]
        reached = False
    res_px = 1.0 / q_c if q_c > 0 else math.inf
    res_nm = None if pixel_size is None else res_px * float(pixel_size)
    for arr in (freqs, curve, smoothed):
        arr.setflags(write=False)
    return FRCResult(
        frequencies=freqs,
        curve=curve,
        smoothed=smoothed,
        threshold=float(threshold),
        resolution_px=float(res_px),
        resolution_nm=res_nm,
        threshold_reached=reached,
    )

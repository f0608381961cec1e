"""Decorrelation analysis: the resolution of one image without a reference.

Descloux, Grussmayer & Radenovic, "Parameter-free image resolution estimation based on
decorrelation analysis", Nature Methods 16, 918-924 (2019), doi:10.1038/s41592-019-0515-7;
the steps follow the authors' code (ImDecorr ``getDcorr``). Derivation, the reference code's
choices and the fast radial-histogram evaluation: docs/metrics.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.fft

from dps_stages.metrics._common import WORKERS, apodise, as_2d

#: Decorrelation peaks with an amplitude below this are discarded (reference code: 0.05).
DCORR_MIN_AMPLITUDE = 0.05


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


def fft_size(n: int, max_crop: float = 0.02) -> int:
    """The odd side the spectrum is taken on: the largest odd length ``<= n`` whose FFT is
    fast (11-smooth: the factors pocketfft transforms directly, ``scipy.fft.next_fast_len``)
    if it drops at most ``max_crop`` of ``n``, else ``n`` or ``n - 1`` (whichever is odd).

    The analysis needs odd sides (no unpaired Nyquist frequency); an odd length with a large
    prime factor (2047 = 23 x 89) transforms 4-6x slower than 2025 = 3^4 5^2. Small images
    keep their size (the radial sampling of a small grid moves kc by a few percent).
    """
    odd = n - (1 - n % 2)
    m = odd
    while m >= max(3, (1.0 - max_crop) * n) and scipy.fft.next_fast_len(m) != m:
        m -= 2
    return m if m >= max(3, (1.0 - max_crop) * n) else odd


def prepare(image: np.ndarray, apodise_px: int = 20) -> np.ndarray:
    """The image the spectrum is taken of: apodised (:func:`apodise`) with odd sides.

    Sides whose odd length (``n`` or ``n - 1``) is FFT-friendly are apodised and then lose
    their last row/column, as in the authors' code; otherwise the image is first cropped,
    centred, to :func:`fft_size` and then apodised (a few percent of the border, where the
    apodisation window is small anyway).
    """
    x = np.asarray(image)
    ny, nx = x.shape
    fy, fx = fft_size(ny), fft_size(nx)
    if fy != ny - (1 - ny % 2) or fx != nx - (1 - nx % 2):
        y0, x0 = (ny - fy) // 2, (nx - fx) // 2
        x = x[y0 : y0 + fy, x0 : x0 + fx]
    x = apodise(x, apodise_px)
    ny = x.shape[0] - (1 - x.shape[0] % 2)
    nx = x.shape[1] - (1 - x.shape[1] % 2)
    return x[:ny, :nx]


def _radial_spectrum(image: np.ndarray) -> _RadialSpectrum:
    """FFT an odd-sized image and bin its half spectrum by squared normalised radius.

    ``R = sqrt((kx / hx)**2 + (ky / hy)**2)``, ``h = (n - 1) / 2`` per axis; exact integer
    bins ``kx**2 + ky**2`` (square) or ``kx**2 hy**2 + ky**2 hx**2`` (docs/metrics.md).
    """
    ny, nx = image.shape
    hy, hx = (ny - 1) // 2, (nx - 1) // 2
    spec = scipy.fft.rfft2(image.astype(np.float32), workers=WORKERS)
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
    """Peak of a decorrelation curve (the reference code's getDcorrLocalMax).

    The global maximum (first occurrence), dropping the last sample while the maximum sits
    there: a curve rising to its end, or shorter than 3 samples, yields index 0.
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


@dataclass(frozen=True, eq=False)
class DecorrelationResult:
    """Result of :func:`decorrelation`.

    ``kc``: cut-off (normalised, 1 = Nyquist; 0: no significant peak); ``a0``: amplitude of
    the unfiltered peak (a contrast gauge); ``resolution_px = 2 / kc`` (inf when kc = 0) and
    ``resolution_nm`` (None without ``pixel_size``). Curves: ``d0`` on ``radii0`` (n_r,),
    ``d_first`` (n_g + 1, n_r) for filters ``g_first``, ``d_refined`` (n_g, n_r) on
    ``radii_refined`` for ``g_refined``; ``kc_candidates`` and ``a_candidates`` the peaks that
    enter the final maximum (d0, first-pass filters 1..n_g, refined filters 1..n_g).
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
        """Plain-Python view (JSON-ready; an infinite resolution becomes None); ``curves``
        adds the curves and radii as lists."""
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
    """Image resolution by decorrelation analysis (Descloux et al., Nat. Methods 16, 2019).

    ``d(r) = sum Re{I I_n*} M_r / sqrt(sum |I|^2 sum |I_n M_r|^2)``, ``I`` the spectrum of the
    apodised image (:func:`apodise`, ``apodise_px``; cropped to odd sides) in the unit disc of
    normalised frequency (1 = Nyquist per axis), ``I_n = I / |I|``, ``M_r`` the disc R < r,
    on ``n_r`` radii (at least 30), repeated with ``n_g`` (at least 5) Gaussian high-passes
    ``1 - exp(-2 g^2 R^2)`` and a refined pass; ``kc`` is the highest peak of amplitude
    >= 0.05 (0 if none: constant or noise-only image) and the resolution ``2 / kc`` pixels
    (times ``pixel_size`` in nm when given). Steps of the authors' code: docs/metrics.md.
    """
    x = as_2d(image)
    shape = x.shape
    n_r = max(int(n_r), 30)
    n_g = max(int(n_g), 5)
    if apodise_px < 0:
        raise ValueError(f"apodise_px must be >= 0; got {apodise_px}")
    if pixel_size is not None and not (pixel_size > 0):
        raise ValueError(f"pixel_size must be positive; got {pixel_size}")

    x = prepare(x, apodise_px)
    ny, nx = x.shape
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

"""Optics of a widefield fluorescence microscope: PSFs, OTFs and Zernike aberrations.

Everything here is a pure function of arrays and physical parameters (numpy/scipy only).
Lengths are in nanometres, spatial frequencies in cycles per nanometre unless a docstring says
otherwise (``zernike_psf`` works in pixels). Arrays are float32 (complex64 for OTFs) with axes
``(y, x)``; a PSF of size ``s`` has its centre at index ``s // 2`` on both axes.

Formulas
--------
- Airy intensity PSF (Born & Wolf, *Principles of Optics*, 8.5.2):
  ``h(r) = [2 J1(v) / v]^2`` with ``v = 2 pi NA r / lambda``. Its full width at half maximum
  is ``0.5145 lambda / NA`` and its first zero lies at ``0.61 lambda / NA``.
- Incoherent OTF of a circular pupil (Goodman, *Introduction to Fourier Optics*, 6.3.2):
  ``OTF(q) = (2 / pi) (acos q - q sqrt(1 - q^2))`` for ``q = f / f_c <= 1``, 0 beyond, with
  the incoherent cutoff ``f_c = 2 NA / lambda``.
- srPSF of DPS (Ye et al., Intelligent Computing 2024, doi 10.34133/icomputing.0082): the
  Airy PSF of the SIM passband, i.e. the Airy PSF with ``NA`` replaced by ``m_f NA`` where
  ``m_f`` is the SIM modulation factor (about 1.9 for linear 2D-SIM).
- Zernike polynomials in Noll's ordering and normalisation (Noll 1976, J. Opt. Soc. Am. 66,
  207): ``Z_j = sqrt(n + 1) R_n^0(rho)`` for ``m = 0`` and
  ``Z_j = sqrt(2 (n + 1)) R_n^|m|(rho) {cos, sin}(|m| theta)`` otherwise (cos for even ``j``,
  sin for odd ``j``), with the radial polynomial
  ``R_n^m(rho) = sum_{s=0}^{(n-m)/2} (-1)^s (n-s)! / (s! ((n+m)/2-s)! ((n-m)/2-s)!)
  rho^(n-2s)``, so that ``(1/pi) int_disc Z_j Z_k = delta_jk``.
- Aberrated PSF of the PSF-identification model (Nguyen, Sarron, Escande, Weiss, "Training
  identification network for blind deconvolution in microscopy"):
  ``h = |F(P exp(-i 2 pi sum_k theta_k Z_k))|^2`` with ``P`` the pupil disc of radius ``f_c``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from math import factorial

import numpy as np
from scipy import fft as sfft
from scipy import special

__all__ = [
    "Optics",
    "PupilOTF",
    "airy_psf",
    "fwhm",
    "noll_to_nm",
    "otf_from_psf",
    "psf_for",
    "psf_size_for",
    "sr_psf",
    "widefield_otf",
    "zernike",
    "zernike_psf",
]


@dataclass(frozen=True)
class Optics:
    """Acquisition optics of a (SIM) microscope.

    Attributes
    ----------
    wavelength
        Emission wavelength ``lambda`` in nm.
    na
        Numerical aperture of the objective.
    pixel_size
        Camera pixel size at the sample, in nm.
    modulation_factor
        SIM modulation factor ``m_f``: the SIM passband is that of an objective of numerical
        aperture ``m_f NA`` (DPS, Ye et al. 2024); used by :func:`sr_psf`.
    """

    wavelength: float
    na: float
    pixel_size: float
    modulation_factor: float = 1.9

    @property
    def cutoff(self) -> float:
        """Incoherent OTF cutoff ``f_c = 2 NA / lambda`` in cycles per nm."""
        return 2.0 * self.na / self.wavelength

    @property
    def cutoff_per_pixel(self) -> float:
        """OTF cutoff in cycles per camera pixel, ``2 NA pixel_size / lambda``."""
        return self.cutoff * self.pixel_size

    def to_dict(self) -> dict[str, float]:
        """JSON-serialisable form."""
        return {
            "wavelength": float(self.wavelength),
            "na": float(self.na),
            "pixel_size": float(self.pixel_size),
            "modulation_factor": float(self.modulation_factor),
        }


def _centred_grid(size: int, oversample: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel sample offsets (in pixels) from the centre pixel ``size // 2``.

    Returns ``(dy, dx)`` of shape ``(size * oversample,)`` each; the samples of pixel ``i``
    sit at ``i - size // 2 + (k + 0.5) / oversample - 0.5`` for ``k = 0 .. oversample - 1``.
    """
    sub = (np.arange(oversample) + 0.5) / oversample - 0.5
    centres = np.arange(size) - size // 2
    d = (centres[:, None] + sub[None, :]).ravel()
    return d, d


def airy_psf(
    size: int, wavelength: float, na: float, pixel_size: float, *, oversample: int = 5
) -> np.ndarray:
    """Diffraction-limited (Airy) intensity PSF integrated over square pixels.

    ``h(r) = [2 J1(v) / v]^2`` with ``v = 2 pi NA r / lambda`` (Born & Wolf, Principles of
    Optics, 8.5.2), ``r`` in nm measured from the centre of pixel ``size // 2``. Each pixel's
    value is the mean of ``oversample x oversample`` point samples spread evenly over the pixel
    (``oversample=1`` gives point sampling at pixel centres). The result is normalised to unit
    sum (energy conservation inside the window).

    Parameters
    ----------
    size
        Side of the square PSF in pixels (odd recommended; for even sizes the centre is at
        ``size // 2`` and the PSF is not symmetric under flipping).
    wavelength
        Emission wavelength in nm.
    na
        Numerical aperture.
    pixel_size
        Pixel size at the sample in nm.
    oversample
        Point samples per pixel and axis.

    Returns
    -------
    np.ndarray
        float32 array of shape ``(size, size)``, unit sum.
    """
    if size < 1 or oversample < 1:
        raise ValueError("size and oversample must be >= 1")
    dy, dx = _centred_grid(size, oversample)
    r = np.hypot(dy[:, None], dx[None, :]) * pixel_size
    v = 2.0 * np.pi * na * r / wavelength
    with np.errstate(invalid="ignore", divide="ignore"):
        amp = np.where(v > 0, 2.0 * special.j1(v) / np.where(v > 0, v, 1.0), 1.0)
    intensity = amp**2
    psf = intensity.reshape(size, oversample, size, oversample).mean(axis=(1, 3))
    psf /= psf.sum()
    return psf.astype(np.float32)


def sr_psf(
    size: int,
    wavelength: float,
    na: float,
    pixel_size: float,
    modulation_factor: float,
    *,
    oversample: int = 5,
) -> np.ndarray:
    """srPSF of DPS: the Airy PSF of the SIM passband.

    ``h_sr = airy_psf(size, lambda, m_f NA, pixel_size)``: the Airy pattern whose numerical
    aperture is scaled by the SIM modulation factor ``m_f`` (Ye et al., Intelligent Computing
    2024, doi 10.34133/icomputing.0082), i.e. ``v = 2 pi m_f NA r / lambda``. Its OTF cutoff
    is ``2 m_f NA / lambda``. float32, unit sum, centred at ``size // 2``.
    """
    return airy_psf(size, wavelength, na * modulation_factor, pixel_size, oversample=oversample)


def psf_size_for(wavelength: float, na: float, pixel_size: float, n_rings: int = 4) -> int:
    """Odd PSF size (pixels) that holds the central disc and ``n_rings`` - 1 Airy rings.

    The ``n``-th dark ring of the Airy pattern is at ``v = j_{1,n}`` (the ``n``-th zero of
    ``J1``), i.e. at radius ``r_n = j_{1,n} lambda / (2 pi NA)``; the returned size is
    ``2 ceil(r_n / pixel_size) + 1`` with ``n = n_rings``.
    """
    if n_rings < 1:
        raise ValueError("n_rings must be >= 1")
    v_zero = float(special.jn_zeros(1, n_rings)[-1])
    radius = v_zero * wavelength / (2.0 * np.pi * na)
    return 2 * int(np.ceil(radius / pixel_size)) + 1


def _frequency_radius(shape: tuple[int, int], pixel_size: float) -> np.ndarray:
    """Radial frequency ``|f|`` (cycles per unit of ``pixel_size``) on the unshifted FFT grid."""
    fy = np.fft.fftfreq(shape[0], d=pixel_size)
    fx = np.fft.fftfreq(shape[1], d=pixel_size)
    return np.hypot(fy[:, None], fx[None, :])


def widefield_otf(
    shape: tuple[int, int], wavelength: float, na: float, pixel_size: float
) -> np.ndarray:
    """Analytic incoherent OTF of an aberration-free circular pupil.

    ``OTF(q) = (2 / pi) (acos q - q sqrt(1 - q^2))`` for ``q = f / f_c <= 1`` and 0 beyond,
    with ``f_c = 2 NA / lambda`` (Goodman, Introduction to Fourier Optics, 6.3.2). ``f`` is the
    radial frequency of the unshifted FFT grid of ``shape`` (``np.fft.fftfreq(n, pixel_size)``,
    cycles per nm). It is the exact DFT of the point-sampled, periodised Airy PSF whenever the
    grid is Nyquist-sampled for it (``pixel_size <= lambda / (4 NA)``).

    Returns
    -------
    np.ndarray
        float32 array of ``shape`` with ``OTF[0, 0] = 1``.
    """
    q = _frequency_radius(shape, pixel_size) / (2.0 * na / wavelength)
    qc = np.clip(q, 0.0, 1.0)
    otf = (2.0 / np.pi) * (np.arccos(qc) - qc * np.sqrt(1.0 - qc**2))
    otf[q > 1.0] = 0.0
    return otf.astype(np.float32)


def otf_from_psf(psf: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Transfer function of a centred PSF on a grid of ``shape``.

    The PSF is placed on a zero array of ``shape`` with its centre (index ``size // 2`` on each
    axis) moved to index ``(0, 0)`` (like ``ifftshift``; a PSF larger than ``shape`` wraps
    around), then Fourier transformed, so that ``ifft2(fft2(x) * otf)`` is the circular
    convolution ``x (*) h`` with the PSF centred.

    Returns
    -------
    np.ndarray
        complex64 array of ``shape``; ``otf[0, 0] = sum(psf)``.
    """
    psf = np.asarray(psf, dtype=np.float64)
    ny, nx = shape
    iy = (np.arange(psf.shape[0]) - psf.shape[0] // 2) % ny
    ix = (np.arange(psf.shape[1]) - psf.shape[1] // 2) % nx
    padded = np.zeros(shape, dtype=np.float64)
    np.add.at(padded, np.ix_(iy, ix), psf)
    return np.fft.fft2(padded).astype(np.complex64)


def noll_to_nm(j: int) -> tuple[int, int]:
    """Radial order ``n`` and azimuthal frequency ``m`` of the Noll index ``j >= 1``.

    Noll (1976, J. Opt. Soc. Am. 66, 207), Table 1: ``n`` is the row with
    ``n (n + 1) / 2 < j <= (n + 1)(n + 2) / 2``; within the row ``|m|`` runs through
    ``0, 2, 2, 4, 4, ...`` (``n`` even) or ``1, 1, 3, 3, ...`` (``n`` odd); ``m > 0`` (cosine
    term) for even ``j`` and ``m < 0`` (sine term) for odd ``j``. E.g. ``j = 4`` is defocus
    ``(2, 0)``, ``j = 11`` primary spherical ``(4, 0)``.
    """
    if j < 1:
        raise ValueError("Noll indices start at 1")
    n = int((np.sqrt(8 * j - 7) - 1) // 2)
    while (n + 1) * (n + 2) // 2 < j:  # guard against rounding
        n += 1
    while n * (n + 1) // 2 >= j:
        n -= 1
    p = j - n * (n + 1) // 2  # position in the row, 1-based
    m_abs = 2 * (p // 2) if n % 2 == 0 else 2 * ((p - 1) // 2) + 1
    if m_abs == 0:
        return n, 0
    return n, m_abs if j % 2 == 0 else -m_abs


def _radial(n: int, m: int, rho: np.ndarray) -> np.ndarray:
    """Zernike radial polynomial ``R_n^m(rho)`` (``m >= 0``, ``n - m`` even)."""
    out = np.zeros_like(rho, dtype=np.float64)
    for s in range((n - m) // 2 + 1):
        c = (-1) ** s * factorial(n - s)
        c /= factorial(s) * factorial((n + m) // 2 - s) * factorial((n - m) // 2 - s)
        out += c * rho ** (n - 2 * s)
    return out


def zernike(j: int, rho: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Noll-normalised Zernike polynomial ``Z_j(rho, theta)``, zero outside the unit disc.

    ``Z_j = sqrt(n + 1) R_n^0(rho)`` for ``m = 0``, else
    ``sqrt(2 (n + 1)) R_n^|m|(rho) cos(|m| theta)`` (``m > 0``) or ``... sin(|m| theta)``
    (``m < 0``), with ``(n, m) = noll_to_nm(j)`` (Noll 1976). Orthonormal in the sense
    ``(1 / pi) int_{rho <= 1} Z_j Z_k rho d rho d theta = delta_jk``. Returns float64 with the
    broadcast shape of ``rho`` and ``theta``.
    """
    n, m = noll_to_nm(j)
    rho, theta = np.broadcast_arrays(np.asarray(rho, float), np.asarray(theta, float))
    r = _radial(n, abs(m), rho)
    if m == 0:
        z = np.sqrt(n + 1.0) * r
    elif m > 0:
        z = np.sqrt(2.0 * (n + 1)) * r * np.cos(m * theta)
    else:
        z = np.sqrt(2.0 * (n + 1)) * r * np.sin(-m * theta)
    return np.where(rho <= 1.0, z, 0.0)


def zernike_psf(
    size: int,
    coefficients: Mapping[int, float] | Sequence[float],
    fc: float,
    *,
    first_noll: int = 4,
    pad: int | None = None,
) -> np.ndarray:
    """Aberrated PSF from Zernike pupil-phase coefficients (PSF-identification model).

    ``h = |F(P exp(-i 2 pi sum_k theta_k Z_k))|^2`` (Nguyen, Sarron, Escande, Weiss, "Training
    identification network for blind deconvolution in microscopy"), where ``P`` is the pupil
    disc ``|f| <= fc`` in normalised frequency (cycles per pixel), ``Z_k`` the Noll-normalised
    Zernike polynomials of ``rho = |f| / fc`` (:func:`zernike`) and ``theta_k`` the
    coefficients in waves (rms wavefront error of each term). The incoherent OTF cutoff is then
    ``2 fc``; with all coefficients zero ``h`` is the Airy pattern of
    ``fc = NA pixel_size / lambda`` sampled at pixel centres (``v = 2 pi fc r_pixels``).

    The pupil is sampled on a padded ``pad x pad`` frequency grid (default: the larger of
    ``4 size`` and ``128 / fc``, so that the pupil radius spans at least 128 samples), its
    edge anti-aliased over one sample; the intensity is cropped to ``size x size`` around the
    centre ``size // 2`` and normalised to unit sum.

    Parameters
    ----------
    size
        Side of the returned PSF (pixels).
    coefficients
        ``{noll_index: waves}`` or a sequence giving the coefficients of
        ``j = first_noll, first_noll + 1, ...``.
    fc
        Pupil radius in cycles per pixel (e.g. 0.125 to 0.25; keep ``fc <= 0.25`` so that the
        OTF cutoff ``2 fc`` stays below the Nyquist frequency).
    first_noll
        Noll index of the first entry of a sequence of coefficients (4: defocus; piston, tip
        and tilt are left out by default).
    pad
        Side of the padded computation grid.

    Returns
    -------
    np.ndarray
        float32 ``(size, size)`` PSF with unit sum.
    """
    if fc <= 0 or fc > 0.5:
        raise ValueError("fc must lie in (0, 0.5] cycles per pixel")
    if isinstance(coefficients, Mapping):
        coeffs = {int(k): float(v) for k, v in coefficients.items()}
    else:
        coeffs = {first_noll + i: float(v) for i, v in enumerate(coefficients)}
    if pad is None:
        pad = max(4 * size, int(np.ceil(128.0 / fc)))
        pad += pad % 2
    f = np.fft.fftfreq(pad)
    fy, fx = f[:, None], f[None, :]
    rho_samples = np.hypot(fy, fx) * pad  # radius in samples of the frequency grid
    radius = fc * pad
    pupil = np.clip(radius - rho_samples + 0.5, 0.0, 1.0)
    rho = rho_samples / radius
    theta = np.arctan2(fy, fx)
    inside = pupil > 0
    phase = np.zeros((pad, pad), dtype=np.float64)
    for j, c in coeffs.items():
        if c != 0.0:
            phase[inside] += c * zernike(j, np.minimum(rho[inside], 1.0), theta[inside])
    field = pupil * np.exp(-2j * np.pi * phase)
    intensity = np.abs(np.fft.ifft2(field)) ** 2
    intensity = np.fft.fftshift(intensity)
    start = pad // 2 - size // 2
    psf = intensity[start : start + size, start : start + size]
    psf = psf / psf.sum()
    return psf.astype(np.float32)


def rescale_psf(psf: np.ndarray, factor: float, size: int | None = None) -> np.ndarray:
    """A PSF narrowed by ``factor`` in space: ``h'(r) = h(factor r)``, unit sum.

    Both the change of pixel grid and the SIM passband extension are such rescalings: the
    srPSF of an (identified, possibly aberrated) widefield PSF ``h`` on the SIM grid (half the
    pixel) is ``rescale_psf(h, modulation_factor / 2)``, exactly so for the Airy pattern
    (``airy(NA f)`` at pixel ``p / 2`` samples ``airy(NA)`` at radius ``r f / 2`` camera
    pixels). Cubic interpolation about the centre pixel ``size // 2``; negative interpolation
    ripples are clipped. ``size`` (odd) defaults to the input's size.
    """
    from scipy.ndimage import map_coordinates

    h = np.asarray(psf, dtype=np.float64)
    n = h.shape[0] if size is None else int(size)
    c_in, c_out = h.shape[0] // 2, n // 2
    yy, xx = np.mgrid[:n, :n].astype(np.float64)
    coords = [(yy - c_out) * factor + c_in, (xx - c_out) * factor + c_in]
    out = np.clip(map_coordinates(h, coords, order=3, mode="constant", cval=0.0), 0, None)
    return (out / out.sum()).astype(np.float32)


def psf_for(
    choice: str | os.PathLike,
    optics: Optics | None,
    shape: Sequence[int] | None = None,
    *,
    regrid: bool = False,
) -> np.ndarray:
    """The PSF a deconvolution or a loss uses: ``'airy'``, ``'sr'`` or a PSF file.

    ``'airy'`` is :func:`airy_psf` of the optics (widefield), ``'sr'`` the srPSF
    :func:`sr_psf` (the Airy pattern of NA x ``modulation_factor``, Ye et al. 2024), both on
    the grid of ``optics.pixel_size`` (the pixel of the image the PSF is for) and sized by
    :func:`psf_size_for` (4 rings), odd, at most the image ``shape``. A file (TIFF, Zarr) is
    read as one 2D image, checked (finite, non-negative, positive sum) and normalised to unit
    sum; with ``regrid`` a file that records its pixel size ``p_f`` is resampled to the
    optics' pixel ``p`` by :func:`rescale_psf` with factor ``p / p_f``, and one without is
    taken as it is, with a warning. ``optics`` is None when the image's pixel is unknown,
    which only a file allows. Raises :class:`~dps_stages.io.DpsInputError` on a bad file.
    """
    from dps_stages import io

    if str(choice) not in ("airy", "sr"):
        arr, meta = io.read_image(choice)
        psf = np.squeeze(np.asarray(arr, dtype=np.float64))
        if psf.ndim != 2:
            raise io.DpsInputError(f"{choice}: expected a single 2D PSF; got shape {psf.shape}")
        io.check_finite(psf, choice)
        if psf.min() < 0 or psf.sum() <= 0:
            raise io.DpsInputError(f"{choice}: a PSF must be non-negative with a positive sum")
        psf = (psf / psf.sum()).astype(np.float32)
        pixel = optics.pixel_size if optics is not None else None
        if regrid and pixel and meta.get("pixel_size"):
            zoom = float(meta["pixel_size"]) / float(pixel)
            return rescale_psf(psf, 1 / zoom, int(psf.shape[0] * zoom) | 1)
        if regrid:
            logging.getLogger("dps").warning(
                "%s: no pixel size; taken to be on the %s nm grid", choice, pixel
            )
        return psf
    if optics is None:
        raise io.DpsInputError(f"the {choice!r} PSF needs the image's pixel size")
    factor = optics.modulation_factor if choice == "sr" else 1.0
    size = psf_size_for(optics.wavelength, optics.na * factor, optics.pixel_size)
    if shape is not None:
        size = min(size, *shape[-2:])
    size -= 1 - size % 2  # odd: centred on a pixel
    return airy_psf(size, optics.wavelength, optics.na * factor, optics.pixel_size)


def fwhm(profile: np.ndarray, spacing: float = 1.0) -> float:
    """Full width at half maximum of a 1D peak, by linear interpolation.

    From the maximum, walk outwards on each side to the first sample below ``max / 2`` and
    interpolate linearly between it and its neighbour:
    ``x_half = x_i + (half - p_i) / (p_{i+1} - p_i)``. Returns
    ``(x_right - x_left) * spacing``. Raises ``ValueError`` when the profile does not fall
    below half maximum on both sides.
    """
    p = np.asarray(profile, dtype=np.float64).ravel()
    i0 = int(np.argmax(p))
    half = p[i0] / 2.0
    left = i0
    while left > 0 and p[left] >= half:
        left -= 1
    right = i0
    while right < p.size - 1 and p[right] >= half:
        right += 1
    if p[left] >= half or p[right] >= half:
        raise ValueError("profile does not fall below half maximum on both sides")
    x_left = left + (half - p[left]) / (p[left + 1] - p[left])
    x_right = right - 1 + (half - p[right - 1]) / (p[right] - p[right - 1])
    return float((x_right - x_left) * spacing)


class PupilOTF:
    """The OTF of an aberrated pupil on an FFT grid, for any shift (Goodman, *Introduction to
    Fourier Optics*, 6.4): ``h = |F^-1[P exp(-2 pi i W)]|^2``, ``W = sum_j c_j Z_j(|f| / f_p,
    theta)`` (Noll-normalised Zernike terms :func:`zernike`, ``c_j`` in waves rms, indices
    ``noll``), ``P`` the disc of radius ``f_p`` cycles per grid pixel (``NA pixel / lambda``;
    ``2 f_p <= 0.5``, so the intensity PSF is sampled without aliasing), then
    ``O(g + k) = a^min(|g + k| / (2 f_p), 1) F[h(r) e^{-2 pi i k.r}](g)`` with ``r`` the
    signed offset from ``h``'s centre at index 0 (``O(0) = 1``; ``a`` the fairSIM
    attenuation). The fixed parts (Zernike maps, pupil, per-shift ramps and radii) are kept,
    so that an evaluation costs one FFT for the PSF and one per shift."""

    def __init__(self, shape: tuple[int, int], fp: float, noll: Sequence[int]) -> None:
        ny, nx = shape
        self.noll = tuple(int(j) for j in noll)
        self.fp = float(fp)
        self.fy = np.fft.fftfreq(ny)[:, None]
        self.fx = np.fft.fftfreq(nx)[None, :]
        f = np.hypot(self.fy, self.fx)
        rho = f / self.fp
        # the disc's edge anti-aliased over one frequency sample
        self.pupil = np.clip((self.fp - f) * min(ny, nx) + 0.5, 0.0, 1.0)
        inside = self.pupil > 0
        theta = np.arctan2(self.fy, self.fx)
        self.zmaps = np.zeros((len(self.noll), ny, nx))
        for i, j in enumerate(self.noll):
            self.zmaps[i][inside] = zernike(j, np.minimum(rho[inside], 1.0), theta[inside])
        self.yy = ((np.arange(ny) + ny // 2) % ny - ny // 2)[:, None]
        self.xx = ((np.arange(nx) + nx // 2) % nx - nx // 2)[None, :]
        self._shift: dict[tuple[float, float], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def psf(self, coefficients: Sequence[float]) -> np.ndarray:
        """The intensity PSF ``h`` on the grid (coefficients in the order of ``noll``),
        centred at index 0, unit sum."""
        phase = np.tensordot(np.asarray(coefficients, dtype=float), self.zmaps, axes=1)
        h = np.abs(sfft.ifft2(self.pupil * np.exp(-2j * np.pi * phase), workers=-1)) ** 2
        return h / h.sum()

    def at(self, h: np.ndarray, attenuation: float, k: np.ndarray) -> np.ndarray:
        """``O(g + k)`` of the PSF ``h`` with attenuation ``a`` on the grid."""
        key = (float(k[0]), float(k[1]))
        if key not in self._shift:
            ey = np.exp(-2j * np.pi * key[0] * self.yy)
            ex = np.exp(-2j * np.pi * key[1] * self.xx)
            q = np.minimum(np.hypot(self.fy + key[0], self.fx + key[1]) / (2.0 * self.fp), 1.0)
            self._shift[key] = (ey, ex, q)
        ey, ex, q = self._shift[key]
        o = sfft.fft2((h * ey) * ex, workers=-1)
        if attenuation != 1.0:
            o *= np.exp(q * np.log(attenuation))
        return o

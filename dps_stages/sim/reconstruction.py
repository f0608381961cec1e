"""2D-SIM reconstruction on the 2x grid by the generalised Wiener filter (Gustafsson 2000).

``X(f) = A(f) sum_{a,m} w_am O*(f - m k_a) S_am(f) / (sum_{a,m} w_am |O(f - m k_a)|^2 + w^2)``
with ``S_am`` the separated bands shifted to their place, ``A`` the apodisation (Gustafsson,
J. Microsc. 198, 82, 2000; fairSIM's attenuation, Mueller et al., Nat. Commun. 7, 10980,
2016), then a local Wiener step (Lee, IEEE PAMI 2, 165, 1980). Theory: ``docs/sim.md``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import fft as sfft
from scipy import ndimage as ndi

from ..optics import Optics
from .estimation import SIMParameters, estimate_from_spectra, estimate_parameters
from .otf import (
    _attenuation,
    _check_frames,
    _freqs,
    _grid_otf,
    _mixing_inverse,
    _ramp,
    _tukey,
    _wrapped_index,
    otf_values,
    periodic_smooth_decomposition,
    preprocess,
)

_WORKERS = -1


# --------------------------------------------------------------------------------------------
# Reconstruction
# --------------------------------------------------------------------------------------------
def _apodisation(
    fy: np.ndarray, fx: np.ndarray, kind: str, f_ext: float, bend: float
) -> np.ndarray | None:
    if kind == "none":
        return None
    r = np.sqrt(fy * fy + fx * fx) / np.float32(f_ext)
    rc = np.minimum(r, np.float32(1.0))
    if kind == "triangle":
        out = (1.0 - rc) ** np.float32(bend) if bend != 1.0 else 1.0 - rc
    elif kind == "cosine":
        out = np.cos(np.float32(np.pi / 2) * rc)
    else:
        raise ValueError(f"apodisation must be 'triangle', 'cosine' or 'none'; got {kind!r}")
    return out.astype(np.float32)


def _pad_axis(spec: np.ndarray, m: int, axis: int) -> np.ndarray:
    """Zero-pad an unshifted spectrum along ``axis`` to ``m`` samples (Nyquist split in two)."""
    spec = np.moveaxis(spec, axis, 0)
    n = spec.shape[0]
    out = np.zeros((m,) + spec.shape[1:], dtype=np.complex64)
    h = n // 2
    if n % 2:
        out[: h + 1] = spec[: h + 1]
        out[m - h :] = spec[h + 1 :]
    else:
        out[:h] = spec[:h]
        if h > 1:
            out[m - h + 1 :] = spec[h + 1 :]
        out[h] = 0.5 * spec[h]
        out[m - h] += 0.5 * spec[h]
    return np.moveaxis(out, 0, axis)


def fourier_upsample(image: np.ndarray, factor: int = 2, *, centred: bool = True) -> np.ndarray:
    """Band-limited (Fourier, zero-padding) interpolation of a 2D image by ``factor``, float32.

    The spectrum is zero-padded to ``factor`` times the size (an even-sized axis' Nyquist
    line split equally between the positive and the negative frequency, so the interpolant is
    real) and multiplied by ``factor^2`` so that intensities are kept. With ``centred`` the
    output pixel ``j`` sits at input coordinate ``(j + 1/2) / factor - 1/2`` (each input pixel
    splits into ``factor x factor`` finer pixels: the grid of :func:`reconstruct` and of the
    simulation's ``truth_2x``); otherwise at ``j / factor`` (input samples are kept exactly).
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"fourier_upsample needs a 2D image; got shape {img.shape}")
    ny, nx = img.shape
    my, mx = factor * ny, factor * nx
    spec = sfft.fft2(img, workers=_WORKERS)
    out = _pad_axis(_pad_axis(spec, my, 0), mx, 1)
    if centred:
        delta = (1.0 - factor) / (2.0 * factor)
        out *= np.exp(2j * np.pi * delta * _freqs(my, 1.0 / factor))[:, None].astype(np.complex64)
        out *= np.exp(2j * np.pi * delta * _freqs(mx, 1.0 / factor))[None, :].astype(np.complex64)
    res = sfft.ifft2(out, workers=_WORKERS).real * np.float32(factor * factor)
    return res.astype(np.float32)


def _pad_to(spec: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Zero-pad a full (unshifted) spectrum to a larger grid, dropping the Nyquist lines."""
    ny, nx = spec.shape
    my, mx = shape
    out = np.zeros((my, mx), dtype=np.complex64)
    hy, hx = (ny - 1) // 2, (nx - 1) // 2
    ys = np.r_[0 : hy + 1, ny - hy : ny]
    xs = np.r_[0 : hx + 1, nx - hx : nx]
    yd = np.r_[0 : hy + 1, my - hy : my]
    xd = np.r_[0 : hx + 1, mx - hx : mx]
    out[np.ix_(yd, xd)] = spec[np.ix_(ys, xs)]
    return out


def _auto_wiener(spec: np.ndarray, cutoff: float, decay: float, pixel: bool) -> float:
    """``sqrt(sigma^2 / Phi)``: noise-to-signal amplitude ratio of the widefield spectrum.

    ``sigma^2`` is the noise power per Fourier coefficient of the mean of the nine frames
    (measured beyond ``1.1 f_c``, where the image holds no signal) and ``Phi`` the mean object
    power ``(|C_0(f)|^2 - sigma^2) / O(f)^2`` over the mid band ``0.3 <= |f| / f_c <= 0.6``.
    """
    ny, nx = spec.shape[-2:]
    c0 = spec.mean(axis=0)  # the spectrum of the mean frame (``spec``: the frames' spectra)
    fy = _freqs(ny, 1.0)[:, None]
    fx = _freqs(nx, 1.0)[None, :]
    q = np.hypot(fy, fx) / cutoff
    noise_region = (q > 1.1) & (np.abs(fy) < 0.45) & (np.abs(fx) < 0.45)
    if noise_region.sum() < 64:
        return 0.05
    sigma2 = float(np.mean(np.abs(c0[noise_region]) ** 2))
    band = (q >= 0.3) & (q <= 0.6)
    otf = _grid_otf((ny, nx), 1.0, cutoff, decay, pixel)
    phi = float(np.mean((np.abs(c0[band]) ** 2 - sigma2) / otf[band] ** 2))
    if not phi > 0:
        return 1.0
    return float(np.sqrt(sigma2 / phi))


def _local_noise_variance(spec: np.ndarray, cutoff: float, sigma: float = 2.0) -> np.ndarray | None:
    """Local variance of the frames' white noise per camera pixel, ``(y, x)`` float32.

    The sum of the nine (periodic) frames is high-passed to ``|f| > 1.1 f_c`` (beyond the
    OTF no signal is left, only noise), squared, smoothed by a Gaussian of ``sigma`` camera
    pixels and divided by ``9`` times the fraction of the spectrum kept: ``s^2(r)`` with
    ``E[n_p(r)^2] = s^2(r)`` for each frame. Shot noise makes it follow the local brightness.
    None when the region beyond the cutoff is too small to measure it (under-sampled data).
    """
    ny, nx = spec.shape[-2:]
    fy = _freqs(ny, 1.0)[:, None]
    fx = (np.arange(nx // 2 + 1, dtype=np.float32) / np.float32(nx))[None, :]
    keep = np.hypot(fy, fx) > np.float32(1.1 * cutoff)
    frac = (keep[:, 0].sum() + 2.0 * keep[:, 1:].sum()) / float(ny * nx)  # of the full grid
    if frac * ny * nx < 256:
        return None
    # the rfft half of the summed frames' spectrum (``spec``: the frames' spectra)
    half = spec[:, :, : nx // 2 + 1].sum(axis=0)
    hp = sfft.irfft2(half * keep, s=(ny, nx), workers=_WORKERS)
    v = ndi.gaussian_filter((hp * hp).astype(np.float32), sigma, mode="reflect")
    return (v / np.float32(9.0 * frac)).astype(np.float32)


def _upsample2(v: np.ndarray) -> np.ndarray:
    """Pixel replication of a smooth map to the 2x grid."""
    return np.repeat(np.repeat(v, 2, axis=0), 2, axis=1)


class _Grid:
    """The 2x output grid (rfft half layout) and the OTF model shared by the steps."""

    def __init__(self, shape: tuple[int, int], cutoff: float, decay: float, pixel: bool,
                 att: tuple[float, float] | None, square_att: bool) -> None:  # fmt: skip
        self.ny, self.nx = int(shape[0]), int(shape[1])
        self.my, self.mx = 2 * self.ny, 2 * self.nx
        self.hx = self.mx // 2 + 1
        self.cutoff, self.decay, self.pixel = cutoff, decay, pixel
        self.att, self.square_att = att, square_att
        # cycles per camera pixel
        self.fy2 = _freqs(self.my, 0.5)[:, None]
        self.fx2 = (np.arange(self.hx, dtype=np.float32) / np.float32(self.mx * 0.5))[None, :]
        # O A on the 1x grid (each band in its own coordinates): side bands, zero band
        self.o1 = _grid_otf((self.ny, self.nx), 1.0, cutoff, decay, pixel)
        self.a1 = None
        if att is not None:
            fy, fx = _freqs(self.ny, 1.0)[:, None], _freqs(self.nx, 1.0)[None, :]
            self.a1 = _attenuation(fy, fx, *att)
        self.w_side = self.o1 if self.a1 is None else self.o1 * self.a1
        # output pixel j at camera coordinate j/2 - 1/4
        self.shift = np.exp(-0.5j * np.pi * self.fy2).astype(np.complex64) * np.exp(
            -0.5j * np.pi * self.fx2
        ).astype(np.complex64)

    def weight_at(self, ky: float, kx: float, attenuate: bool) -> tuple[np.ndarray, np.ndarray]:
        """Denominator term ``A O^2`` (attenuation mode "weight") or ``A^2 O^2`` ("otf") of a
        band whose origin sits at ``f = (ky, kx)``, and its noise term ``A^2 O^2``."""
        gy, gx = self.fy2 - np.float32(ky), self.fx2 - np.float32(kx)
        o = otf_values(gy, gx, self.cutoff, decay=self.decay, pixel=self.pixel)
        o2 = o * o
        v2 = o2  # noise term A^2 O^2 of the band (per unit band weight)
        if self.att is not None and attenuate:
            a = _attenuation(gy, gx, *self.att)
            v2 = o2 * (a * a)
            o2 = v2 if self.square_att else o2 * a
        return o2, v2


def _zero_band(
    spec: np.ndarray, params: SIMParameters, g: _Grid, attenuate: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Numerator ``sum_a C_a0 O A`` on the 2x grid, its denominator ``3 A O^2`` and noise term.

    ``spec`` are the frames' spectra: ``C_a0`` is a linear combination of them (no new FFT).

    Row 0 of each angle's mixing inverse is real; ``noise`` is the variance of the numerator
    per unit frame-noise variance and camera pixel (white noise), over the number of pixels.
    """
    w_zero = g.w_side if attenuate else g.o1
    w0 = np.concatenate([_mixing_inverse(params.phases[a])[0].real for a in range(3)])
    c0 = np.tensordot(w0.astype(np.float32), spec, axes=1) * w_zero
    num = _pad_to(c0, (g.my, g.mx))[:, : g.hx]
    den, noise = g.weight_at(0.0, 0.0, attenuate)
    return num, 3.0 * den, np.float32(np.sum(w0 * w0)) * noise


def _add_side_band(
    xs: np.ndarray,
    params: SIMParameters,
    a: int,
    g: _Grid,
    band_weights: str,
    min_modulation: float,
    num: np.ndarray,
    den: np.ndarray,
    noise: np.ndarray,
) -> bool:
    """Separate angle ``a``'s band ``C_+1``, shift it to ``+k_a`` on the 2x grid and add
    ``S_+1(f) = C_+1(f + k)`` and ``S_-1(f) = conj(S_+1(-f))`` to ``num``, their weights to
    ``den`` and ``noise`` (in place). Weights: ``"snr"`` ``c = m^2 / 4`` (the band divided by
    ``m``), ``"equal"`` ``c = 1`` (divided by ``max(m, min_modulation)``). False when the
    band's weight is 0."""
    u = _mixing_inverse(params.phases[a])[1]
    m = min(float(params.modulation[a]), 1.0)  # a modulation above 1 is unphysical
    if band_weights == "snr":  # c = m^2 / 4; the band C_+1 / m times c
        c, scale = m * m / 4.0, m / 4.0
    else:
        c, scale = 1.0, 1.0 / max(m, float(min_modulation))
    if c == 0.0:
        return False
    cp_real = np.tensordot((u * scale).astype(np.complex64), xs[3 * a : 3 * a + 3], axes=1)
    cp = sfft.fft2(cp_real, workers=_WORKERS) * g.w_side
    band = sfft.ifft2(_pad_to(cp, (g.my, g.mx)), workers=_WORKERS, overwrite_x=True)
    ky, kx = params.k[a]
    band *= _ramp(g.my, ky, 0.5)[:, None]
    band *= _ramp(g.mx, kx, 0.5)[None, :]
    s_plus = sfft.fft2(band, workers=_WORKERS, overwrite_x=True)
    num += s_plus[:, : g.hx]
    num += np.conj(s_plus[np.ix_(_wrapped_index(g.my), _wrapped_index(g.mx)[: g.hx])])
    dm, vm = g.weight_at(-ky, -kx, True)
    dp, vp = g.weight_at(ky, kx, True)
    den += np.float32(c) * (dm + dp)
    noise += np.float32(scale * scale * np.sum(np.abs(u) ** 2)) * (vm + vp)
    return True


def _wiener_filter(den: np.ndarray, wiener: float, apo: np.ndarray | None) -> np.ndarray:
    """``4 A(f) / (sum w O^2 + w^2)`` (x4: the 2x grid's FFT scale), ``A`` the apodisation."""
    filt = np.float32(4.0) / (den + np.float32(wiener**2))
    if apo is not None:
        filt *= apo
    return filt


def _local_wiener(
    num: np.ndarray,
    filt: np.ndarray,
    filt_s: np.ndarray,
    noise: np.ndarray,
    spec_s: np.ndarray,
    frame_var: np.ndarray,
    g: _Grid,
    strength: float,
    sigma: float,
) -> np.ndarray:
    """``base + alpha . detail`` with ``alpha = clip(1 - strength nu / <d^2>, 0, 1)`` (Lee 1980).

    ``base`` is the smooth reconstruction (filter ``filt_s``), ``detail`` the rest; ``nu`` the
    detail's noise variance per pixel (Parseval over the full spectrum: the rfft half counts
    twice, except its first and, for even widths, last column) times the local frame-noise
    variance, ``<d^2>`` the detail's power over a Gaussian window of ``sigma`` pixels.
    """
    filt_d = filt - filt_s
    col = np.full(g.hx, 2.0, dtype=np.float64)
    col[0] = 1.0
    if g.mx % 2 == 0:
        col[-1] = 1.0
    g_d = float(np.sum((filt_d * filt_d * noise).astype(np.float64) @ col)) * g.ny * g.nx
    g_d /= float(g.my * g.mx) ** 2
    s = (g.my, g.mx)
    base = sfft.irfft2((num * filt_s + spec_s) * g.shift, s=s, workers=_WORKERS)
    detail = sfft.irfft2(num * filt_d * g.shift, s=s, workers=_WORKERS)
    local_var = ndi.gaussian_filter(detail * detail, sigma, mode="reflect")
    nu = np.float32(strength * g_d) * _upsample2(frame_var)
    alpha = np.clip(1.0 - nu / np.maximum(local_var, np.float32(1e-30)), 0.0, 1.0)
    out = base + alpha * detail
    return out.astype(np.float32, copy=False)


def reconstruct(
    frames: np.ndarray,
    optics: Optics,
    *,
    params: SIMParameters | None = None,
    wiener: float | str = "auto",
    wiener_factor: float = 3.0,
    apodisation: str = "triangle",
    apodisation_cutoff: float = 1.0,
    apodisation_bend: float = 0.5,
    attenuation: tuple[float, float] | None = (0.99, 1.2),
    attenuate_zero_band: bool = False,
    attenuation_mode: str = "weight",
    otf_decay: float = 1.0,
    pixel_otf: bool = True,
    band_weights: str = "snr",
    local_wiener: float | None = 1.5,
    local_wiener_smooth: float = 4.0,
    local_wiener_sigma: float = 4.0,
    min_modulation: float = 0.2,
    min_significance: float = 10.0,
    edge: int = 16,
    background_percentile: float | None = 0.5,
    normalise_intensity: bool = True,
    **estimate_kw: Any,
) -> tuple[np.ndarray, SIMParameters]:
    """2D-SIM reconstruction on the 2x grid by the generalised Wiener filter (Gustafsson 2000).

    See ``docs/sim.md`` for the formulas. The parameters are estimated from the frames
    (:func:`estimate_parameters`, extra keywords go to it) unless ``params`` is given.

    Parameters
    ----------
    frames
        ``(9, y, x)`` raw frames, angle-major.
    optics
        Wavelength, NA, camera pixel size.
    params
        Illumination parameters; estimated when None.
    wiener, wiener_factor
        Wiener parameter ``w`` (the denominator gets ``w^2``; larger is smoother), or
        ``"auto"``: ``wiener_factor`` times the data's noise-to-signal amplitude ratio
        (``_auto_wiener``), which adapts the regularisation to the photon level.
    apodisation, apodisation_cutoff, apodisation_bend
        ``"triangle"`` (``(1 - |f|/f_ext)^bend``), ``"cosine"`` or ``"none"``; ``f_ext =
        apodisation_cutoff (max_a |k_a| + f_c)``.
    attenuation, attenuate_zero_band
        ``(strength, fwhm)`` of the OTF attenuation, FWHM in cycles per um (e.g.
        ``(0.99, 1.2)``, fairSIM's values; None: none), applied to the side bands, and to the
        zero band as well with ``attenuate_zero_band`` (fairSIM applies it to all bands).
    attenuation_mode
        ``"weight"`` (default): the attenuation weights each band in the numerator and the
        denominator alike (transfer at most the apodisation, no ripple around ``|k|``);
        ``"otf"``: fairSIM's attenuated OTF (``A`` in the numerator, ``A^2`` in the
        denominator; transfer above 1 beside the notches, ringing at the pattern frequency).
    otf_decay, pixel_otf
        OTF model (see :func:`otf_values`).
    band_weights
        ``"snr"`` (side bands weighted by ``m^2 / 4``, minimum variance) or ``"equal"``.
    local_wiener, local_wiener_smooth, local_wiener_sigma
        Local noise suppression (``docs/sim.md``): the detail between the output and a
        smooth estimate (Wiener parameter ``local_wiener_smooth`` times larger) is kept in
        proportion ``max(0, 1 - local_wiener nu / <d^2>)`` to its local signal-to-noise ratio
        (Lee 1980), ``<d^2>`` over a Gaussian window of ``local_wiener_sigma`` output pixels.
        None or 0: off (the plain generalised Wiener output).
    min_modulation
        With ``"equal"`` weights the side bands are divided by ``max(m_a, min_modulation)``
        (noise guard); unused with ``"snr"`` (the weight ``m^2 / 4`` cancels the division).
    min_significance
        Angles whose band-overlap significance is below this contribute their zero band only.
    edge
        Width (camera pixels) of the raised-cosine taper of the frames the side bands are
        built from (at least 1, at most a quarter of the image side).
    background_percentile, normalise_intensity
        See :func:`preprocess`.

    Returns
    -------
    (image, params)
        float32 ``(2y, 2x)`` image (not clipped; see ``docs/sim.md`` for its grid and
        scale) and the parameters used.
    """
    x = preprocess(
        _check_frames(frames),
        background_percentile=background_percentile,
        normalise_intensity=normalise_intensity,
    )
    # periodic + smooth decomposition (Moisan 2011): bands from the periodic parts, whose
    # spectra (one 2-D FFT per frame) serve the estimation, the zero band and the noise
    xp, smooth = periodic_smooth_decomposition(x)
    spec = sfft.fft2(xp, workers=_WORKERS, axes=(-2, -1)).astype(np.complex64)
    if params is None:
        params = estimate_from_spectra(  # x is preprocessed: no second offset or scaling
            x, spec, optics, otf_decay=otf_decay, pixel_otf=pixel_otf, **estimate_kw
        )
    elif estimate_kw:
        raise TypeError(f"unexpected keyword arguments {sorted(estimate_kw)} with params given")
    if attenuation_mode not in ("weight", "otf"):
        raise ValueError(f"attenuation_mode must be 'weight' or 'otf'; got {attenuation_mode!r}")
    if band_weights not in ("snr", "equal"):
        raise ValueError(f"band_weights must be 'snr' or 'equal'; got {band_weights!r}")
    att = None  # (strength, FWHM in cycles per camera pixel)
    if attenuation is not None:
        strength, fwhm_um = attenuation
        att = (float(strength), float(fwhm_um) * float(optics.pixel_size) / 1000.0)
    g = _Grid(x.shape[1:], float(optics.cutoff_per_pixel), float(otf_decay), bool(pixel_otf),
              att, attenuation_mode == "otf")  # fmt: skip

    num, den, noise = _zero_band(spec, params, g, attenuate_zero_band)
    # side bands from the frames tapered to zero at the border (``docs/sim.md``, *Edges*)
    edge = int(min(max(edge, 1), g.ny // 4, g.nx // 4))
    xs = x * (_tukey(g.ny, edge)[:, None] * _tukey(g.nx, edge)[None, :])
    used = []
    for a in range(3):
        if not params.significance[a] >= min_significance:
            continue
        used.append(a)
        _add_side_band(xs, params, a, g, band_weights, min_modulation, num, den, noise)
    f_ext = g.cutoff + (float(max(params.frequencies[used])) if used else 0.0)
    if isinstance(wiener, str):
        if wiener != "auto":
            raise ValueError(f"wiener must be a number or 'auto'; got {wiener!r}")
        wiener = wiener_factor * _auto_wiener(spec, g.cutoff, g.decay, g.pixel)
    apo = _apodisation(g.fy2, g.fx2, apodisation, apodisation_cutoff * f_ext, apodisation_bend)
    filt = _wiener_filter(den, float(wiener), apo)
    # the smooth component, interpolated (not filtered)
    spec_s = _pad_to(sfft.fft2(smooth.mean(axis=0), workers=_WORKERS), (g.my, g.mx))[:, : g.hx]
    spec_s = spec_s * 4.0
    frame_var = None
    if local_wiener is not None and local_wiener > 0:
        frame_var = _local_noise_variance(spec, g.cutoff)
    if frame_var is None:
        out = sfft.irfft2((num * filt + spec_s) * g.shift, s=(g.my, g.mx), workers=_WORKERS)
        return out.astype(np.float32, copy=False), params
    filt_s = _wiener_filter(den, float(local_wiener_smooth) * float(wiener), apo)
    out = _local_wiener(num, filt, filt_s, noise, spec_s, frame_var, g, float(local_wiener),
                        float(local_wiener_sigma))  # fmt: skip
    return out, params


def reconstruct_stack(
    raw: np.ndarray, optics: Optics, **kw: Any
) -> tuple[np.ndarray, list[SIMParameters]]:
    """:func:`reconstruct` for each of ``n`` acquisitions ``(n, 9, y, x)`` -> ``(n, 2y, 2x)``.

    ``(9, y, x)`` is accepted as ``n = 1``. Keywords go to :func:`reconstruct`; a ``params``
    keyword may be one :class:`SIMParameters` for all or a sequence of ``n``.
    """
    arr = np.asarray(raw)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[1] != 9:
        raise ValueError(
            f"raw 2D-SIM stack must have shape (n, 9, y, x) or (9, y, x); got shape {np.shape(raw)}"
        )
    params = kw.pop("params", None)
    if params is None or isinstance(params, SIMParameters):
        plist = [params] * arr.shape[0]
    else:
        plist = list(params)
        if len(plist) != arr.shape[0]:
            raise ValueError(f"got {len(plist)} parameter sets for {arr.shape[0]} acquisitions")
    out = np.empty((arr.shape[0], 2 * arr.shape[2], 2 * arr.shape[3]), dtype=np.float32)
    used: list[SIMParameters] = []
    for i in range(arr.shape[0]):
        out[i], p = reconstruct(arr[i], optics, params=plist[i], **kw)
        used.append(p)
    return out, used


# --------------------------------------------------------------------------------------------
# Tile by tile
# --------------------------------------------------------------------------------------------
#: halo of a tile in PSF sizes (the Airy pattern's side to its 4th dark ring), beyond the taper
SIM_HALO_PSF_SIZES = 2.0


def sim_halo(optics: Optics, edge: int = 16) -> int:
    """Halo (camera pixels each side) of a tile for :func:`reconstruct_tiled`.

    Rule: the width ``edge`` of the frames' raised-cosine taper (the side bands of a tile are
    lost there) plus ``SIM_HALO_PSF_SIZES`` (2) times the PSF size of
    :func:`dps_stages.optics.psf_size_for` (4 Airy rings): the reach of the Wiener filter's
    kernel. tests/test_sim.py measures tiled against whole.
    """
    from ..optics import psf_size_for

    size = psf_size_for(optics.wavelength, optics.na, optics.pixel_size)
    return int(edge + np.ceil(SIM_HALO_PSF_SIZES * size))


def shift_origin(params: SIMParameters, dy: float, dx: float) -> SIMParameters:
    """The parameters seen from an origin moved by ``(dy, dx)`` camera pixels.

    The pattern ``1 + m cos(2 pi k . r + phi)`` at ``r = r' + d`` is ``1 + m cos(2 pi k . r'
    + phi')`` with ``phi' = phi + 2 pi k . d``; ``k``, ``m`` and the significance are kept.
    """
    k = np.asarray(params.k, dtype=np.float64)
    step = 2.0 * np.pi * (k[:, 0] * dy + k[:, 1] * dx)
    return SIMParameters(params.k, params.phases + step[:, None], params.modulation,
                         params.significance)  # fmt: skip


def _chunks_along(n: int, tile: int, halo: int) -> tuple[int, ...]:
    """Tiles of ``tile`` along an axis of length ``n``, a last one shorter than the halo merged
    into its neighbour (so that every tile's halo lies within its neighbours)."""
    sizes = [tile] * (n // tile) + ([n % tile] if n % tile else [])
    if len(sizes) > 1 and sizes[-1] < halo:
        last = sizes.pop()
        sizes[-1] += last
    return tuple(sizes)


def reconstruct_tiled(
    frames: Any,
    optics: Optics,
    *,
    params: SIMParameters | None = None,
    tile: int = 1024,
    halo: int | None = None,
    wiener: float | str = "auto",
    wiener_factor: float = 3.0,
    background_percentile: float | None = 0.5,
    normalise_intensity: bool = True,
    otf_decay: float = 1.0,
    pixel_otf: bool = True,
    edge: int = 16,
    estimate_kw: dict[str, Any] | None = None,
    **kw: Any,
) -> tuple[Any, SIMParameters, float | str]:
    """:func:`reconstruct` tile by tile with a halo: a lazy dask ``(2y, 2x)`` image.

    Frames of at most ``tile`` pixels along y and x are reconstructed whole (exactly
    :func:`reconstruct`). A larger acquisition is handled in three steps: (1) the image
    scalars of :func:`preprocess`, the offset (the ``background_percentile``-th percentile of
    a regular sub-sample of the nine frames, at most about 4 million values) and the frame
    means, from the whole image in one streaming pass; (2) the illumination parameters
    (:func:`estimate_parameters`) and, for ``wiener="auto"``, the Wiener parameter, once, on
    the central ``tile x tile`` crop, its phases moved to the image origin
    (:func:`shift_origin`); (3) each tile with ``halo`` pixels of its neighbours
    (:func:`sim_halo` when None) is reconstructed with those, the phases moved to the tile's
    origin, and its halo cut away on the 2x grid (no blending: the halo is wide enough that
    the kept centre does not see the tile's edge).

    Returns the lazy image, the parameters (at the image origin) and the Wiener parameter used.
    """
    import dask.array as da

    estimate_kw = dict(estimate_kw or {})
    arr = da.asarray(frames).astype(np.float32)
    if arr.ndim != 3 or arr.shape[0] != 9:
        raise ValueError(f"frames must have shape (9, y, x); got {tuple(arr.shape)}")
    _, ny, nx = (int(n) for n in arr.shape)
    common = {"otf_decay": otf_decay, "pixel_otf": pixel_otf, "edge": edge, **kw}
    if ny <= tile and nx <= tile:
        image, used = reconstruct(
            np.asarray(arr), optics, params=params, wiener=wiener,
            wiener_factor=wiener_factor, background_percentile=background_percentile,
            normalise_intensity=normalise_intensity, **common, **estimate_kw,
        )  # fmt: skip
        return da.from_array(image, chunks=image.shape), used, wiener
    # (1) preprocessing scalars of the whole image
    offset = 0.0
    if background_percentile is not None:
        step = max(1, int(np.ceil(np.sqrt(arr.size / 4_000_000))))
        sample = np.asarray(arr[:, ::step, ::step], dtype=np.float64)
        offset = float(np.percentile(sample, background_percentile))
    gains = np.ones(9, dtype=np.float32)
    if normalise_intensity:
        means = (arr - np.float32(offset)).mean(axis=(1, 2), dtype=np.float64).compute()
        if np.all(means > 0) and means.mean() > 0:
            gains = (means.mean() / means).astype(np.float32)
    x = (arr - np.float32(offset)) * da.from_array(gains[:, None, None])
    # (2) parameters and the Wiener parameter on the central crop
    cy, cx = min(tile, ny), min(tile, nx)
    y0, x0 = (ny - cy) // 2, (nx - cx) // 2
    crop = np.asarray(x[:, y0 : y0 + cy, x0 : x0 + cx], dtype=np.float32)
    if params is None:
        params = estimate_parameters(crop, optics, background_percentile=None,
                                     normalise_intensity=False, otf_decay=otf_decay,
                                     pixel_otf=pixel_otf, **estimate_kw)  # fmt: skip
        params = shift_origin(params, -y0, -x0)
    elif estimate_kw:
        raise TypeError(f"unexpected keyword arguments {sorted(estimate_kw)} with params given")
    if isinstance(wiener, str):
        if wiener != "auto":
            raise ValueError(f"wiener must be a number or 'auto'; got {wiener!r}")
        xp, _ = periodic_smooth_decomposition(crop)
        spec = sfft.fft2(xp, workers=_WORKERS, axes=(-2, -1)).astype(np.complex64)
        wiener = wiener_factor * _auto_wiener(spec, float(optics.cutoff_per_pixel),
                                              float(otf_decay), bool(pixel_otf))  # fmt: skip
    del crop
    # (3) tiles with halos on the 2x grid
    halo = sim_halo(optics, edge) if halo is None else int(halo)
    tile = max(tile, halo)
    cy_, cx_ = _chunks_along(ny, tile, halo), _chunks_along(nx, tile, halo)
    hy, hx = min(halo, ny), min(halo, nx)
    starts_y = np.cumsum((0,) + cy_)
    starts_x = np.cumsum((0,) + cx_)
    nby, nbx = len(cy_), len(cx_)
    w = float(wiener)

    def one_tile(iy: int, ix: int) -> np.ndarray:
        # Each tile reads its own extended region from the lazy source: dask's overlap would
        # keep whole neighbouring input blocks alive until every tile using them has run.
        oy = int(starts_y[iy]) - (hy if iy > 0 else 0)
        ox = int(starts_x[ix]) - (hx if ix > 0 else 0)
        ey = int(starts_y[iy + 1]) + (hy if iy < nby - 1 else 0)
        ex = int(starts_x[ix + 1]) + (hx if ix < nbx - 1 else 0)
        block = np.asarray(x[:, oy:ey, ox:ex].compute(scheduler="synchronous"))
        out, _ = reconstruct(block, optics, params=shift_origin(params, oy, ox), wiener=w,
                             background_percentile=None, normalise_intensity=False,
                             **common)  # fmt: skip
        del block
        top = 2 * (int(starts_y[iy]) - oy)
        left = 2 * (int(starts_x[ix]) - ox)
        return out[top : top + 2 * cy_[iy], left : left + 2 * cx_[ix]]

    from dask import delayed

    rows = [
        [
            da.from_delayed(delayed(one_tile)(iy, ix), (2 * cy_[iy], 2 * cx_[ix]), np.float32)
            for ix in range(nbx)
        ]
        for iy in range(nby)
    ]
    image = da.block(rows)
    return image, params, w

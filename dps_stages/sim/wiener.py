"""The steps of the generalised Wiener 2D-SIM reconstruction (:func:`.reconstruct`).

The zero band and each side band moved to its place on the 2x grid (:func:`_zero_band`,
:func:`_add_side_band`), the Wiener filter ``A / (sum w |O|^2 + w^2)`` (:func:`_wiener_filter`),
its parameter from the widefield spectrum (:func:`_auto_wiener`), the apodisation
(:func:`_apodisation`) and the local Wiener step (Lee, IEEE PAMI 2, 165, 1980;
:func:`_local_wiener`); and the Fourier upsampling of a widefield image
(:func:`fourier_upsample`). Theory: ``docs/sim.md``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import fft as sfft
from scipy import ndimage as ndi

from ..optics import PupilOTF
from .estimation import SIMParameters
from .otf import (
    _attenuation,
    _freqs,
    _grid_otf,
    _mixing_inverse,
    _ramp,
    _wrapped_index,
    otf_values,
    support_box,
)

_WORKERS = -1

__all__ = ["fourier_upsample"]


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


def _auto_wiener(
    spec: np.ndarray, cutoff: float, decay: float, pixel: bool,
    noise_variance: float | None = None,
) -> float:  # fmt: skip
    """``sqrt(sigma^2 / Phi)``: noise-to-signal amplitude ratio of the widefield spectrum.

    ``sigma^2`` is the noise power per Fourier coefficient of the mean of the nine frames
    (measured beyond ``1.1 f_c``, where the image holds no signal; or, given the frames'
    ``noise_variance`` per pixel, ``N v / 9`` for ``N`` pixels, which is the power of white
    noise of that variance) and ``Phi`` the mean object power ``(|C_0(f)|^2 - sigma^2) / O(f)^2``
    over the mid band ``0.3 <= |f| / f_c <= 0.6``.
    """
    ny, nx = spec.shape[-2:]
    c0 = spec.mean(axis=0)  # the spectrum of the mean frame (``spec``: the frames' spectra)
    fy = _freqs(ny, 1.0)[:, None]
    fx = _freqs(nx, 1.0)[None, :]
    q = np.hypot(fy, fx) / cutoff
    if noise_variance is not None:
        sigma2 = float(noise_variance) * ny * nx / spec.shape[0]
    else:
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
                 att: tuple[float, float] | None, square_att: bool,
                 pupil: Mapping[int | str, float] | None = None) -> None:  # fmt: skip
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
        self._pupil2: tuple[PupilOTF, np.ndarray] | None = None
        if pupil:
            # an aberrated pupil (PupilOTF): the OTF is complex, the bands are weighted by
            # conj(O) (the matched filter) and the denominators take |O|^2
            terms = {int(j): float(c) for j, c in pupil.items()}  # JSON keys are strings
            noll = sorted(terms)
            coef = [terms[j] for j in noll]
            fp = cutoff / 2.0  # pupil radius, cycles per camera pixel
            m1 = PupilOTF((self.ny, self.nx), fp, noll)
            o = m1.at(m1.psf(coef), decay, np.zeros(2))
            if pixel:
                o = o * (np.sinc(_freqs(self.ny, 1.0))[:, None] * np.sinc(_freqs(self.nx, 1.0)))
            self.o1 = np.conj(o).astype(np.complex64)
            m2 = PupilOTF((self.my, self.mx), fp / 2.0, noll)  # cycles per half pixel
            self._pupil2 = (m2, m2.psf(coef))
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
        band whose origin sits at ``f = (ky, kx)``, and its noise term ``A^2 O^2``.

        Both vanish beyond the cutoff: they are computed on the rows and columns of the 2x
        grid that reach into the band's disc only."""
        gy, gx = self.fy2 - np.float32(ky), self.fx2 - np.float32(kx)
        o2_full = np.zeros((self.my, self.hx), dtype=np.float32)
        v2_full = np.zeros_like(o2_full)
        rows_cols = support_box(gy, gx, self.cutoff)
        if rows_cols is None:
            return o2_full, v2_full
        rows, cols = rows_cols
        box = np.ix_(rows, cols)
        gy, gx = gy[rows], gx[:, cols]
        if self._pupil2 is None:
            o = otf_values(gy, gx, self.cutoff, decay=self.decay, pixel=self.pixel)
            o2 = o * o
        else:  # |O(f - k)|^2 on the 2x grid (its units: cycles per half pixel)
            m2, h2 = self._pupil2
            o = m2.at(h2, self.decay, np.array([-ky, -kx]) / 2.0)[:, : self.hx][box]
            o2 = (o.real**2 + o.imag**2).astype(np.float32)
            if self.pixel:
                o2 *= (np.sinc(gy) * np.sinc(gx)) ** 2
        v2 = o2  # noise term A^2 O^2 of the band (per unit band weight)
        if self.att is not None and attenuate:
            a = _attenuation(gy, gx, *self.att)
            v2 = o2 * (a * a)
            o2 = v2 if self.square_att else o2 * a
        o2_full[box] = o2
        v2_full[box] = v2
        return o2_full, v2_full


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

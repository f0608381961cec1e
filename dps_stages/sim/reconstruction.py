"""2D-SIM reconstruction on the 2x grid by the generalised Wiener filter (Gustafsson 2000).

``X(f) = A(f) sum_{a,m} w_am O*(f - m k_a) S_am(f) / (sum_{a,m} w_am |O(f - m k_a)|^2 + w^2)``
with ``S_am`` the separated bands shifted to their place, ``A`` the apodisation (Gustafsson,
J. Microsc. 198, 82, 2000; fairSIM's attenuation, Mueller et al., Nat. Commun. 7, 10980,
2016), then a local Wiener step (Lee, IEEE PAMI 2, 165, 1980). Theory: ``docs/sim.md``; the
steps are in :mod:`.wiener`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import fft as sfft

from ..optics import Optics
from .estimation import SIMParameters, estimate_from_spectra, estimate_parameters
from .otf import (
    _check_frames,
    _tukey,
    periodic_spectra,
    preprocess,
)
from .wiener import (
    _add_side_band,
    _apodisation,
    _auto_wiener,
    _Grid,
    _local_noise_variance,
    _local_wiener,
    _pad_to,
    _wiener_filter,
    _zero_band,
    fourier_upsample,
)

__all__ = [
    "fourier_upsample",
    "reconstruct",
    "reconstruct_stack",
    "reconstruct_tiled",
    "shift_origin",
    "sim_halo",
]

_WORKERS = -1


# --------------------------------------------------------------------------------------------
# Reconstruction
# --------------------------------------------------------------------------------------------
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
    pupil: Mapping[int | str, float] | None = None,
    noise_variance: float | None = None,
    info: dict[str, Any] | None = None,
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
    pupil
        Zernike coefficients ``{noll: waves rms}`` of the detection pupil (the calibration's
        :mod:`dps_stages.calibrate.pupil`): the bands are then weighted by the complex OTF's
        conjugate and the denominators take ``|O|^2`` (:class:`dps_stages.optics.PupilOTF`,
        times ``otf_decay^q`` and the pixel's sinc), which undoes the aberration's blur and
        its phase (coma). None: the ideal pupil. The pattern is still estimated with the
        ideal OTF, whose phases a reconstruction with the same OTF phase convention needs.
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
    noise_variance
        The frames' noise variance per pixel (their units), for frames whose noise is not
        white: a denoiser's output, whose error inside the OTF band is the raw noise's or
        more while nothing is left beyond it (:mod:`dps_stages.sure`, the white-noise
        equivalent of its mid band). It then sets the ``"auto"`` Wiener parameter and the local
        Wiener step's noise (uniform) in place of the estimates from beyond the cutoff.
        None: those estimates (white noise, raw frames).
    info
        A dict that receives ``"wiener"``, the Wiener parameter used (``"auto"`` resolved).

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
    spec, smooth_spec = periodic_spectra(x)
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
              att, attenuation_mode == "otf", pupil)  # fmt: skip

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
        wiener = wiener_factor * _auto_wiener(spec, g.cutoff, g.decay, g.pixel, noise_variance)
    if info is not None:
        info["wiener"] = float(wiener)
    apo = _apodisation(g.fy2, g.fx2, apodisation, apodisation_cutoff * f_ext, apodisation_bend)
    filt = _wiener_filter(den, float(wiener), apo)
    # the smooth component, interpolated (not filtered)
    spec_s = _pad_to(smooth_spec.mean(axis=0), (g.my, g.mx))[:, : g.hx]
    spec_s = spec_s * 4.0
    frame_var = None
    if local_wiener is not None and local_wiener > 0:
        frame_var = (
            _local_noise_variance(spec, g.cutoff)
            if noise_variance is None
            else np.full((g.ny, g.nx), noise_variance, np.float32)
        )
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
    noise_variance: float | None = None,
    estimate_kw: dict[str, Any] | None = None,
    **kw: Any,
) -> tuple[Any, SIMParameters, float]:
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

    Returns the lazy image, the parameters (at the image origin) and the Wiener parameter used
    (a number).
    """
    import dask.array as da

    estimate_kw = dict(estimate_kw or {})
    arr = da.asarray(frames).astype(np.float32)
    if arr.ndim != 3 or arr.shape[0] != 9:
        raise ValueError(f"frames must have shape (9, y, x); got {tuple(arr.shape)}")
    _, ny, nx = (int(n) for n in arr.shape)
    common = {"otf_decay": otf_decay, "pixel_otf": pixel_otf, "edge": edge,
              "noise_variance": noise_variance, **kw}  # fmt: skip
    if ny <= tile and nx <= tile:
        info: dict[str, Any] = {}
        image, used = reconstruct(
            np.asarray(arr), optics, params=params, wiener=wiener,
            wiener_factor=wiener_factor, background_percentile=background_percentile,
            normalise_intensity=normalise_intensity, info=info, **common, **estimate_kw,
        )  # fmt: skip
        return da.from_array(image, chunks=image.shape), used, info["wiener"]
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
        spec, _ = periodic_spectra(crop)
        wiener = wiener_factor * _auto_wiener(spec, float(optics.cutoff_per_pixel),
                                              float(otf_decay), bool(pixel_otf),
                                              noise_variance)  # fmt: skip
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

"""Richer ground-truth structures (opt-in by name): varying filaments, bundles, rings, networks,
diffuse cytoplasm and natural images.

Same conventions as :mod:`.structures`: the fine grid (``pixel_size`` nm per pixel), values in
``[0, 1]``, lines drawn as densely sampled paths whose cross-section is a Gaussian of the given
FWHM and peak intensity. They are not in :data:`.structures.STRUCTURES` (the default list, and
the structures other code draws from); :data:`ALL_STRUCTURES` holds both, the default ones
first, so that a default structure's random stream index is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

import numpy as np
from scipy import ndimage

from .structures import (
    _STEP,
    STRUCTURES,
    _Canvas,
    _count_per_area,
    _crossing_filaments,
    _finalise,
    _harmonic_radius,
    _inside,
    _inside_mask,
    _normal_offsets,
    _random_centres,
    _worm,
)

__all__ = [
    "ALL_STRUCTURES",
    "EXTRA_STRUCTURES",
    "NATURAL_IMAGES",
    "bundles",
    "cytoplasm",
    "natural",
    "natural_image",
    "network",
    "render_rings",
    "rings",
    "smooth_profile",
    "varying_filaments",
]


def smooth_profile(
    rng: np.random.Generator, n: int, correlation: float, lo: float, hi: float
) -> np.ndarray:
    """A smooth random profile of ``n`` samples spanning exactly ``[lo, hi]``.

    ``g = G_c * w`` (white noise ``w`` filtered by a Gaussian of ``correlation`` samples),
    then ``lo + (hi - lo) (g - min g) / (max g - min g)``; constant ``(lo + hi) / 2`` when
    ``lo == hi`` or ``n < 2``.
    """
    w = rng.standard_normal(max(n, 1))
    if n < 2 or hi == lo:
        return np.full(max(n, 1), 0.5 * (lo + hi))
    g = ndimage.gaussian_filter1d(w, max(correlation, 1e-3), mode="reflect")
    span = float(g.max() - g.min())
    t = (g - g.min()) / span if span > 0 else np.full(n, 0.5)
    return lo + (hi - lo) * t


class _MultiWidth:
    """Canvases for ``k`` line widths: each point goes to the canvas of the nearest width."""

    def __init__(self, shape: tuple[int, int], widths_px: np.ndarray) -> None:
        self.widths = np.asarray(widths_px, dtype=np.float64)
        self.canvases = [_Canvas(shape, w) for w in self.widths]

    def add_path(self, pts: np.ndarray, intensity: np.ndarray, width_px: np.ndarray) -> None:
        """Points every ``_STEP`` with per-point peak ``intensity`` and FWHM ``width_px``."""
        idx = np.argmin(np.abs(width_px[:, None] - self.widths[None, :]), axis=1)
        for j, canvas in enumerate(self.canvases):
            sel = idx == j
            if sel.any():
                canvas.add_points(pts[sel], intensity[sel] * _STEP * canvas.line_factor)

    def render(self) -> np.ndarray:
        return np.sum([c.render() for c in self.canvases], axis=0)


def varying_filaments(
    shape: tuple[int, int],
    pixel_size: float,
    rng: np.random.Generator,
    *,
    density: float = 2.0,
    width: tuple[float, float] = (25.0, 80.0),
    brightness: tuple[float, float] = (0.3, 1.0),
    correlation: float = 500.0,
    persistence: float = 5000.0,
    n_widths: int = 6,
) -> np.ndarray:
    """Filaments whose brightness and width vary along their length.

    Worm-like chains as in :func:`.structures.microtubules` (Poisson number, mean ``density``
    per um of field side, persistence ``persistence`` nm). Along each filament the peak
    brightness ``I(s)`` spans ``brightness`` and the FWHM ``w(s)`` spans ``width`` (nm), both
    :func:`smooth_profile` with correlation length ``correlation`` nm; widths are rendered
    on ``n_widths`` evenly spaced levels. Returns float32 in ``[0, 1]``.
    """
    levels = np.linspace(width[0], width[1], max(int(n_widths), 1)) / pixel_size
    canvas = _MultiWidth(shape, levels)
    corr = correlation / pixel_size / _STEP
    for path in _crossing_filaments(rng, shape, pixel_size, density, persistence):
        inten = smooth_profile(rng, path.shape[0], corr, *brightness)
        wid = smooth_profile(rng, path.shape[0], corr, width[0], width[1]) / pixel_size
        keep = _inside_mask(path, shape)
        canvas.add_path(path[keep], inten[keep], wid[keep])
    return _finalise(canvas.render())


def bundles(
    shape: tuple[int, int],
    pixel_size: float,
    rng: np.random.Generator,
    *,
    density: float = 1.0,
    size: tuple[int, int] = (2, 6),
    spacing: tuple[float, float] = (40.0, 120.0),
    wander: float = 0.3,
    width: float = 25.0,
    persistence: float = 8000.0,
    intensity: tuple[float, float] = (0.5, 1.0),
) -> np.ndarray:
    """Bundles of several nearly parallel filaments (stress fibres, microtubule bundles).

    Poisson number of bundles (mean ``density`` per um of field side); each has a worm-like
    backbone and ``size`` (uniform integer range) members; member ``i`` follows the backbone at
    the normal offset ``o_i(s) = sum_{0 < j <= i} d_j + wander d_min g_i(s)`` (centred on the
    backbone), ``d_j`` uniform in ``spacing = (d_min, d_max)`` nm and ``g_i`` a smooth profile
    in ``[-1, 1]`` (correlation 1 um), so the members stay nearly parallel and never cross
    (``wander < 0.5``). Line FWHM ``width``
    nm, each member's intensity uniform in ``intensity``. Returns float32 in ``[0, 1]``.
    """
    canvas = _Canvas(shape, width / pixel_size)
    corr = 1000.0 / pixel_size / _STEP
    for path in _crossing_filaments(rng, shape, pixel_size, density, persistence):
        path = _inside(path, shape, margin=4.0 + size[1] * spacing[1] / pixel_size)
        if path.shape[0] < 2:
            continue
        members = int(rng.integers(size[0], size[1] + 1))
        gaps = rng.uniform(*spacing, members) / pixel_size
        gaps[0] = 0.0
        base = np.cumsum(gaps) - 0.5 * gaps.sum()
        for i in range(members):
            g = smooth_profile(rng, path.shape[0], corr, -1.0, 1.0)
            offset = base[i] + wander * spacing[0] / pixel_size * g
            member = _normal_offsets(path, offset)
            canvas.add_path(_inside(member, shape), rng.uniform(*intensity))
    return _finalise(canvas.render())


def render_rings(
    shape: tuple[int, int],
    pixel_size: float,
    centres: np.ndarray,
    radii: np.ndarray,
    intensities: np.ndarray,
    *,
    width: float = 40.0,
) -> np.ndarray:
    """Closed rings ``c + r (sin a, cos a)`` (``centres`` (N, 2) fine pixels, ``radii`` nm) of
    peak ``intensities`` and line FWHM ``width`` nm. Returns float32 in ``[0, 1]``."""
    canvas = _Canvas(shape, width / pixel_size)
    for c, r_nm, inten in zip(np.asarray(centres), radii, intensities, strict=True):
        canvas.add_arc(c, float(r_nm) / pixel_size, float(inten), min_points=8)
    return _finalise(canvas.render())


def rings(
    shape: tuple[int, int],
    pixel_size: float,
    rng: np.random.Generator,
    *,
    density: float = 0.5,
    radius: tuple[float, float] = (100.0, 500.0),
    width: float = 40.0,
    intensity: tuple[float, float] = (0.5, 1.0),
) -> np.ndarray:
    """Rings (vesicles, nuclear pores seen large, FtsZ rings): closed circles of radius uniform
    in ``radius`` nm at uniform random centres, Poisson number with mean ``density`` per
    um^2 (at least 1), line FWHM ``width`` nm (:func:`render_rings`)."""
    centres = _random_centres(rng, shape, pixel_size, density)
    n = centres.shape[0]
    radii = rng.uniform(radius[0], radius[1], n)
    inten = rng.uniform(intensity[0], intensity[1], n)
    return render_rings(shape, pixel_size, centres, radii, inten, width=width)


def network(
    shape: tuple[int, int],
    pixel_size: float,
    rng: np.random.Generator,
    *,
    density: float = 60.0,
    length: tuple[float, float] = (300.0, 1500.0),
    persistence: float = 2000.0,
    p_branch: float = 0.5,
    branch_angle: float = 70.0,
    width: float = 10.0,
    intensity: tuple[float, float] = (0.3, 1.0),
) -> np.ndarray:
    """A dense meshwork of short filaments with branches (cortical actin).

    Poisson number of mother filaments with mean ``density`` per um^2, each a worm-like chain
    (persistence ``persistence`` nm) of length uniform in ``length`` nm from a uniform point;
    with probability ``p_branch`` a daughter grows from a uniform point along it at
    ``+-branch_angle`` degrees (the Arp2/3 branch angle, about 70 degrees), half as long.
    Line FWHM ``max(width, 1 fine pixel)``. Returns float32 in ``[0, 1]``.
    """
    ny, nx = shape
    n = _count_per_area(rng, shape, pixel_size, density)
    canvas = _Canvas(shape, width / pixel_size)
    lp = persistence / pixel_size
    for _ in range(n):
        start = rng.uniform((0, 0), (ny - 1, nx - 1))
        theta = rng.uniform(0, 2 * np.pi)
        half = 0.5 * rng.uniform(*length) / pixel_size
        path = _worm(rng, start, theta, half, lp)
        inten = rng.uniform(*intensity)
        canvas.add_path(_inside(path, shape), inten)
        if rng.random() < p_branch:
            j = int(rng.integers(path.shape[0]))
            t = path[min(j + 1, path.shape[0] - 1)] - path[max(j - 1, 0)]
            phi = np.arctan2(t[0], t[1]) + np.sign(rng.random() - 0.5) * np.radians(branch_angle)
            d = _worm(rng, path[j], phi, 0.25 * half, lp)
            d = d[d.shape[0] // 2 :]  # one-sided: the daughter grows away from the mother
            canvas.add_path(_inside(d, shape), rng.uniform(*intensity))
    return _finalise(canvas.render())


def _cell_mask(
    shape: tuple[int, int], pixel_size: float, rng: np.random.Generator, radius: float
) -> np.ndarray:
    """Soft cell mask: ``R(a) = R0 (1 + sum_{k=2..5} c_k cos(k a + phi_k))`` about a centre
    near the field centre, edge smoothed over 200 nm (values in ``[0, 1]``)."""
    ny, nx = shape
    c = np.array([ny, nx], float) / 2 + rng.uniform(-0.15, 0.15, 2) * np.array([ny, nx])
    outline, _ = _harmonic_radius(rng, radius * min(ny, nx) / 2, np.arange(2, 6), 0.08)
    yy, xx = np.mgrid[:ny, :nx].astype(np.float64)
    rad = outline(np.arctan2(yy - c[0], xx - c[1]))
    inside = (np.hypot(yy - c[0], xx - c[1]) <= rad).astype(np.float64)
    return np.clip(ndimage.gaussian_filter(inside, 200.0 / pixel_size / 2.355), 0.0, 1.0)


def cytoplasm(
    shape: tuple[int, int],
    pixel_size: float,
    rng: np.random.Generator,
    *,
    level: tuple[float, float] = (0.05, 0.3),
    scale: float = 500.0,
    radius: float = 0.8,
    overlay: str | None = "microtubules",
    overlay_kw: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """Diffuse cytoplasm: a smooth low-level background inside a cell mask, under an overlay.

    The background ``B = M (lo + (hi - lo) t)``: ``M`` a soft cell mask (a smooth blob of
    radius ``radius`` times half the field), ``t`` in ``[0, 1]`` a Gaussian random field of
    correlation ``scale`` nm (rescaled to span ``[0, 1]`` inside the mask), ``(lo, hi) =
    level``. With an ``overlay`` structure ``S`` (any of :data:`ALL_STRUCTURES` but this one,
    values in ``[0, 1]``, drawn first, with ``overlay_kw``) the image is
    ``B + (1 - B) S``: ``S`` keeps its peak 1 and ``B`` stays where ``S = 0``; with
    ``overlay=None`` it is ``B`` alone (maximum ``hi``, not rescaled). float32 in ``[0, 1]``.
    """
    s = None
    if overlay is not None:
        if overlay == "cytoplasm" or overlay not in ALL_STRUCTURES:
            raise KeyError(f"unknown overlay {overlay!r}")
        s = ALL_STRUCTURES[overlay](shape, pixel_size, rng, **dict(overlay_kw or {}))
    mask = _cell_mask(shape, pixel_size, rng, radius)
    g = ndimage.gaussian_filter(rng.standard_normal(shape), scale / pixel_size, mode="wrap")
    inner = mask > 0.5
    lo_g, hi_g = (float(g[inner].min()), float(g[inner].max())) if inner.any() else (0.0, 1.0)
    t = np.clip((g - lo_g) / max(hi_g - lo_g, 1e-12), 0.0, 1.0)
    b = mask * (level[0] + (level[1] - level[0]) * t)
    out = b if s is None else b + (1.0 - b) * s
    return np.clip(out, 0.0, 1.0).astype(np.float32)


#: scikit-image's bundled natural images that load without a download (grey or colour;
#: binary, synthetic and tiny ones left out).
NATURAL_IMAGES: tuple[str, ...] = (
    "astronaut",
    "brick",
    "camera",
    "cell",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
)


@cache
def natural_image(name: str) -> np.ndarray:
    """A scikit-image bundled image as grey float32 in ``[0, 1]`` (cached; read-only)."""
    from skimage import data
    from skimage.color import rgb2gray

    if name not in NATURAL_IMAGES:
        raise KeyError(f"unknown natural image {name!r}; known: {', '.join(NATURAL_IMAGES)}")
    img = np.asarray(getattr(data, name)())
    if img.ndim == 3:
        img = rgb2gray(img[..., :3])
    img = img.astype(np.float32)
    img = (img - img.min()) / max(float(img.max() - img.min()), 1e-12)
    img.setflags(write=False)
    return img


def natural(
    shape: tuple[int, int],
    pixel_size: float,
    rng: np.random.Generator,
    *,
    images: tuple[str, ...] | None = None,
    crop: tuple[float, float] = (0.25, 1.0),
    p_invert: float = 0.5,
    gamma: tuple[float, float] = (1.0, 2.0),
) -> np.ndarray:
    """A natural image (scikit-image's bundled images, no download) as a structure.

    One of ``images`` (default :data:`NATURAL_IMAGES`) chosen uniformly,
    in grey ``[0, 1]``; a square crop of side ``c min(H, W)``, ``c`` uniform in ``crop``, at a
    uniform position, resampled bilinearly to ``shape`` (the image has no physical scale:
    ``pixel_size`` is unused), a random rotation by a multiple of 90 degrees and flip, with
    probability ``p_invert`` inverted (``1 - x``: dark background as in fluorescence), then
    ``x^gamma`` (``gamma`` uniform in ``gamma``, which darkens the background) and scaled to a
    maximum of 1. Returns float32, non-negative.
    """
    from scipy.ndimage import map_coordinates

    names = tuple(images) if images else NATURAL_IMAGES
    img = natural_image(names[int(rng.integers(len(names)))])
    side = max(2, int(round(rng.uniform(*crop) * min(img.shape))))
    y0 = int(rng.integers(img.shape[0] - side + 1))
    x0 = int(rng.integers(img.shape[1] - side + 1))
    yy = y0 + (np.arange(shape[0]) + 0.5) * side / shape[0] - 0.5
    xx = x0 + (np.arange(shape[1]) + 0.5) * side / shape[1] - 0.5
    grid = np.meshgrid(yy, xx, indexing="ij")
    out = map_coordinates(np.asarray(img, np.float64), grid, order=1, mode="reflect")
    if shape[0] == shape[1]:
        out = np.rot90(out, int(rng.integers(4)))
    else:
        rng.integers(4)
    if rng.integers(2):
        out = out[:, ::-1]
    if rng.random() < p_invert:
        out = 1.0 - out
    out = np.clip(out, 0.0, None) ** rng.uniform(*gamma)
    return _finalise(np.ascontiguousarray(out))


#: The opt-in structures, by name.
EXTRA_STRUCTURES: dict[str, Callable[..., np.ndarray]] = {
    "varying_filaments": varying_filaments,
    "bundles": bundles,
    "rings": rings,
    "network": network,
    "cytoplasm": cytoplasm,
    "natural": natural,
}

#: Default structures first (their random-stream index is unchanged), then the extra ones.
ALL_STRUCTURES: dict[str, Callable[..., np.ndarray]] = {**STRUCTURES, **EXTRA_STRUCTURES}

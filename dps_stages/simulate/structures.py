"""Synthetic ground-truth structures on the fine grid (microtubules, pits, ER, actin).

Structures are rendered on a grid 4x finer than the camera (a 65 nm camera pixel gives
16.25 nm), with values in ``[0, 1]`` (the brightest point of each image is 1). Filaments and
rings are drawn as densely sampled paths (points every 1/4 fine pixel) accumulated with
bilinear weights, then blurred by a small Gaussian that sets the line width (full width at
half maximum ``max(width, 1 fine pixel)``); every point carries the weight
``I ds sqrt(2 pi) sigma`` so that an isolated line of intensity ``I`` peaks at about ``I`` and
a filled area of intensity ``I`` has the value ``I`` inside.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.spatial import Voronoi

__all__ = [
    "FINE_FACTOR",
    "STRUCTURES",
    "actin",
    "clathrin_pits",
    "draw_pits",
    "er",
    "microtubules",
    "render_pits",
]

#: Fine (ground-truth) grid: this many fine pixels per camera pixel along each axis.
FINE_FACTOR = 4

_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
_STEP = 0.25  # path sampling step, fine pixels
_BILINEAR_VAR = 1.0 / 6.0  # variance (px^2, per axis) of the bilinear splat's tent kernel


# --------------------------------------------------------------------------------------------
# Rendering helpers
# --------------------------------------------------------------------------------------------
class _Canvas:
    """Accumulates weighted sub-pixel points, then splats (bilinear) and blurs them once.

    ``fwhm_px`` is the target line width in pixels; the Gaussian blur has
    ``sigma_g^2 = sigma^2 - 1/6`` so that, with the bilinear tent (variance 1/6 px^2), the
    total spread is ``sigma = fwhm_px / 2.3548``.
    """

    def __init__(self, shape: tuple[int, int], fwhm_px: float) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        self.sigma = max(float(fwhm_px), 1.0) / _FWHM_PER_SIGMA
        self.line_factor = float(np.sqrt(2.0 * np.pi) * self.sigma)
        self._pts: list[np.ndarray] = []
        self._w: list[np.ndarray] = []

    def _keep(self, pts: np.ndarray) -> np.ndarray:
        ny, nx = self.shape
        return (pts[:, 0] > -2) & (pts[:, 0] < ny + 1) & (pts[:, 1] > -2) & (pts[:, 1] < nx + 1)

    def add_points(self, pts: np.ndarray, weights: np.ndarray | float) -> None:
        """Add points ``(N, 2)`` (y, x in pixels) with weights (final integrated intensity)."""
        pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        w = np.broadcast_to(np.asarray(weights, dtype=np.float64), (pts.shape[0],))
        keep = self._keep(pts)
        if keep.any():
            self._pts.append(pts[keep])
            self._w.append(w[keep])

    def add_path(self, pts: np.ndarray, intensity: float, step: float = _STEP) -> None:
        """Add a path sampled every ``step`` pixels as a line of peak ``intensity``."""
        self.add_points(pts, intensity * step * self.line_factor)

    def add_polyline(self, vertices: np.ndarray, intensity: float) -> None:
        """Add a polyline through ``vertices`` (resampled every ``_STEP`` pixels)."""
        self.add_path(_resample(vertices, _STEP), intensity)

    def add_arc(
        self,
        centre: np.ndarray,
        radius: float,
        intensity: float,
        start: float = 0.0,
        extent: float = 2 * np.pi,
        min_points: int = 3,
    ) -> None:
        """Add the arc ``c + r (sin a, cos a)``, ``a`` from ``start`` over ``extent`` rad
        (:func:`_arc`), as a line of peak ``intensity``; ``radius`` in pixels."""
        ring, ds = _arc(centre, radius, start, extent, min_points)
        self.add_points(ring, intensity * ds * self.line_factor)

    def add_area(self, pts: np.ndarray, intensity: float, area_per_point: float) -> None:
        """Add a filled region sampled by ``pts`` (each standing for ``area_per_point`` px^2)."""
        self.add_points(pts, intensity * area_per_point)

    def render(self) -> np.ndarray:
        ny, nx = self.shape
        if not self._pts:
            return np.zeros(self.shape, dtype=np.float64)
        pts = np.concatenate(self._pts)
        w = np.concatenate(self._w)
        y0 = np.floor(pts[:, 0]).astype(np.int64)
        x0 = np.floor(pts[:, 1]).astype(np.int64)
        fy = pts[:, 0] - y0
        fx = pts[:, 1] - x0
        ys = np.concatenate([y0, y0, y0 + 1, y0 + 1])
        xs = np.concatenate([x0, x0 + 1, x0, x0 + 1])
        ws = np.concatenate([(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx])
        ws = ws * np.tile(w, 4)
        ok = (ys >= 0) & (ys < ny) & (xs >= 0) & (xs < nx)
        img = np.bincount(ys[ok] * nx + xs[ok], weights=ws[ok], minlength=ny * nx)
        img = img.reshape(ny, nx)
        sigma_g = np.sqrt(max(self.sigma**2 - _BILINEAR_VAR, 0.0))
        if sigma_g > 0.05:
            img = ndimage.gaussian_filter(img, sigma_g, mode="constant", truncate=3.0)
        return img


def _resample(vertices: np.ndarray, step: float) -> np.ndarray:
    """Points every ``step`` along the polyline through ``vertices`` (N, 2)."""
    v = np.asarray(vertices, dtype=np.float64)
    seg = np.hypot(*np.diff(v, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(int(np.ceil(s[-1] / step)), 1)
    t = np.linspace(0.0, s[-1], n + 1)
    return np.stack([np.interp(t, s, v[:, 0]), np.interp(t, s, v[:, 1])], axis=1)


def _worm(
    rng: np.random.Generator,
    start: np.ndarray,
    theta0: float,
    half_length: float,
    persistence: float,
    step: float = _STEP,
) -> np.ndarray:
    """Worm-like chain through ``start``: a path sampled every ``step`` (pixels).

    The tangent angle performs a random walk, ``theta_{i+1} = theta_i + N(0, step / L_p)``
    (2D worm-like chain, tangent correlation ``exp(-s / (2 L_p))``), from ``start`` in both
    directions ``theta0`` and ``theta0 + pi`` over ``half_length`` each.
    """
    n = max(int(np.ceil(half_length / step)), 1)
    sd = np.sqrt(step / persistence)

    def half(theta: float) -> np.ndarray:
        ang = theta + np.cumsum(rng.normal(0.0, sd, n))
        d = step * np.stack([np.sin(ang), np.cos(ang)], axis=1)
        return start[None, :] + np.cumsum(d, axis=0)

    fwd = half(theta0)
    bwd = half(theta0 + np.pi)
    return np.concatenate([bwd[::-1], start[None, :], fwd])


def _crossing_worm(
    rng: np.random.Generator, shape: tuple[int, int], persistence: float
) -> np.ndarray:
    """:func:`_worm` through a uniform point of the field at a uniform angle, ``1.2`` field
    diagonals each way (so that it crosses the field); ``persistence`` in pixels."""
    ny, nx = shape
    start = rng.uniform((0, 0), (ny - 1, nx - 1))
    return _worm(rng, start, rng.uniform(0, 2 * np.pi), 1.2 * np.hypot(ny, nx), persistence)


def _crossing_filaments(
    rng: np.random.Generator,
    shape: tuple[int, int],
    pixel_size: float,
    density: float,
    persistence: float,
) -> Iterator[np.ndarray]:
    """The paths of :func:`_count_per_side` filaments (mean ``density`` per um of field side),
    each a :func:`_crossing_worm` of persistence length ``persistence`` nm.

    A generator: the count is drawn at the first iteration and each path when it is reached,
    so that the caller's own draws for a filament follow that filament's path in the stream.
    """
    for _ in range(_count_per_side(rng, shape, pixel_size, density)):
        yield _crossing_worm(rng, shape, persistence / pixel_size)


def _harmonic_radius(
    rng: np.random.Generator, r0: float, ks: np.ndarray, amplitude: float
) -> tuple[Callable[[np.ndarray], np.ndarray], float]:
    """A random smooth closed outline ``R(a) = R0 (1 + sum_k c_k cos(k a + phi_k))`` with
    ``c_k ~ U(0, amplitude)`` and ``phi_k ~ U(0, 2 pi)`` (drawn in that order) for the
    harmonics ``ks``; returns ``R`` and its bound ``R0 (1 + sum_k c_k)``."""
    ck = rng.uniform(0.0, amplitude, ks.size)
    phik = rng.uniform(0.0, 2 * np.pi, ks.size)

    def radius(ang: np.ndarray) -> np.ndarray:
        harmonics = ck[:, None, None] * np.cos(ks[:, None, None] * ang + phik[:, None, None])
        return r0 * (1 + harmonics.sum(axis=0))

    return radius, r0 * (1 + ck.sum())


def _inside_mask(pts: np.ndarray, shape: tuple[int, int], margin: float = 2.0) -> np.ndarray:
    """Points ``(N, 2)`` within ``margin`` pixels of the field."""
    return (
        (pts[:, 0] > -margin)
        & (pts[:, 0] < shape[0] - 1 + margin)
        & (pts[:, 1] > -margin)
        & (pts[:, 1] < shape[1] - 1 + margin)
    )


def _inside(pts: np.ndarray, shape: tuple[int, int], margin: float = 2.0) -> np.ndarray:
    return pts[_inside_mask(pts, shape, margin)]


def _normal_offsets(path: np.ndarray, offset: float | np.ndarray) -> np.ndarray:
    """The path shifted by ``offset`` pixels (a number, or one per point) along its local
    normal."""
    t = np.gradient(path, axis=0)
    t /= np.maximum(np.hypot(t[:, 0], t[:, 1]), 1e-12)[:, None]
    normal = np.stack([t[:, 1], -t[:, 0]], axis=1)
    return path + np.reshape(offset, (-1, 1)) * normal


def _arc(
    centre: np.ndarray, radius: float, start: float, extent: float, min_points: int
) -> tuple[np.ndarray, float]:
    """Points ``c + r (sin a, cos a)`` about every ``_STEP`` pixels (at least ``min_points``)
    for ``a`` from ``start`` over ``extent`` rad (a full circle without its repeated end
    point), and the arc length ``r extent / n`` each stands for."""
    n = max(int(np.ceil(radius * extent / _STEP)), min_points)
    a = start + np.linspace(0.0, extent, n, endpoint=extent < 2 * np.pi)
    pts = np.asarray(centre)[None, :] + radius * np.stack([np.sin(a), np.cos(a)], axis=1)
    return pts, radius * extent / n


def _disc_points(centre: np.ndarray, radius: float, step: float = 0.5) -> tuple[np.ndarray, float]:
    """Points filling a disc (concentric rings ``step`` apart) and the area each stands for."""
    radii = (np.arange(max(int(np.ceil(radius / step)), 1)) + 0.5) * step
    radii = radii[radii < radius] if np.any(radii < radius) else radii[:1]
    pts = []
    areas = []
    for r in radii:
        n = max(int(np.ceil(2 * np.pi * r / step)), 3)
        a = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
        pts.append(centre[None, :] + r * np.stack([np.sin(a), np.cos(a)], axis=1))
        areas.append(np.full(n, 2 * np.pi * r * step / n))
    return np.concatenate(pts), np.concatenate(areas)


def _finalise(img: np.ndarray) -> np.ndarray:
    """Scale to a maximum of 1, clip to ``[0, 1]``, float32."""
    peak = float(img.max())
    if peak > 0:
        img = img / peak
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def _count(rng: np.random.Generator, mean: float, minimum: int = 1) -> int:
    return max(int(rng.poisson(max(mean, 0.0))), minimum)


def _count_per_side(
    rng: np.random.Generator, shape: tuple[int, int], pixel_size: float, density: float
) -> int:
    """Poisson count (at least 1) of mean ``density`` per um of field side ``sqrt(ny nx)``."""
    ny, nx = shape
    side_um = np.sqrt(ny * nx) * pixel_size / 1000.0
    return _count(rng, density * side_um)


def _count_per_area(
    rng: np.random.Generator, shape: tuple[int, int], pixel_size: float, density: float
) -> int:
    """Poisson count (at least 1) of mean ``density`` per um^2 of field."""
    ny, nx = shape
    area_um2 = ny * nx * (pixel_size / 1000.0) ** 2
    return _count(rng, density * area_um2)


def _random_centres(
    rng: np.random.Generator, shape: tuple[int, int], pixel_size: float, density: float
) -> np.ndarray:
    """:func:`_count_per_area` points ``(N, 2)`` uniform in the field (fine pixels)."""
    n = _count_per_area(rng, shape, pixel_size, density)
    return rng.uniform((0, 0), (shape[0] - 1, shape[1] - 1), size=(n, 2))


# --------------------------------------------------------------------------------------------
# Structures
# --------------------------------------------------------------------------------------------
def microtubules(
    shape: tuple[int, int],
    pixel_size: float,
    rng: np.random.Generator,
    *,
    density: float = 2.0,
    width: float = 25.0,
    persistence: float = 6000.0,
    intensity: tuple[float, float] = (0.6, 1.0),
) -> np.ndarray:
    """Microtubules: smooth random filaments crossing the field.

    Each filament is a 2D worm-like chain (tangent angle a random walk with variance
    ``ds / L_p`` per step ``ds``, persistence length ``L_p = persistence`` nm) through a uniform
    random point, long enough to cross the field; line width ``width`` nm (FWHM, 25 nm for a
    microtubule), intensity uniform in ``intensity``. The number of filaments is Poisson with
    mean ``density`` times the field side in um (at least 1), which keeps the filament length
    per area constant.

    Returns float32 ``shape`` with values in ``[0, 1]``.
    """
    canvas = _Canvas(shape, width / pixel_size)
    for path in _crossing_filaments(rng, shape, pixel_size, density, persistence):
        canvas.add_path(_inside(path, shape), rng.uniform(*intensity))
    return _finalise(canvas.render())


def draw_pits(
    shape: tuple[int, int],
    pixel_size: float,
    rng: np.random.Generator,
    *,
    density: float = 1.0,
    diameter: tuple[float, float] = (80.0, 150.0),
    p_filled: float = 0.2,
    p_partial: float = 0.25,
    intensity: tuple[float, float] = (0.5, 1.0),
) -> dict[str, np.ndarray]:
    """Random parameters of clathrin-coated pits (the parameter generator of :func:`render_pits`).

    Poisson number of pits with mean ``density`` per um^2 (at least 1), centres uniform in the
    field, diameters (of the ring's mid-wall circle) uniform in ``diameter`` nm, and per pit
    with probability ``p_partial`` an open ring (an arc covering 40 % to 85 % of the circle,
    i.e. a pit seen partly), with probability ``p_filled`` a filled disc (interior at 30 % to
    60 % of the ring's intensity, a flat lattice or a pit seen from above), else a full ring.

    Returns a dict of arrays: ``centre`` (N, 2) in fine pixels (y, x), ``diameter`` (N,) nm,
    ``arc_start`` and ``arc_extent`` (N,) rad, ``fill`` (N,) and ``intensity`` (N,).
    """
    centre = _random_centres(rng, shape, pixel_size, density)
    n = centre.shape[0]
    diam = rng.uniform(diameter[0], diameter[1], n)
    kind = rng.random(n)
    partial = kind < p_partial
    filled = (kind >= p_partial) & (kind < p_partial + p_filled)
    arc_extent = np.where(partial, rng.uniform(0.4, 0.85, n) * 2 * np.pi, 2 * np.pi)
    arc_start = rng.uniform(0, 2 * np.pi, n)
    fill = np.where(filled, rng.uniform(0.3, 0.6, n), 0.0)
    return {
        "centre": centre,
        "diameter": diam,
        "arc_start": arc_start,
        "arc_extent": arc_extent,
        "fill": fill,
        "intensity": rng.uniform(intensity[0], intensity[1], n),
    }


def render_pits(
    shape: tuple[int, int],
    pixel_size: float,
    params: Mapping[str, np.ndarray],
    *,
    wall: float = 20.0,
) -> np.ndarray:
    """Render pits from :func:`draw_pits` parameters: rings of mid-wall radius ``diameter / 2``.

    Each ring is the arc ``c + (d / 2) (sin a, cos a)`` for ``a`` from ``arc_start`` over
    ``arc_extent``, drawn as a line of FWHM ``max(wall, 1 pixel)``; a filled pit adds a disc of
    radius ``d / 2`` at ``fill`` times its intensity. Returns float32 in ``[0, 1]``.
    """
    canvas = _Canvas(shape, wall / pixel_size)
    for c, d, a0, ext, fill, inten in zip(
        params["centre"],
        params["diameter"],
        params["arc_start"],
        params["arc_extent"],
        params["fill"],
        params["intensity"],
        strict=True,
    ):
        r = 0.5 * d / pixel_size
        canvas.add_arc(c, r, inten, a0, ext)
        if fill > 0:
            pts, area = _disc_points(np.asarray(c), r)
            canvas.add_area(pts, fill * inten, area)
    return _finalise(canvas.render())


def clathrin_pits(
    shape: tuple[int, int],
    pixel_size: float,
    rng: np.random.Generator,
    *,
    wall: float = 20.0,
    **params: Any,
) -> np.ndarray:
    """Clathrin-coated pits ("ccps"): scattered rings of 80 to 150 nm diameter.

    ``render_pits(shape, pixel_size, draw_pits(shape, pixel_size, rng, **params), wall=wall)``:
    thin rings (wall FWHM ``wall`` nm), some open (partly visible), some filled.
    """
    return render_pits(shape, pixel_size, draw_pits(shape, pixel_size, rng, **params), wall=wall)


def er(
    shape: tuple[int, int],
    pixel_size: float,
    rng: np.random.Generator,
    *,
    density: float = 1.2,
    width: float = 50.0,
    keep: float = 0.8,
    waviness: float = 0.08,
    junction_fraction: float = 0.3,
    sheet_density: float = 0.03,
    intensity: tuple[float, float] = (0.6, 1.0),
) -> np.ndarray:
    """Endoplasmic reticulum: a polygonal mesh of tubules with junctions and a few sheets.

    The tubules are the finite edges of the Voronoi diagram of Poisson random seeds (mean
    ``density`` per um^2, drawn over the field plus a 1 um margin), which gives the three-way
    junctions of the ER; a fraction ``keep`` of the edges is kept. Each edge from ``p0`` to
    ``p1`` (length ``L``) bends as ``p(t) = p0 + t (p1 - p0) + n (a1 sin(pi t) +
    a2 sin(2 pi t))`` with ``a_i ~ N(0, (waviness L)^2)`` and ``n`` its unit normal; tubule
    width ``width`` nm (FWHM). A fraction ``junction_fraction`` of the junctions carries a small
    blob (radius 30 to 60 nm), and a Poisson number (mean ``sheet_density`` per um^2) of sheets
    are filled smooth blobs of radius ``R(a) = R0 (1 + sum_k c_k cos(k a + phi_k))`` (R0 300 to
    800 nm, intensity 0.3 to 0.6). Returns float32 in ``[0, 1]``.
    """
    ny, nx = shape
    margin = 1000.0 / pixel_size
    area_um2 = (ny + 2 * margin) * (nx + 2 * margin) * (pixel_size / 1000.0) ** 2
    n_seeds = _count(rng, density * area_um2, minimum=8)
    seeds = rng.uniform((-margin, -margin), (ny + margin, nx + margin), size=(n_seeds, 2))
    vor = Voronoi(seeds)
    verts = vor.vertices
    canvas = _Canvas(shape, width / pixel_size)
    lo = np.array([-margin / 2, -margin / 2])
    hi = np.array([ny + margin / 2, nx + margin / 2])
    for ridge in vor.ridge_vertices:
        i, j = ridge
        if i < 0 or j < 0:
            continue
        p0, p1 = verts[i], verts[j]
        if not (np.all((p0 > lo) & (p0 < hi)) or np.all((p1 > lo) & (p1 < hi))):
            continue
        if rng.random() > keep:
            continue
        d = p1 - p0
        length = float(np.hypot(*d))
        if length < 1e-6:
            continue
        n = max(int(np.ceil(length / _STEP)), 1)
        t = np.linspace(0.0, 1.0, n + 1)[:, None]
        a1, a2 = rng.normal(0.0, waviness * length, 2)
        normal = np.array([d[1], -d[0]]) / length
        bend = a1 * np.sin(np.pi * t) + a2 * np.sin(2 * np.pi * t)
        path = p0 + t * d + bend * normal
        canvas.add_path(_inside(path, shape), rng.uniform(*intensity), step=length / n * 1.0)
    inside = np.all((verts > -2) & (verts < np.array([ny + 1, nx + 1])), axis=1)
    for v in verts[inside]:
        if rng.random() < junction_fraction:
            pts, area = _disc_points(v, rng.uniform(30.0, 60.0) / pixel_size)
            canvas.add_area(pts, rng.uniform(*intensity), area)
    field_um2 = ny * nx * (pixel_size / 1000.0) ** 2
    for _ in range(int(rng.poisson(sheet_density * field_um2))):
        c = rng.uniform((0, 0), (ny - 1, nx - 1))
        outline, rmax = _harmonic_radius(
            rng, rng.uniform(300.0, 800.0) / pixel_size, np.arange(2, 5), 0.15
        )
        g = np.arange(-rmax, rmax + 0.5, 0.5)
        gy, gx = np.meshgrid(g, g, indexing="ij")
        sel = np.hypot(gy, gx) <= outline(np.arctan2(gy, gx))
        pts = np.stack([gy[sel] + c[0], gx[sel] + c[1]], axis=1)
        canvas.add_area(pts, rng.uniform(0.3, 0.6), 0.25)
    return _finalise(canvas.render())


def actin(
    shape: tuple[int, int],
    pixel_size: float,
    rng: np.random.Generator,
    *,
    density: float = 6.0,
    width: float = 8.0,
    persistence: float = 15000.0,
    p_bundle: float = 0.3,
    bundle_size: tuple[int, int] = (2, 4),
    bundle_spacing: tuple[float, float] = (12.0, 30.0),
    intensity: tuple[float, float] = (0.4, 1.0),
) -> np.ndarray:
    """Actin: dense, thin, nearly straight filaments, some in bundles.

    Worm-like chains as in :func:`microtubules` with a long persistence length (15 um by
    default, so filaments are straight-ish), Poisson number with mean ``density`` per um of
    field side; with probability ``p_bundle`` a filament becomes a bundle of 2 to 4 parallel
    copies offset along the local normal by ``bundle_spacing`` nm each. The filament width
    (``width`` = 7 to 10 nm) is below a fine pixel, so lines are drawn with a FWHM of
    ``max(width, 1 fine pixel)``. Returns float32 in ``[0, 1]``.
    """
    canvas = _Canvas(shape, width / pixel_size)
    for path in _crossing_filaments(rng, shape, pixel_size, density, persistence):
        path = _inside(path, shape, margin=4.0 + 4 * bundle_spacing[1] / pixel_size)
        inten = rng.uniform(*intensity)
        if path.shape[0] < 2:
            continue
        copies = 1
        if rng.random() < p_bundle:
            copies = int(rng.integers(bundle_size[0], bundle_size[1] + 1))
        offset = 0.0
        for _c in range(copies):
            canvas.add_path(_inside(_normal_offsets(path, offset), shape), inten)
            offset += rng.uniform(*bundle_spacing) / pixel_size
    return _finalise(canvas.render())


STRUCTURES: dict[str, Callable[..., np.ndarray]] = {
    "microtubules": microtubules,
    "ccps": clathrin_pits,
    "er": er,
    "actin": actin,
}

"""PSF identification, part 1: the PSF model and the simulated training examples.

After Nguyen, Sarron, Escande & Weiss, "Training identification network for blind
deconvolution in microscopy": a network (:class:`dps_stages.nets.psfnet.PSFNet`) learns to
read the PSF ``h`` off a single blurred, noisy patch ``y``, from examples drawn on the fly.

PSF model
---------
``h = |F(P exp(-i 2 pi sum_k theta_k Z_k))|^2`` (:func:`dps_stages.optics.zernike_psf`), unit
sum on a ``k x k`` grid centred at ``k // 2``, with ``P`` the pupil disc of radius ``fc``
(cycles per pixel; ``fc = NA pixel_size / lambda``) and Noll-normalised Zernike polynomials.
:func:`random_psf` draws ``theta_k ~ U[-theta_max, theta_max]`` independently for Noll
``j = 4..11``: defocus (4), astigmatism (5, 6), coma (7, 8), trefoil (9, 10) and primary
spherical aberration (11), i.e. all terms of radial order 2 to 4 except the secondary
astigmatism and quadrafoil of order 4 (12-15). Piston (1) does not change ``h``; tip and tilt
(2, 3) only shift it, and a shift is not identifiable from one image (it moves the object
instead), so they are left out. ``fc ~ U[0.125, 0.25]``: from an OTF cutoff ``2 fc`` at
Nyquist (0.5) down to half of it. Flipping the sign of every even-order term (defocus,
astigmatism, spherical) leaves ``h`` unchanged, which is why the network predicts ``h``
rather than ``theta``.

For speed the pupil is sampled on a ``pad x pad`` grid with ``pad`` the smallest power of two
``>= max(128, 4 k)`` (128 for ``k <= 32``), not :func:`~dps_stages.optics.zernike_psf`'s own
default (``>= 128 / fc``, up to 1024): 1.5 ms instead of 20-120 ms per PSF. The two differ by
at most 0.7 % in L1 (sum ``|h_128 - h_1024|`` over 21 x 21 pixels, ``fc = 0.125``), about
65 dB in PSF PSNR, far below any identification error; training and evaluation use the same
``pad``.

Training examples (:class:`PSFData`)
------------------------------------
Per example, with every random number drawn from the one seeded ``numpy`` generator of the
training loop (so that training is reproducible and resumable):

1. the aberration level ``t ~ U[0, theta_max]`` and ``fc ~ U(fc_range)``, then
   ``h = random_psf(rng, k, t, fc=fc)`` (so the set covers mild to strong aberrations; ``t``
   and ``fc`` are what the two optional parameter channels carry);
2. an object ``x`` on a ``(p + k - 1)^2`` grid, in ``[0, 1]``: with probability
   ``1 - p_natural`` a simulated structure (:data:`dps_stages.simulate.STRUCTURES`:
   microtubules, ccps, er, actin, uniform choice) rendered at a pixel size ``~ U[30, 100]``
   nm, with probability ``p_natural`` a crop of a natural image shipped with scikit-image
   (:data:`NATURAL_IMAGES`, uniform choice; grey, averaged over ``f x f`` blocks with
   ``f ~ U{2, 3, 4}`` (fewer when the image is too small) to make it sharper than its own
   camera blur, a random one of the 8 rotations/flips, scaled to ``[0, 1]`` by its min/max);
3. the blurred image ``b = h * x``, a true convolution (:class:`~dps_stages.physics.Blur`) kept
   where it is 'valid', so the ``p x p`` result has no boundary assumption at all;
4. the camera (:func:`dps_stages.noise.acquisition_chain`, 16 bits):
   ``y = S_s Q_16(g (P_gamma(b) + e_sigma) + o)`` with photon level ``gamma`` log-uniform in
   ``[50, 5000]`` (photo-electrons at ``x = 1``), read noise ``sigma ~ U[0.5, 3]`` e-,
   gain ``g`` log-uniform in ``[0.5, 4]`` ADU/e-, offset ``o ~ U[50, 500]`` ADU (at least
   4 read-noise sd above 0, so that the quantiser does not clip the dark level) and, with
   probability 1/2, salt-and-pepper noise of density ``s`` log-uniform in ``[1e-4, 3e-3]``
   (else none).

The network's input is ``y`` normalised by :func:`normalise_observation` (the same function
:func:`identify` applies to real images, which have no known gain or offset):
``clip((y - lo) / (hi - lo), -1, 2)`` with ``lo`` the 1st percentile of the patch and ``hi``
the maximum of its 3 x 3 median filter. The median filter and the clipping keep hot and
dead pixels from setting or dominating the scale; a percentile 99.9 would be a hot pixel at
``s > 0.1 %``. With ``give_params`` two constant channels follow: ``fc / 0.25`` and
``t / 0.25`` (:data:`FC_SCALE`, :data:`THETA_SCALE`).

The targets are ``(h, x, y_phys)``: ``h`` ``(N, 1, k, k)``, ``x`` the ``p x p`` centre of the
object (aligned with ``y``) and ``y_phys = (y - o) / (g gamma)`` ``(N, 1, p, p)``, the
measurement in the units of ``x``, whose expectation is exactly ``h * x`` (away from
clipping and salt-and-pepper).

"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from ..noise import acquisition_chain
from ..optics import zernike_psf
from ..physics import Blur
from ..simulate import STRUCTURES
from ..simulate.structures_extra import NATURAL_IMAGES, natural_image

__all__ = [
    "FC_SCALE",
    "NATURAL_IMAGES",
    "NOLL",
    "THETA_SCALE",
    "PSFData",
    "PSFSampler",
    "natural_image",
    "normalise_observation",
    "psf_pad",
    "random_psf",
]

log = logging.getLogger("dps.psf_id")

#: Noll indices of the random aberrations: defocus, astigmatism x2, coma x2, trefoil x2,
#: primary spherical.
NOLL: tuple[int, ...] = tuple(range(4, 12))
#: Scales of the two optional parameter channels: ``fc / FC_SCALE``, ``theta_max / THETA_SCALE``.
FC_SCALE = 0.25
THETA_SCALE = 0.25

_VALIDATION_SIZE = 16


# --------------------------------------------------------------------------------------------
# PSFs


def psf_pad(size: int, pad: int | None = None) -> int:
    """Pupil grid of :func:`random_psf`: ``pad``, or the smallest power of 2 >= max(128, 4 k)."""
    if pad is not None:
        return int(pad)
    return int(2 ** np.ceil(np.log2(max(128, 4 * size))))


def random_psf(
    rng: np.random.Generator,
    size: int,
    theta_max: float,
    fc_range: tuple[float, float] = (0.125, 0.25),
    noll: Iterable[int] = NOLL,
    fc: float | None = None,
    *,
    pad: int | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """A random aberrated PSF: ``(h, theta, fc)``.

    ``theta_k ~ U[-theta_max, theta_max]`` (waves, Noll-normalised) for each Noll index in
    ``noll`` (in that order; default 4..11, see the module docstring), ``fc ~ U(fc_range)``
    unless ``fc`` is given (drawn after ``theta``), and ``h = zernike_psf(size, theta, fc)``
    on the pupil grid :func:`psf_pad` ``(size, pad)``: float32 ``(size, size)``,
    non-negative, unit sum, centre at ``size // 2``.
    """
    noll = tuple(int(j) for j in noll)
    theta = rng.uniform(-theta_max, theta_max, len(noll)) if theta_max > 0 else np.zeros(len(noll))
    if fc is None:
        fc = float(rng.uniform(*fc_range))
    coeffs = {j: float(t) for j, t in zip(noll, theta, strict=True)}
    h = zernike_psf(size, coeffs, float(fc), pad=psf_pad(size, pad))
    h = np.clip(h, 0.0, None)
    return (h / h.sum()).astype(np.float32), theta.astype(np.float64), float(fc)


# --------------------------------------------------------------------------------------------
# objects


def _dihedral(a: np.ndarray, k: int, flip: bool) -> np.ndarray:
    a = np.rot90(a, k)
    return np.ascontiguousarray(a[:, ::-1] if flip else a)


def _natural_crop(rng: np.random.Generator, name: str, n: int, zoom: tuple[int, int]) -> np.ndarray:
    img = natural_image(name)
    f = int(rng.integers(zoom[0], zoom[1] + 1))
    f = max(1, min(f, min(img.shape) // n))
    side = n * f
    if min(img.shape) < side:  # smaller than the crop: reflect-pad (only for tiny images)
        img = np.pad(img, [(0, max(0, side - s)) for s in img.shape], mode="reflect")
    y0 = int(rng.integers(img.shape[0] - side + 1))
    x0 = int(rng.integers(img.shape[1] - side + 1))
    crop = img[y0 : y0 + side, x0 : x0 + side].reshape(n, f, n, f).mean(axis=(1, 3))
    crop = _dihedral(crop, int(rng.integers(4)), bool(rng.integers(2)))
    lo, hi = float(crop.min()), float(crop.max())
    return ((crop - lo) / (hi - lo) if hi > lo else np.zeros_like(crop)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# the camera and the input normalisation


def normalise_observation(y: np.ndarray) -> np.ndarray:
    """The network's input: ``clip((y - lo) / (hi - lo), -1, 2)`` over the last two axes.

    ``lo`` = 1st percentile of the patch, ``hi`` = maximum of its 3 x 3 median filter (robust
    to salt-and-pepper noise); ``hi = lo + 1`` for a flat patch. Applied per patch (2D) or per
    image of a stack ``(..., H, W)``; the same at training and identification time.
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim > 2:
        return np.stack([normalise_observation(a) for a in y.reshape(-1, *y.shape[-2:])]).reshape(
            y.shape
        )
    lo = float(np.percentile(y, 1.0))
    hi = float(ndimage.median_filter(y, size=3, mode="reflect").max())
    if not hi > lo:
        hi = lo + 1.0
    return np.clip((y - lo) / (hi - lo), -1.0, 2.0).astype(np.float32)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _param_channels(fc: float, theta_max: float, shape: tuple[int, int]) -> np.ndarray:
    return np.stack(
        [np.full(shape, fc / FC_SCALE, np.float32), np.full(shape, theta_max / THETA_SCALE)]
    ).astype(np.float32)


# --------------------------------------------------------------------------------------------
# the data source


class PSFData:
    """On-the-fly training examples for PSF identification (see the module docstring).

    The data-source interface of :func:`dps_stages.training.train`: :meth:`sampler`,
    :meth:`validation`, :meth:`digest`, :attr:`description` and ``len`` (a nominal size,
    ``length``; the examples are drawn afresh at every step). All randomness of
    :meth:`sampler` comes from the generator it is given; :meth:`validation` is a fixed batch
    drawn from ``default_rng([seed, 99])``.

    Inputs ``(N, C, p, p)`` with ``C = 3 if give_params else 1``; targets
    ``(h (N, 1, k, k), x (N, 1, p, p), y (N, 1, p, p))``.
    """

    def __init__(
        self,
        patch: int = 64,
        psf_size: int = 21,
        theta_max: float = 0.15,
        fc_range: tuple[float, float] = (0.125, 0.25),
        give_params: bool = False,
        *,
        seed: int = 0,
        length: int = 10000,
        noll: Sequence[int] = NOLL,
        structures: Sequence[str] = tuple(STRUCTURES),
        natural: Sequence[str] = NATURAL_IMAGES,
        p_natural: float = 0.5,
        pixel_size: tuple[float, float] = (30.0, 100.0),
        zoom: tuple[int, int] = (2, 4),
        photons: tuple[float, float] = (50.0, 5000.0),
        read_noise: tuple[float, float] = (0.5, 3.0),
        gain: tuple[float, float] = (0.5, 4.0),
        offset: tuple[float, float] = (50.0, 500.0),
        salt_pepper: tuple[float, float] = (1e-4, 3e-3),
        p_salt_pepper: float = 0.5,
        pad: int | None = None,
    ) -> None:
        if psf_size % 2 != 1 or psf_size < 3:
            raise ValueError(f"psf_size must be odd and >= 3; got {psf_size}")
        if patch < psf_size:
            raise ValueError(f"patch ({patch}) must be at least psf_size ({psf_size})")
        for name in structures:
            if name not in STRUCTURES:
                raise KeyError(f"unknown structure {name!r}; known: {', '.join(STRUCTURES)}")
        for name in natural:
            if name not in NATURAL_IMAGES:
                raise KeyError(f"unknown natural image {name!r}")
        if not structures and not natural:
            raise ValueError("no image sources")
        self.settings: dict[str, Any] = {
            "patch": int(patch),
            "psf_size": int(psf_size),
            "theta_max": float(theta_max),
            "fc_range": [float(v) for v in fc_range],
            "give_params": bool(give_params),
            "seed": int(seed),
            "length": int(length),
            "noll": [int(j) for j in noll],
            "structures": list(structures),
            "natural": list(natural),
            "p_natural": float(p_natural) if structures and natural else float(bool(natural)),
            "pixel_size": [float(v) for v in pixel_size],
            "zoom": [int(v) for v in zoom],
            "photons": [float(v) for v in photons],
            "read_noise": [float(v) for v in read_noise],
            "gain": [float(v) for v in gain],
            "offset": [float(v) for v in offset],
            "salt_pepper": [float(v) for v in salt_pepper],
            "p_salt_pepper": float(p_salt_pepper),
            "pad": psf_pad(psf_size, pad),
        }
        self.patch, self.psf_size = int(patch), int(psf_size)
        self.give_params = bool(give_params)
        self._validation: dict[int, tuple[Tensor, tuple[Tensor, ...]]] = {}

    # ---------------------------------------------------------------- interface
    @property
    def channels(self) -> int:
        """Input channels: 3 with the parameter channels, else 1."""
        return 3 if self.give_params else 1

    @property
    def description(self) -> dict[str, Any]:
        return {"kind": "PSF identification (on the fly)"} | dict(self.settings)

    def __len__(self) -> int:
        return self.settings["length"]

    def digest(self) -> str:
        blob = json.dumps(self.settings, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def sampler(self, patch: int, multiple: int, rng: np.random.Generator) -> PSFSampler:
        """Batches of ``patch`` px (rounded down to a multiple of ``multiple``, at least
        ``psf_size``) drawn from ``rng``."""
        return PSFSampler(self, self._round(patch, multiple), rng)

    def validation(self, multiple: int, size: int | None = None) -> tuple[Tensor, tuple]:
        """The fixed validation batch (16 examples of ``patch`` px, the data's own patch size;
        ``size`` is not used: a larger patch would make identification easier)."""
        p = self._round(self.patch, multiple)
        if p not in self._validation:
            rng = np.random.default_rng([self.settings["seed"], 99])
            batch = self.draw(rng, _VALIDATION_SIZE, p)
            self._validation[p] = _tensors(batch)
        return self._validation[p]

    def _round(self, patch: int, multiple: int) -> int:
        p = max(multiple, int(patch) // multiple * multiple)
        if p < self.psf_size:
            p = -(-self.psf_size // multiple) * multiple
        return p

    # ---------------------------------------------------------------- drawing
    def draw_object(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, str]:
        """An ``n x n`` object in ``[0, 1]`` and the name of its source (a few redraws if it
        comes out empty)."""
        s = self.settings
        for _ in range(8):
            if s["natural"] and rng.random() < s["p_natural"]:
                name = s["natural"][int(rng.integers(len(s["natural"])))]
                x = _natural_crop(rng, name, n, tuple(s["zoom"]))
            else:
                name = s["structures"][int(rng.integers(len(s["structures"])))]
                pixel = float(rng.uniform(*s["pixel_size"]))
                x = STRUCTURES[name]((n, n), pixel, rng)
            if x.max() > 0:
                return np.asarray(x, np.float32), name
        return np.asarray(x, np.float32), name

    def draw_camera(self, rng: np.random.Generator) -> dict[str, float]:
        s = self.settings
        sp = 0.0
        if rng.random() < s["p_salt_pepper"]:
            sp = _log_uniform(rng, *s["salt_pepper"])
        return {
            "photons": _log_uniform(rng, *s["photons"]),
            "read_noise": float(rng.uniform(*s["read_noise"])),
            "gain": _log_uniform(rng, *s["gain"]),
            "offset": float(rng.uniform(*s["offset"])),
            "salt_pepper": sp,
        }

    def example(self, rng: np.random.Generator, patch: int | None = None) -> dict[str, Any]:
        """One example: ``input`` (C, p, p), ``h`` (k, k), ``x``, ``y`` (physical units),
        ``clean`` (``h * x``, noise-free), ``y_adu``, ``theta``, ``fc``, ``level`` and
        ``camera``, ``source``. Drawing order: level, PSF, object, camera, noise."""
        s = self.settings
        p = self.patch if patch is None else int(patch)
        k = self.psf_size
        level = float(rng.uniform(0.0, s["theta_max"]))
        h, theta, fc = random_psf(rng, k, level, tuple(s["fc_range"]), s["noll"], pad=s["pad"])
        x_big, source = self.draw_object(rng, p + k - 1)
        clean = np.clip(Blur(h, boundary="valid").A(x_big), 0.0, None).astype(np.float32)
        cam = self.draw_camera(rng)
        chain = acquisition_chain(
            cam["photons"],
            read_noise=cam["read_noise"],
            gain=cam["gain"],
            offset=cam["offset"],
            bits=16,
            salt_pepper=cam["salt_pepper"],
        )
        y_adu = chain(clean, rng)
        y = (y_adu - cam["offset"]) / (cam["gain"] * cam["photons"])
        inp = normalise_observation(y_adu)[None]
        if self.give_params:
            inp = np.concatenate([inp, _param_channels(fc, level, inp.shape[-2:])])
        r = k // 2
        return {
            "input": inp.astype(np.float32),
            "h": h,
            "x": x_big[r : r + p, r : r + p],
            "y": y.astype(np.float32),
            "clean": clean,
            "y_adu": y_adu,
            "theta": theta,
            "fc": fc,
            "level": level,
            "camera": cam,
            "source": source,
        }

    def draw(self, rng: np.random.Generator, n: int, patch: int | None = None) -> dict[str, Any]:
        """``n`` examples stacked: arrays ``input`` (n, C, p, p), ``h`` (n, 1, k, k), ``x``,
        ``y``, ``clean`` (n, 1, p, p), ``theta`` (n, J), ``fc``, ``level`` (n,), and lists
        ``camera``, ``source``."""
        ex = [self.example(rng, patch) for _ in range(n)]
        out: dict[str, Any] = {"input": np.stack([e["input"] for e in ex])}
        for key in ("h", "x", "y", "clean"):
            out[key] = np.stack([e[key] for e in ex])[:, None]
        for key in ("theta", "fc", "level"):
            out[key] = np.asarray([e[key] for e in ex])
        for key in ("camera", "source"):
            out[key] = [e[key] for e in ex]
        return out


def _tensors(batch: dict[str, Any]) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor]]:
    return torch.from_numpy(batch["input"]), tuple(
        torch.from_numpy(np.ascontiguousarray(batch[k], dtype=np.float32)) for k in ("h", "x", "y")
    )


class PSFSampler:
    """Random batches of :class:`PSFData` examples of ``patch`` px, from ``rng`` only."""

    def __init__(self, data: PSFData, patch: int, rng: np.random.Generator) -> None:
        self.data, self.patch, self.rng = data, int(patch), rng

    def batch(self, size: int) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor]]:
        return _tensors(self.data.draw(self.rng, size, self.patch))

"""The camera's noise chain as small composable operators.

Acquisition model of the PSF-identification paper (Nguyen, Sarron, Escande, Weiss, "Training
identification network for blind deconvolution in microscopy"):

``y = S_s Q_q (P_gamma(h * x) + e_sigma)``

with ``P_gamma`` Poisson (photon) noise at photon budget ``gamma``, ``e_sigma`` Gaussian read
noise, ``Q_q`` quantisation on ``q`` bits and ``S_s`` salt-and-pepper (dead and hot pixel)
noise of density ``s``. The camera's gain and offset (baseline) sit between the read noise and
the quantiser, as in an sCMOS/EMCCD camera model (e.g. Huang et al., Nature Methods 10, 653,
2013): ``ADU = round(g (P_gamma(x) + e_sigma) + b)``.

Each operator is a callable ``op(x, rng) -> y`` on float arrays of any shape that returns a new
float32 array and draws its randomness from the ``numpy.random.Generator`` it is given;
:class:`Compose` chains them left to right (like the noise models of ``deepinv.physics``,
which compose), and :func:`acquisition_chain` builds the whole chain.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

__all__ = [
    "Compose",
    "Gain",
    "GaussianNoise",
    "NoiseModel",
    "NoiseOp",
    "Offset",
    "PoissonNoise",
    "Quantise",
    "SaltPepper",
    "acquisition_chain",
]


class NoiseOp(Protocol):
    """A forward operator of the noise chain: ``y = op(x, rng)``."""

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...


@dataclass(frozen=True)
class PoissonNoise:
    """Photon (shot) noise ``P_gamma``.

    ``y ~ Poisson(gamma max(x, 0))``: ``x`` is an intensity in ``[0, 1]`` scaled so that
    ``x = 1`` means ``gamma = photons`` expected photo-electrons; ``y`` are counts
    (photo-electrons), so ``E[y] = Var[y] = gamma x``.
    """

    photons: float

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        lam = self.photons * np.clip(np.asarray(x, dtype=np.float64), 0.0, None)
        return rng.poisson(lam).astype(np.float32)


@dataclass(frozen=True)
class GaussianNoise:
    """Additive Gaussian read noise ``e_sigma``.

    ``y = x + sigma n`` with ``n ~ N(0, 1)``; ``sigma`` in photo-electrons (rms). ``sigma = 0``
    returns ``x`` unchanged and draws nothing.
    """

    sigma: float

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if self.sigma == 0:
            return x.copy()
        return (x + self.sigma * rng.standard_normal(x.shape)).astype(np.float32)


@dataclass(frozen=True)
class Gain:
    """Camera gain: ``y = g x`` with ``g`` in ADU per photo-electron."""

    gain: float

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return (np.asarray(x, dtype=np.float32) * np.float32(self.gain)).astype(np.float32)


@dataclass(frozen=True)
class Offset:
    """Camera baseline: ``y = x + b`` with ``b`` in ADU."""

    offset: float

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return (np.asarray(x, dtype=np.float32) + np.float32(self.offset)).astype(np.float32)


@dataclass(frozen=True)
class Quantise:
    """Analogue-to-digital conversion ``Q_q`` on ``q = bits`` bits.

    ``y = clip(round(x), 0, 2^q - 1)``; the rounding adds (for a signal spread over many
    levels) a uniform error of variance ``1 / 12`` ADU^2.
    """

    bits: int = 16

    @property
    def max_value(self) -> float:
        """Largest code, ``2^bits - 1``."""
        return float(2**self.bits - 1)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        y = np.clip(np.rint(np.asarray(x, dtype=np.float64)), 0.0, self.max_value)
        return y.astype(np.float32)


@dataclass(frozen=True)
class SaltPepper:
    """Salt-and-pepper noise ``S_s`` (dead and hot pixels).

    Each pixel is independently hit with probability ``p``; a hit pixel is set to ``low``
    (dead, 0) or ``high`` (hot, saturated at ``2^bits - 1``) with equal probability, and
    every other pixel is left as it is.
    """

    p: float
    bits: int = 16
    low: float = 0.0

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        y = np.array(x, dtype=np.float32, copy=True)
        if self.p <= 0:
            return y
        u = rng.random(y.shape)
        y[u < self.p / 2] = self.low
        y[(u >= self.p / 2) & (u < self.p)] = float(2**self.bits - 1)
        return y


class Compose:
    """Operators applied left to right: ``Compose(a, b, c)(x) = c(b(a(x)))``.

    Every operator receives the same generator, so the chain is reproducible from one seed.
    """

    def __init__(self, *ops: NoiseOp) -> None:
        self.ops: tuple[NoiseOp, ...] = tuple(ops)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        y = np.asarray(x, dtype=np.float32)
        for op in self.ops:
            y = op(y, rng)
        return np.asarray(y, dtype=np.float32)

    def __iter__(self) -> Iterator[NoiseOp]:
        return iter(self.ops)

    def __len__(self) -> int:
        return len(self.ops)

    def __repr__(self) -> str:
        return f"Compose({', '.join(repr(op) for op in self.ops)})"


def acquisition_chain(
    photons: float,
    read_noise: float = 1.5,
    gain: float = 1.0,
    offset: float = 100.0,
    bits: int | None = 16,
    salt_pepper: float = 0.0,
) -> Compose:
    """The full camera model ``y = S_s Q_q (g (P_gamma(x) + e_sigma) + b)``.

    ``Compose(PoissonNoise(photons), GaussianNoise(read_noise), Gain(gain), Offset(offset),
    Quantise(bits), SaltPepper(salt_pepper, bits))``; the quantiser is left out when ``bits``
    is None and the salt-and-pepper step when ``salt_pepper == 0``. For an input ``x`` in
    ``[0, 1]`` (1 = ``photons`` expected photo-electrons) the output is in ADU with
    ``E[y] = g gamma x + b`` and ``Var[y] = g^2 (gamma x + sigma^2) + 1/12`` (away from
    clipping).
    """
    ops: list[NoiseOp] = [
        PoissonNoise(photons),
        GaussianNoise(read_noise),
        Gain(gain),
        Offset(offset),
    ]
    if bits is not None:
        ops.append(Quantise(bits))
    if salt_pepper > 0:
        ops.append(SaltPepper(salt_pepper, bits=16 if bits is None else bits))
    return Compose(*ops)


@dataclass(frozen=True)
class NoiseModel:
    """The calibrated camera's noise variance in ADU, the inverse view of
    :func:`acquisition_chain`: ``Var[y] = g (E y - b) + sigma_r^2``.

    ``gain`` ``g`` (ADU per photo-electron), ``offset`` ``b`` (ADU), ``read_noise``
    ``sigma_r`` (ADU, the quantisation's variance included by :meth:`from_calibration`: the
    calibration's ``quantisation``, else ``1/12``, the rounding to integer ADU). Where the
    calibration determined the slope but not the offset (no dark tiles), ``offset`` is NaN
    and ``intercept`` ``v_0`` carries the line ``Var[y] = g E y + v_0``
    (:mod:`dps_stages.calibrate.camera`).
    """

    gain: float
    offset: float
    read_noise: float
    intercept: float = float("nan")

    def variance(self, y: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
        """Per-pixel variance estimated from the noisy frames themselves (ADU^2):
        ``max(g (y - b) + sigma_r^2, sigma_r^2)``, or ``max(g y + v_0, g^2 / 100)`` without an
        offset."""
        y = np.asarray(y, dtype=np.float64)
        if np.isfinite(self.offset):
            r2 = self.read_noise**2
            v = np.maximum(self.gain * (y - self.offset) + r2, r2)
        else:
            v = np.maximum(self.gain * y + self.intercept, 0.01 * self.gain**2)
        return v.astype(dtype)

    @classmethod
    def from_calibration(cls, calib: Any) -> NoiseModel:
        """From a :class:`dps_stages.calibrate.Calibration`, its ``camera``
        (:class:`~dps_stages.calibrate.CameraCalibration`: ``read_noise`` in electrons), a
        calibration JSON's record or its ``camera`` mapping (``gain``, ``offset``,
        ``read_noise`` in electrons or ``read_noise_adu``, ``intercept``), or a
        :class:`NoiseModel`. Raises ValueError without a positive gain and either an offset
        with a read noise or an intercept."""
        if isinstance(calib, NoiseModel):
            return calib
        cam = getattr(calib, "camera", calib)
        if isinstance(cam, Mapping) and isinstance(cam.get("camera"), Mapping):
            cam = cam["camera"]

        def get(key: str) -> float:
            v = cam.get(key) if isinstance(cam, Mapping) else getattr(cam, key, None)
            return float("nan") if v is None else float(v)

        g, b, v0 = get("gain"), get("offset"), get("intercept")
        q = get("quantisation")  # 1/12 for integer frames (the calibration records it)
        sr = get("read_noise_adu")
        if not np.isfinite(sr):
            sr = float(np.sqrt((g * get("read_noise")) ** 2 + (q if np.isfinite(q) else 1 / 12)))
        if not (np.isfinite(b) and np.isfinite(sr)):
            b = sr = float("nan")
        if not (g > 0 and (np.isfinite(b) or np.isfinite(v0))):
            raise ValueError(
                f"calibration without a usable camera model: gain {g}, offset {b}, "
                f"read noise {sr} ADU, intercept {v0}"
            )
        return cls(gain=g, offset=b, read_noise=sr, intercept=v0)

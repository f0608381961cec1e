"""2D-SIM illumination: nine sinusoidal patterns and the SIM forward model.

Frame ``(a, p)`` (angle-major, index ``i = 3 a + p``, 3 angles x 3 phases) of a 2D-SIM
acquisition sees the object ``x`` under the pattern (Gustafsson, J. Microsc. 198, 82, 2000;
Heintzmann & Cremer, Proc. SPIE 3568, 185, 1999)

``p_ap(r) = 1 + m_a cos(2 pi k_a . r + phi_ap)``

with ``k_a = (ky, kx)`` in cycles per camera pixel and ``r = (y, x)`` in camera pixels from
the centre of camera pixel ``(0, 0)``; on a grid ``f`` times finer than the camera, pixel
``i`` sits at ``r = (i + 1/2) / f - 1/2``. The full forward model is

``y_ap = S_f[h * (p_ap x)]``

(:class:`SIMForward`: illumination, then :class:`~dps_stages.physics.blur.Blur`, then
:class:`~dps_stages.physics.base.Binning`). For three equally spaced phases the patterns of an
angle average to 1, so the mean of its three frames is the widefield image ``S_f[h * x]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Binning, LinearOperator, is_torch
from .blur import Blur

__all__ = ["PatternGeometry", "SIMForward", "SIMIllumination", "camera_coordinates"]


def camera_coordinates(n: int, factor: int) -> np.ndarray:
    """Camera-pixel coordinate of the centres of ``n`` pixels ``factor`` times finer:
    ``(i + 0.5) / f - 0.5`` (float64)."""
    return (np.arange(n) + 0.5) / factor - 0.5


class PatternGeometry:
    """Derived quantities of wave vectors ``k`` ``(3, 2)`` (shared by the parameter holders
    :class:`dps_stages.sim.SIMParameters` and :class:`dps_stages.simulate.SIMPattern`)."""

    k: np.ndarray
    phases: np.ndarray
    modulation: Any

    @property
    def angles(self) -> np.ndarray:
        """Pattern angles ``atan2(ky, kx)`` in rad, shape (3,)."""
        return np.arctan2(self.k[:, 0], self.k[:, 1])

    @property
    def frequencies(self) -> np.ndarray:
        """``|k_a|`` in cycles per camera pixel, shape (3,)."""
        return np.hypot(self.k[:, 0], self.k[:, 1])

    def illumination(self, factor: int = 1) -> SIMIllumination:
        """The :class:`SIMIllumination` of these parameters on a grid ``factor`` x finer."""
        return SIMIllumination(self.k, self.phases, self.modulation, factor=factor)


class SIMIllumination(LinearOperator):
    """``x -> (p_i x)_{i < 9}``: the object under the nine patterns (module docstring).

    Parameters
    ----------
    k
        ``(3, 2)`` wave vectors ``(ky, kx)`` in cycles per camera pixel.
    phases
        ``(3, 3)`` phases ``phi_ap`` in rad, ``[angle, phase]``.
    modulation
        Modulation depth ``m``, one for all angles or ``(3,)``.
    factor
        The object grid is this many times finer than the camera.

    ``A`` maps ``(..., ny, nx)`` to ``(..., 9, ny, nx)``; ``A^T y = sum_i p_i y_i``. numpy and
    torch (differentiable in ``x``; the patterns are constants).
    """

    def __init__(self, k: Any, phases: Any, modulation: Any, *, factor: int = 1) -> None:
        self.k = np.asarray(k, dtype=np.float64).reshape(3, 2)
        self.phases = np.asarray(phases, dtype=np.float64).reshape(3, 3)
        self.modulation = np.broadcast_to(np.asarray(modulation, dtype=np.float64), (3,))
        self.factor = int(factor)
        self._cache: dict[Any, Any] = {}

    def patterns(self, shape: tuple[int, int]) -> np.ndarray:
        """``(9, ny, nx)`` float64 patterns ``1 + m_a cos(2 pi k_a . r + phi_ap)``."""
        key = tuple(int(s) for s in shape)
        if key not in self._cache:
            yy = camera_coordinates(key[0], self.factor)[:, None]
            xx = camera_coordinates(key[1], self.factor)[None, :]
            out = np.empty((9,) + key, dtype=np.float64)
            for a in range(3):
                ky, kx = self.k[a]
                arg = 2 * np.pi * (ky * yy + kx * xx)
                for p in range(3):
                    out[3 * a + p] = 1.0 + self.modulation[a] * np.cos(arg + self.phases[a, p])
            out.setflags(write=False)
            self._cache[key] = out
        return self._cache[key]

    def _like(self, x: Any) -> Any:
        """The patterns in ``x``'s type, dtype and device."""
        pats = self.patterns(tuple(x.shape[-2:]))
        if is_torch(x):
            import torch

            key = (tuple(x.shape[-2:]), str(x.device), x.dtype)
            if key not in self._cache:
                self._cache[key] = torch.tensor(np.array(pats), dtype=x.dtype, device=x.device)
            return self._cache[key]
        return pats.astype(np.result_type(x.dtype, np.float32))

    def A(self, x: Any) -> Any:  # noqa: N802
        return x[..., None, :, :] * self._like(x)

    def A_adjoint(self, y: Any) -> Any:  # noqa: N802
        return (y * self._like(y)).sum(-3) if is_torch(y) else (y * self._like(y)).sum(axis=-3)


class SIMForward(LinearOperator):
    """``y_i = S_f[h * (p_i x)]``: illumination, blur, binning (module docstring).

    ``blur`` is a :class:`~dps_stages.physics.blur.Blur` on the object grid (periodic for the
    simulation); ``A`` maps ``(..., f ny, f nx)`` to ``(..., 9, ny, nx)``.
    """

    def __init__(self, illumination: SIMIllumination, blur: Blur) -> None:
        self.illumination = illumination
        self.blur = blur
        self.binning = Binning(illumination.factor)

    def A(self, x: Any) -> Any:  # noqa: N802
        return self.binning.A(self.blur.A(self.illumination.A(x)))

    def A_adjoint(self, y: Any) -> Any:  # noqa: N802
        return self.illumination.A_adjoint(self.blur.A_adjoint(self.binning.A_adjoint(y)))

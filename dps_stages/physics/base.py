"""Linear operators ``A`` with their adjoints ``A^T``, composable (after deepinv's ``physics``).

An operator maps numpy arrays to numpy arrays and torch tensors to torch tensors; ``A * B``
is the composition ``x -> A(B(x))`` with adjoint ``B^T(A^T(y))``. The adjoint satisfies
``<A x, y> = <x, A^T y>`` (tests/test_physics.py checks it for every operator).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["Binning", "Composed", "LinearOperator", "is_torch"]


def is_torch(x: Any) -> bool:
    """Whether ``x`` is a torch tensor (without importing torch)."""
    return type(x).__module__.startswith("torch")


class LinearOperator:
    """Base class: subclasses define :meth:`A` and :meth:`A_adjoint`."""

    def A(self, x: Any) -> Any:  # noqa: N802
        raise NotImplementedError

    def A_adjoint(self, y: Any) -> Any:  # noqa: N802
        raise NotImplementedError

    def __call__(self, x: Any) -> Any:
        return self.A(x)

    def __mul__(self, other: LinearOperator) -> Composed:
        return Composed(self, other)


class Composed(LinearOperator):
    """``(outer * inner) x = outer(inner(x))``; adjoint ``inner^T(outer^T(y))``."""

    def __init__(self, outer: LinearOperator, inner: LinearOperator) -> None:
        self.outer, self.inner = outer, inner

    def A(self, x: Any) -> Any:  # noqa: N802
        return self.outer.A(self.inner.A(x))

    def A_adjoint(self, y: Any) -> Any:  # noqa: N802
        return self.inner.A_adjoint(self.outer.A_adjoint(y))


class Binning(LinearOperator):
    """Camera binning ``S_f``: the mean over ``f x f`` blocks of the last two axes.

    ``(S_f x)[..., i, j] = f^-2 sum_{0 <= u, v < f} x[..., f i + u, f j + v]`` (a camera pixel
    integrating ``f x f`` pixels of a finer grid, as a mean so that a constant is kept);
    ``S_f^T y`` replicates each value over its block, divided by ``f^2``. numpy results are
    float32 (the mean taken in float64); torch uses ``avg_pool2d`` (differentiable).
    """

    def __init__(self, factor: int) -> None:
        if int(factor) < 1:
            raise ValueError(f"binning factor must be >= 1; got {factor}")
        self.factor = int(factor)

    def A(self, x: Any) -> Any:  # noqa: N802
        f = self.factor
        ny, nx = x.shape[-2:]
        if ny % f or nx % f:
            raise ValueError(f"shape {tuple(x.shape[-2:])} is not a multiple of {f}")
        if is_torch(x):
            import torch.nn.functional as F

            if f == 1:
                return x
            flat = x.reshape(-1, 1, ny, nx)
            out = F.avg_pool2d(flat, kernel_size=f)
            return out.reshape(*x.shape[:-2], ny // f, nx // f)
        x = np.asarray(x)
        if f == 1:
            return x.astype(np.float32, copy=True)
        y = x.reshape(*x.shape[:-2], ny // f, f, nx // f, f)
        return y.mean(axis=(-3, -1), dtype=np.float64).astype(np.float32)

    def A_adjoint(self, y: Any) -> Any:  # noqa: N802
        f = self.factor
        if is_torch(y):
            return y.repeat_interleave(f, dim=-2).repeat_interleave(f, dim=-1) / (f * f)
        return np.repeat(np.repeat(y, f, axis=-2), f, axis=-1) / np.float32(f * f)

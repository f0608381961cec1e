"""Count the two-dimensional Fourier transforms a function makes (``python`` helper of the
speed benchmarks and of ``tests/test_sim.py``).

:func:`counting_ffts` wraps the transforms of ``scipy.fft`` and ``numpy.fft`` (and the names
``sfft``/``np.fft`` that modules imported) and counts, per call site, the 2-D transforms they
compute: a call on an array (..., y, x) over its last two axes counts one per leading element
(a batched call of 9 frames is 9 transforms), a 1-D call counts 1 / its length of a 2-D one.
"""

from __future__ import annotations

import contextlib
import inspect
import math
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.fft

NAMES_2D = ("fft2", "ifft2", "rfft2", "irfft2", "fftn", "ifftn", "rfftn", "irfftn")
NAMES_1D = ("fft", "ifft", "rfft", "irfft")


def _transforms(name: str, x: Any, kw: dict[str, Any], args: tuple) -> float:
    a = np.asarray(x)
    if name in NAMES_1D:
        n = a.shape[kw.get("axis", -1)] if a.ndim else 1
        return a.size / max(n, 1) / max(n, 1)  # rows of a square image: 1/n of a 2-D FFT
    axes = kw.get("axes", (-2, -1))
    if axes is None:
        axes = tuple(range(a.ndim))
    lead = [d for i, d in enumerate(a.shape) if i not in {ax % a.ndim for ax in axes}]
    return float(math.prod(lead)) if len(axes) >= 2 else 0.0


@contextlib.contextmanager
def counting_ffts() -> Iterator[Counter]:
    """Count 2-D transforms by call site ("module:function:line") while the block runs."""
    counts: Counter = Counter()
    saved: list[tuple[Any, str, Any]] = []

    def wrap(mod: Any, name: str) -> None:
        fn = getattr(mod, name)
        if getattr(fn, "_counting", False):
            return

        def counted(x, *args, **kw):
            caller = inspect.stack()[1]
            site = f"{caller.frame.f_globals.get('__name__')}:{caller.function}:{caller.lineno}"
            counts[site] += _transforms(name, x, kw, args)
            return fn(x, *args, **kw)

        counted._counting = True  # type: ignore[attr-defined]
        saved.append((mod, name, fn))
        setattr(mod, name, counted)

    for mod in (scipy.fft, np.fft):
        for name in NAMES_2D + NAMES_1D:
            if hasattr(mod, name):
                wrap(mod, name)
    try:
        yield counts
    finally:
        for mod, name, fn in reversed(saved):
            setattr(mod, name, fn)

"""Shared pieces of the self-supervised adaptation: stacks, the loop (the camera's noise
model, :class:`dps_stages.noise.NoiseModel`, is re-exported here)."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from dps_stages.calibrate._util import raw_stack
from dps_stages.inference import percentile_range
from dps_stages.noise import NoiseModel

__all__ = [
    "NoiseModel",
    "as_stack",
    "fine_tune",
    "normalised_stack",
    "patch_side",
    "tuning_copy",
]


def as_stack(frames: Any) -> np.ndarray:
    """Raw 2D-SIM frames as a float32 ``(n, 9, y, x)`` stack (``(9, y, x)`` is ``n = 1``)."""
    return raw_stack(frames, np.float32)


def tuning_copy(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Seed torch's generator with ``seed`` and return a CPU float32 copy of ``model`` to tune
    (the trained model is left untouched)."""
    torch.manual_seed(seed)
    return copy.deepcopy(model).cpu().float()


def patch_side(model: torch.nn.Module, shape: tuple[int, ...], patch: int) -> int:
    """The training patch side: ``patch`` clipped to the smaller of the last two sizes of
    ``shape``, rounded down to a multiple ``m`` of the network's ``multiple``, at least ``m``."""
    m = int(getattr(model, "multiple", 1))
    return max(m, min(int(patch), min(shape[-2:])) // m * m)


def normalised_stack(stack: np.ndarray) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Each acquisition ``(9, y, x)`` normalised as the networks see it,
    ``(y - p_lo) / (p_hi - p_lo)`` with its own 0.1 / 99.9 percentiles
    (:func:`dps_stages.inference.percentile_range`); returns the stack and the ranges."""
    out = np.empty_like(stack, dtype=np.float32)
    ranges = []
    for j in range(stack.shape[0]):
        lo, hi = percentile_range(stack[j])
        out[j] = (stack[j] - lo) / (hi - lo)
        ranges.append((lo, hi))
    return out, ranges


def fine_tune(
    model: torch.nn.Module,
    step_loss: Callable[[int], torch.Tensor],
    evaluate: Callable[[], float],
    *,
    steps: int,
    lr: float,
    eval_every: int,
    desc: str,
    progress: bool,
    stop: Callable[[float], bool] | None = None,
) -> dict[str, Any]:
    """Adam on ``step_loss(step)`` for ``steps`` steps (cosine-decayed learning rate), the
    fixed evaluation loss ``evaluate()`` before, every ``eval_every`` steps and at the end;
    training ends early at the first evaluation where ``stop(eval_loss)`` holds
    (``history["stopped_at"]``, else None). Leaves the model in eval mode; returns the
    history."""
    from tqdm.auto import tqdm

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1.0 + np.cos(np.pi * min(s, steps) / max(steps, 1)))
    )
    hist: dict[str, Any] = {"step": [], "loss": [], "eval_step": [0], "eval_loss": []}
    hist["stopped_at"] = None
    t0 = time.perf_counter()
    model.eval()
    hist["eval_loss"].append(evaluate())
    if stop is not None and stop(hist["eval_loss"][-1]):
        hist["stopped_at"] = 0
        steps = 0
    bar = tqdm(range(steps), desc=desc, disable=not progress, unit="step")
    for s in bar:
        model.train()
        loss = step_loss(s)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        hist["step"].append(s + 1)
        hist["loss"].append(float(loss.detach()))
        if progress:
            bar.set_postfix(loss=f"{hist['loss'][-1]:.4g}")
        if (s + 1) % eval_every == 0 or s + 1 == steps:
            model.eval()
            hist["eval_step"].append(s + 1)
            hist["eval_loss"].append(evaluate())
            if stop is not None and s + 1 < steps and stop(hist["eval_loss"][-1]):
                hist["stopped_at"] = s + 1
                break
    bar.close()
    model.eval()
    hist["seconds"] = time.perf_counter() - t0
    return hist

"""Denoiser adaptation on the user's own raw frames by Recorrupted-to-Recorrupted.

Recorrupted-to-Recorrupted (R2R; Pang, Zhan, Quan & Ji, "Recorrupted-to-Recorrupted:
Unsupervised Deep Learning for Image Denoising", CVPR 2021). For a noisy image ``y = x + n``,
``n ~ N(0, Sigma)``, and ``z ~ N(0, Sigma)`` drawn afresh, the pair

``y_hat = y + D^T z``,  ``y_tilde = y - D^-1 z``

(``D`` invertible) has noises ``n + D^T z`` and ``n - D^-1 z`` with cross-covariance
``Sigma - D^T Sigma D^-T``; with ``D = alpha I`` it vanishes, the two noises are independent
(jointly Gaussian) and

``E ||f(y_hat) - y_tilde||^2 = E ||f(y_hat) - x||^2 + tr Cov(y_tilde)``,

so minimising the left side over ``f`` is supervised training for the input noise
``(1 + alpha^2) Sigma``, with no clean image. Here ``D = alpha I``:
``y_hat = y + alpha z``, ``y_tilde = y - z / alpha``.

Noise model (Poisson-Gaussian camera, ADU; :class:`~dps_stages.adapt._common.NoiseModel`):
``Sigma = diag(g (E y - b) + sigma_r^2)``, estimated from the noisy frame itself as
``max(g (y - b) + sigma_r^2, sigma_r^2)`` (the signal-dependent case of the paper, which
estimates the noise level function from ``y``). For Poisson noise the two noises are
uncorrelated rather than independent, which keeps the loss unbiased to second order.

Units: the network sees ``y_n = (y - p_lo) / (p_hi - p_lo)`` (per acquisition, percentiles
0.1 / 99.9, as at inference), a linear map, so ``z_n = z / (p_hi - p_lo)`` with variance
``Sigma / (p_hi - p_lo)^2`` and the pair is built on ``y_n``.

Inference: ``f(y)`` (the plain network), or the paper's Monte-Carlo estimate
``mean_k f(y + alpha z_k)`` over ``K`` recorruptions (:func:`denoise_frames`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dps_stages.inference import percentile_range, run_block

from ._common import NoiseModel, as_stack, fine_tune, normalised_stack, patch_side, tuning_copy

__all__ = ["DENOISE_STEPS", "adapt_denoiser", "denoise_frames", "r2r_pair"]

#: default steps of :func:`adapt_denoiser`: batch 4 x 64 x 64, 71 ms a step for the CPU-scale
#: DenoiseNet on one torch thread of a shared 2-core machine (benchmarks/bench_adapt.py; up to
#: 0.14 s a step under heavier load), so 2-3.5 minutes whatever the stack size
DENOISE_STEPS = 1500


def r2r_pair(
    y: torch.Tensor, variance: torch.Tensor, alpha: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(y + alpha z, y - z / alpha)`` with ``z ~ N(0, diag(variance))`` (module docstring)."""
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0; got {alpha}")
    z = torch.randn(y.shape, generator=generator, dtype=y.dtype) * variance.sqrt()
    return y + alpha * z, y - z / alpha


def _dihedral(a: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 rotations / flips of the last two axes (``k`` in 0..7)."""
    a = np.rot90(a, k % 4, axes=(-2, -1))
    return a[..., ::-1] if k >= 4 else a


class _Patches:
    """Seeded random patches ``(B, 9, P, P)`` of the normalised frames and their variance."""

    def __init__(self, y: np.ndarray, var: np.ndarray, patch: int, rng: np.random.Generator):
        self.y, self.var, self.patch, self.rng = y, var, patch, rng

    def draw(self, batch: int, flips: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, ny, nx = self.y.shape
        p = self.patch
        ys, vs = [], []
        for _ in range(batch):
            j = int(self.rng.integers(n))
            oy = int(self.rng.integers(ny - p + 1))
            ox = int(self.rng.integers(nx - p + 1))
            k = int(self.rng.integers(8)) if flips else 0
            ys.append(_dihedral(self.y[j, :, oy : oy + p, ox : ox + p], k))
            vs.append(_dihedral(self.var[j, :, oy : oy + p, ox : ox + p], k))
        return torch.from_numpy(np.stack(ys).copy()), torch.from_numpy(np.stack(vs).copy())


def _prepare(frames: Any, calib: Any) -> tuple[np.ndarray, np.ndarray, list[tuple[float, float]]]:
    stack = as_stack(frames)
    noise = NoiseModel.from_calibration(calib)
    y_n, ranges = normalised_stack(stack)
    var_n = np.empty_like(y_n)
    for j, (lo, hi) in enumerate(ranges):
        var_n[j] = noise.variance(stack[j]) / np.float32((hi - lo) ** 2)
    return y_n, var_n, ranges


def adapt_denoiser(
    model: torch.nn.Module,
    frames: Any,
    calib: Any,
    *,
    steps: int = DENOISE_STEPS,
    seed: int = 0,
    alpha: float = 0.5,
    patch: int = 64,
    batch: int = 4,
    lr: float = 2e-4,
    eval_patches: int = 8,
    eval_every: int = 50,
    progress: bool = True,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Fine-tune a denoiser (9 frames as channels) on the user's own noisy raw frames by R2R.

    Parameters
    ----------
    model
        A trained :class:`dps_stages.nets.DenoiseNet` (left untouched: a copy is tuned).
    frames
        ``(9, y, x)`` or ``(n, 9, y, x)`` raw frames in ADU (offset included).
    calib
        The camera: a :class:`dps_stages.calibrate.Calibration`, its ``camera``, a mapping or
        a :class:`NoiseModel` (:meth:`NoiseModel.from_calibration`).
    steps, seed, alpha, patch, batch, lr
        Adam steps (cosine-decayed ``lr``), seed of every draw (patches, flips,
        recorruptions, in that order from one generator), ``alpha`` of ``D = alpha I``,
        square patch side (camera pixels; clipped to the image, a multiple of the network's),
        patches per step.
    eval_patches, eval_every
        A fixed set of recorrupted patches (seed ``seed + 1``) on which the R2R loss is
        measured before, every ``eval_every`` steps and after: ``history["eval_loss"]``.

    Returns
    -------
    (model, history)
        The tuned copy (eval mode, CPU) and ``{"step", "loss", "eval_step", "eval_loss",
        "seconds", ...}``.
    """
    model = tuning_copy(model, seed)
    y_n, var_n, _ = _prepare(frames, calib)
    patch = patch_side(model, y_n.shape, patch)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(int(seed))
    sampler = _Patches(y_n, var_n, patch, rng)
    ev_rng = np.random.default_rng(seed + 1)
    ev_gen = torch.Generator().manual_seed(int(seed) + 1)
    ev_y, ev_v = _Patches(y_n, var_n, patch, ev_rng).draw(eval_patches)
    ev_in, ev_tgt = r2r_pair(ev_y, ev_v, alpha, ev_gen)

    def step_loss(_: int) -> torch.Tensor:
        yb, vb = sampler.draw(batch)
        inp, tgt = r2r_pair(yb, vb, alpha, gen)
        return torch.mean((model(inp) - tgt) ** 2)

    @torch.no_grad()
    def evaluate() -> float:
        return float(torch.mean((model(ev_in) - ev_tgt) ** 2))

    hist = fine_tune(
        model, step_loss, evaluate, steps=int(steps), lr=lr, eval_every=eval_every,
        desc="adapt denoiser (R2R)", progress=progress,
    )  # fmt: skip
    hist.update(
        {"method": "r2r", "alpha": alpha, "patch": patch, "batch": batch, "lr": lr, "seed": seed}
    )
    return model, hist


@torch.no_grad()
def denoise_frames(
    model: torch.nn.Module,
    frames: Any,
    *,
    recorruptions: int = 0,
    calib: Any = None,
    alpha: float = 0.5,
    seed: int = 0,
) -> np.ndarray:
    """The denoiser on each acquisition, back in the input's units, ``(n, 9, y, x)``.

    ``recorruptions = 0``: ``f(y)``; ``K > 0``: R2R's Monte-Carlo estimate
    ``mean_k f(y + alpha z_k)`` (needs ``calib`` for ``Sigma``).
    """
    stack = as_stack(frames)
    out = np.empty_like(stack)
    noise = NoiseModel.from_calibration(calib) if recorruptions > 0 else None
    gen = torch.Generator().manual_seed(int(seed))
    for j in range(stack.shape[0]):
        lo, hi = percentile_range(stack[j])
        y = (stack[j] - lo) / np.float32(hi - lo)
        if noise is None:
            pred = run_block(model, y)
        else:
            v = torch.from_numpy(noise.variance(stack[j]) / np.float32((hi - lo) ** 2))
            yt = torch.from_numpy(y)
            pred = np.zeros_like(y)
            for _ in range(int(recorruptions)):
                inp, _ = r2r_pair(yt, v, alpha, gen)
                pred += run_block(model, inp.numpy()) / recorruptions
        out[j] = pred * (hi - lo) + lo
    return out

"""SIM-network adaptation on the user's own raw frames by physics consistency.

The SIM network's 2x output ``x_hat`` (SIMNet or OIDN), seen through the microscope, must
reproduce the frames it was computed from (the self-supervised deconvolution loss of
ZS-DeconvNet, Qiao et al., Nat. Commun. 15, 4180, 2024, with the SIM forward model of
Gustafsson, J. Microsc. 198, 82, 2000, in place of a plain blur):

``L = sum_i mean | c_i A_i(x_hat) + d_i - y_i | + beta R_Hessian(x_hat) / mean|x_hat|``

with ``A_i(x) = S_2[h * (p_i x)]`` (:class:`dps_stages.physics.SIMForward` in torch: the
pattern ``p_i = 1 + m_a cos(2 pi k_a . r + phi_ap)`` on the 2x grid, the calibrated OTF
``O_ideal(q) a^q`` of :func:`dps_stages.simulate.microscope.microscope_otf`, binning ``S_2``
to the camera grid), the patterns estimated from the data (:func:`dps_stages.sim.
estimate_parameters` or the calibration), ``R_Hessian`` of :func:`dps_stages.losses.
hessian_penalty`, and ``("l2")`` the squared residual instead of its absolute value.

Scaling. The network sees percentile-normalised frames and returns an image normalised to
its training target; the frames ``y_i`` (the same normalised frames, denoised or
background-removed upstream) are in other units with a background. Each frame's scale
``c_i`` and offset ``d_i`` are fitted in closed form inside the loss (least squares over the
patch, ``c_i = cov(A_i, y_i) / var(A_i)``, ``d_i = mean(y_i) - c_i mean(A_i)``), so the loss
is invariant to the output's scale; the regulariser is divided by ``mean|x_hat|`` to stay
invariant too (otherwise it would shrink the output while ``c_i`` grew). ``d_i`` takes the
frames' unmodulated background (camera offset, haze); an offset of ``x_hat`` is not free:
it is uniform fluorescence, modulated by the patterns like the rest of the object.

Details. A patch at camera offset ``o`` sees the pattern with phases ``phi + 2 pi k . o``.
The 2x pixel stands for the object's mean over its area, so its pattern is the pattern's
mean over that square, a modulation ``m sinc(k_y / 2) sinc(k_x / 2)`` (``np.sinc``, ``k`` in
cycles per camera pixel; ``pixel_integration``). The blur is periodic on the patch; a
``margin`` of camera pixels (about one PSF diameter) at each side is left out of the loss,
which removes the wrap-around and the network's own border effects.

Stopping (discrepancy principle, Morozov 1966). The frames are noisy: a network that keeps
lowering the data term ends up reproducing their noise through the operator (on the real
level-0.3 frames 2000 steps scored lower than 150). With a calibrated camera the expected
data term of the noise alone is known, ``E|n| = sqrt(2 / pi) sigma`` per pixel (``l1``; ``l2``:
``sigma^2``), ``sigma^2 = max(g (y - b) + sigma_r^2, sigma_r^2) / (p_hi - p_lo)^2`` in the
normalised units, averaged over the evaluation patches; training stops at the first
evaluation whose data term is at or below ``noise_stop`` times it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from dps_stages.inference import percentile_range
from dps_stages.losses import hessian_penalty
from dps_stages.optics import Optics
from dps_stages.physics import Blur, SIMForward, SIMIllumination
from dps_stages.sim import SIMParameters, estimate_parameters
from dps_stages.simulate.microscope import microscope_otf

from ._common import NoiseModel, as_stack, fine_tune, normalised_stack, patch_side, tuning_copy

__all__ = ["SIM_STEPS", "SIMConsistency", "adapt_sim", "otf_attenuation_of"]

#: default steps of :func:`adapt_sim`: batch 2 x 64 x 64 camera pixels, 72 ms a step for the
#: CPU-scale SIMNet on one torch thread of a shared 2-core machine (benchmarks/bench_adapt.py),
#: about 20-60 s. Chosen by quality, not time: on the real TIRF-SIM GT frames SSIM against the
#: reference was 0.70 / 0.64 / 0.46 / 0.43 after 150 / 300 / 600 / 2000 steps (level 1: 0.41 /
#: 0.48 / 0.49 / 0.49); longer fits the forward model's errors (benchmarks/RESULTS.md, "Adaptation")
SIM_STEPS = 300


def otf_attenuation_of(calib: Any, optics: Optics) -> float:
    """The OTF attenuation ``a`` to use: a number as given, ``None`` -> 1 (ideal), or a
    :class:`dps_stages.calibrate.Calibration` through
    :func:`~dps_stages.calibrate.calibrated_sim_settings` (1 when not determined)."""
    if calib is None:
        return 1.0
    if isinstance(calib, (int, float, np.floating)):
        return float(calib)
    from dps_stages.calibrate import calibrated_sim_settings

    return float(calibrated_sim_settings(calib, optics)["otf_decay"])


class SIMConsistency:
    """The physics-consistency loss of the module docstring for one acquisition.

    Parameters
    ----------
    params
        Illumination (:class:`dps_stages.sim.SIMParameters` or any pattern geometry).
    optics
        Wavelength, NA, camera pixel size.
    otf_attenuation
        ``a`` of ``O_ideal(q) a^q``.
    factor
        Output grid over camera grid (2 for SIM networks).
    pixel_integration
        Average the pattern over each output pixel (module docstring).
    margin
        Camera pixels left out at each side; ``None``: ``ceil(lambda / (NA pixel))``.
    norm, beta
        ``"l1"`` or ``"l2"`` residual; weight of the Hessian regulariser.
    """

    def __init__(
        self,
        params: Any,
        optics: Optics,
        *,
        otf_attenuation: float = 1.0,
        factor: int = 2,
        pixel_integration: bool = True,
        margin: int | None = None,
        norm: str = "l1",
        beta: float = 0.0,
    ) -> None:
        if norm not in ("l1", "l2"):
            raise ValueError(f"norm must be 'l1' or 'l2'; got {norm!r}")
        self.k = np.asarray(params.k, dtype=np.float64).reshape(3, 2)
        self.phases = np.asarray(params.phases, dtype=np.float64).reshape(3, 3)
        mod = np.broadcast_to(np.asarray(params.modulation, dtype=np.float64), (3,))
        if pixel_integration:
            mod = mod * np.sinc(self.k[:, 0] / factor) * np.sinc(self.k[:, 1] / factor)
        self.modulation = mod
        self.optics = optics
        self.attenuation = float(otf_attenuation)
        self.factor = int(factor)
        if margin is None:
            margin = int(np.ceil(optics.wavelength / (optics.na * optics.pixel_size)))
        self.margin = int(margin)
        self.norm = norm
        self.beta = float(beta)
        self._blurs: dict[tuple[int, int], Blur] = {}

    def operator(self, shape: tuple[int, int], offset: tuple[int, int] = (0, 0)) -> SIMForward:
        """``x -> (S_f[h * (p_i x)])_i`` on an output-grid patch of ``shape`` whose camera
        origin is ``offset`` (pixels of the camera grid)."""
        shape = (int(shape[0]), int(shape[1]))
        if shape not in self._blurs:
            otf = microscope_otf(
                shape,
                self.optics,
                self.optics.pixel_size / self.factor,
                otf_attenuation=self.attenuation,
            )
            self._blurs[shape] = Blur(otf=np.array(otf))
        shift = 2 * np.pi * (self.k[:, 0] * offset[0] + self.k[:, 1] * offset[1])
        ill = SIMIllumination(
            self.k, self.phases + shift[:, None], self.modulation, factor=self.factor
        )
        return SIMForward(ill, self._blurs[shape])

    def fitted(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``c_i A_i + d_i``: per-frame least-squares scale and offset of ``pred`` to ``y``
        (both ``(..., 9, h, w)``, already cropped)."""
        pm = pred.mean(dim=(-2, -1), keepdim=True)
        ym = y.mean(dim=(-2, -1), keepdim=True)
        dp = pred - pm
        c = (dp * (y - ym)).mean(dim=(-2, -1), keepdim=True) / (
            dp.pow(2).mean(dim=(-2, -1), keepdim=True) + 1e-12
        )
        return c * dp + ym

    def terms(
        self, x_hat: torch.Tensor, y: torch.Tensor, offsets: Sequence[tuple[int, int]]
    ) -> dict[str, torch.Tensor]:
        """Data term and regulariser of a batch: ``x_hat`` ``(B, 1, f h, f w)``, ``y``
        ``(B, 9, h, w)``, ``offsets`` the camera origin of each patch."""
        f, m = self.factor, self.margin
        h, w = y.shape[-2:]
        if x_hat.shape[-2:] != (f * h, f * w):
            raise ValueError(f"output {tuple(x_hat.shape)} is not {f}x the frames {tuple(y.shape)}")
        if h <= 2 * m + 2 or w <= 2 * m + 2:
            raise ValueError(f"patch {h} x {w} too small for a margin of {m} pixels")
        preds = [
            self.operator(x_hat.shape[-2:], tuple(o)).A(x_hat[b, 0]) for b, o in enumerate(offsets)
        ]
        pred = torch.stack(preds)[..., m : h - m, m : w - m]
        r = y[..., m : h - m, m : w - m] - self.fitted(pred, y[..., m : h - m, m : w - m])
        data = r.abs().mean() if self.norm == "l1" else r.pow(2).mean()
        reg = hessian_penalty(x_hat) / (x_hat.abs().mean() + 1e-8) if self.beta > 0 else 0 * data
        return {"data": data, "reg": reg, "total": data + self.beta * reg}

    def __call__(
        self, x_hat: torch.Tensor, y: torch.Tensor, offsets: Sequence[tuple[int, int]]
    ) -> torch.Tensor:
        return self.terms(x_hat, y, offsets)["total"]

    def loss_numpy(self, x_hat: np.ndarray, frames: np.ndarray) -> float:
        """Data term for one whole image ``x_hat`` ``(f y, f x)`` and its frames ``(9, y, x)``."""
        x = torch.as_tensor(np.asarray(x_hat, dtype=np.float64))[None, None]
        y = torch.as_tensor(np.asarray(frames, dtype=np.float64))[None]
        with torch.no_grad():
            return float(self.terms(x, y, [(0, 0)])["data"])


def _params_list(params: Any, stack: np.ndarray, optics: Optics, calib: Any) -> list[Any]:
    n = stack.shape[0]
    if params is None and calib is not None and getattr(calib, "pattern", None):
        params = calib.pattern
    if params is None:
        return [estimate_parameters(a, optics) for a in stack]
    if isinstance(params, (list, tuple)):
        if len(params) != n:
            raise ValueError(f"got {len(params)} parameter sets for {n} acquisitions")
        return list(params)
    return [params] * n


def _noise_level(
    noise: NoiseModel,
    stack: np.ndarray,
    spots: list[tuple[int, int, int]],
    patch: int,
    margin: int,
    norm: str,
) -> float:
    """Expected data term of the noise alone over the evaluation patches (module docstring)."""
    vals = []
    for j, oy, ox in spots:
        lo, hi = percentile_range(stack[j])
        sl = (slice(None), slice(oy + margin, oy + patch - margin),
              slice(ox + margin, ox + patch - margin))  # fmt: skip
        v = noise.variance(stack[j][sl]).astype(np.float64) / (hi - lo) ** 2
        vals.append(np.mean(np.sqrt(2.0 / np.pi) * np.sqrt(v)) if norm == "l1" else np.mean(v))
    return float(np.mean(vals))


def adapt_sim(
    model: torch.nn.Module,
    frames: Any,
    params: SIMParameters | Sequence[SIMParameters] | None,
    optics: Optics,
    calib: Any = None,
    *,
    steps: int = SIM_STEPS,
    seed: int = 0,
    patch: int = 64,
    batch: int = 2,
    lr: float = 1e-4,
    beta: float = 0.005,
    norm: str = "l1",
    pixel_integration: bool = True,
    margin: int | None = None,
    camera: Any = None,
    noise_stop: float | None = 1.0,
    eval_patches: int = 4,
    eval_every: int = 50,
    progress: bool = True,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Fine-tune a SIM-reconstruction network on the user's 9 frames by physics consistency.

    Parameters
    ----------
    model
        A trained :class:`dps_stages.nets.SIMNet` or :class:`~dps_stages.nets.OIDN` (9 frames
        -> 2x image; left untouched: a copy is tuned).
    frames
        ``(9, y, x)`` or ``(n, 9, y, x)``: the frames the network is given in the chain
        (denoised or background-removed), any units; each acquisition is normalised as at
        inference and is both the input and the target of the loss.
    params
        Illumination per acquisition (one for all, a list, or None: ``calib.pattern`` when
        the calibration has it, else :func:`dps_stages.sim.estimate_parameters`).
    optics
        Wavelength, NA, camera pixel size.
    calib
        OTF attenuation: a :class:`dps_stages.calibrate.Calibration`, a number ``a`` or None
        (ideal OTF); :func:`otf_attenuation_of`.
    steps, seed, patch, batch, lr
        Adam steps (cosine-decayed ``lr``), seed of the patch draws, patch side (camera
        pixels, a multiple of the network's), patches per step.
    beta, norm, pixel_integration, margin
        :class:`SIMConsistency`.
    camera, noise_stop
        The camera of the raw frames (as :meth:`NoiseModel.from_calibration` takes it;
        default ``calib.camera`` when ``calib`` has one) and the discrepancy factor ``tau``
        of the stopping rule (module docstring); no camera or ``noise_stop=None``: all
        ``steps``. Give the camera only when ``frames`` are the raw frames in ADU.
    eval_patches, eval_every
        A fixed set of patches (seed ``seed + 1``) on which the data term is measured
        before, every ``eval_every`` steps and after (``history["eval_loss"]``).

    Returns
    -------
    (model, history)
        ``history["noise_level"]``: the data term of the noise alone (None without a camera).
    """
    model = tuning_copy(model, seed)
    stack = as_stack(frames)
    plist = _params_list(params, stack, optics, calib)
    a = otf_attenuation_of(calib, optics)
    losses = [
        SIMConsistency(p, optics, otf_attenuation=a, factor=int(getattr(model, "scale", 2)),
                       pixel_integration=pixel_integration, margin=margin, norm=norm, beta=beta)
        for p in plist
    ]  # fmt: skip
    y_n, _ = normalised_stack(stack)
    patch = patch_side(model, y_n.shape, patch)

    def draw(rng: np.random.Generator, k: int) -> list[tuple[int, int, int]]:
        n, _, ny, nx = y_n.shape
        out = []
        for _ in range(k):
            j = int(rng.integers(n))
            out.append((j, int(rng.integers(ny - patch + 1)), int(rng.integers(nx - patch + 1))))
        return out

    def loss_of(spots: list[tuple[int, int, int]], term: str = "total") -> torch.Tensor:
        total = 0.0
        for j in sorted({s[0] for s in spots}):
            mine = [s for s in spots if s[0] == j]
            y = torch.from_numpy(
                np.stack([y_n[j, :, oy : oy + patch, ox : ox + patch] for _, oy, ox in mine])
            )
            t = losses[j].terms(model(y), y, [(oy, ox) for _, oy, ox in mine])[term]
            total = total + t * len(mine)
        return total / len(spots)

    rng = np.random.default_rng(seed)
    ev_spots = draw(np.random.default_rng(seed + 1), eval_patches)
    if camera is None and calib is not None and getattr(calib, "camera", None) is not None:
        camera = calib.camera
    level = None
    if camera is not None and noise_stop is not None:
        level = _noise_level(NoiseModel.from_calibration(camera), stack, ev_spots, patch,
                             losses[0].margin, norm)  # fmt: skip

    @torch.no_grad()
    def evaluate() -> float:
        return float(loss_of(ev_spots, "data"))

    hist = fine_tune(
        model, lambda _: loss_of(draw(rng, batch)), evaluate, steps=int(steps), lr=lr,
        eval_every=eval_every, desc="adapt SIM (physics)", progress=progress,
        stop=None if level is None else (lambda v: v <= noise_stop * level),
    )  # fmt: skip
    hist["noise_level"] = level
    hist.update(
        {"method": "sim_physics", "otf_attenuation": a, "beta": beta, "norm": norm,
         "patch": patch, "batch": batch, "lr": lr, "seed": seed}
    )  # fmt: skip
    return model, hist

"""PSF identification, part 2: the loss, identification of real images and the metrics.

After Nguyen, Sarron, Escande & Weiss, "Training identification network for blind
deconvolution in microscopy" (training data: :mod:`.data`).

Loss (:class:`PSFIdentificationLoss`)
-------------------------------------
``L = mean_n sum_pixels |h_hat - h| + lambda mean_{n, valid} |(h_hat * x)_valid - y_valid|``:
the PSF term is an L1 distance between two unit-sum PSFs (in ``[0, 2]``, summed over the
``k^2`` pixels, averaged over the batch); the re-blur term is the mean absolute difference
over the ``(p - k + 1)^2`` pixels where ``h_hat * x`` is known exactly from the ``p x p``
object (a 'valid' convolution, no padding; ``y`` cropped by ``k // 2`` on each side) and over
the batch. ``lambda = 1`` by default (the paper's value was not available to us): at this
normalisation the re-blur term's value is about the noise level (``1e-2`` to ``1e-1``; a
few hot pixels, ``(2^16 - 1 - o) / (g gamma)`` in these units, can make it larger, but an L1
term's gradient is bounded), and its gradient with respect to a PSF pixel is at most the
local mean of ``x`` (below 1) against 1 for the PSF term, so it regularises (the PSF must
explain the measurement) without dominating.

Metrics
-------
``PSNR(est, ref) = 10 log10(max(ref)^2 / mean((est - ref)^2))``, the data range being the
maximum of the reference, per example, then averaged over examples.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor, nn

from ..physics import Blur
from .data import PSFData, _param_channels, normalise_observation

__all__ = ["PSFIdentificationLoss", "evaluate", "identify", "psnr", "psnr_psf", "reblur"]

log = logging.getLogger("dps.psf_id")


# --------------------------------------------------------------------------------------------
# loss


def reblur(x: Tensor, h: Tensor) -> Tensor:
    """``h * x`` per example, a true convolution kept where it is 'valid'.

    ``x`` ``(N, 1, p, p)``, ``h`` ``(N, 1, k, k)`` (or ``(1, 1, k, k)`` for all) ->
    ``(N, 1, p - k + 1, p - k + 1)``: output ``(i, j)`` is
    ``sum_{a, b} h[a, b] x[i + k - 1 - a, j + k - 1 - b]``, i.e. the pixel
    ``(i + k // 2, j + k // 2)`` of the full convolution with the PSF centred at ``k // 2``
    (what ``scipy.signal.fftconvolve(x, h, mode='valid')`` gives): :class:`~dps_stages.physics.Blur`
    with ``boundary="valid"``.
    """
    return Blur(h, boundary="valid").A(x)


class PSFIdentificationLoss(nn.Module):
    """``||h_hat - h||_1 + lambda ||h_hat * x - y||_1`` (see the module docstring).

    Called as ``loss(h_hat, (h, x, y))``. Normalisations: the PSF term is the sum over the
    ``k x k`` pixels of ``|h_hat - h|`` (both unit sum, so it lies in ``[0, 2]``), averaged
    over the batch; the re-blur term is the mean over the batch and the
    ``(p - k + 1)^2`` valid pixels of ``|reblur(x, h_hat) - y[k//2 : p - k//2]|``: a 'valid'
    convolution of the ``p x p`` object, no padding, no boundary assumption (:func:`reblur`).
    ``last``: the unweighted ``psf`` and ``reblur`` terms and the ``total``, as floats.
    """

    def __init__(self, lam: float = 1.0) -> None:
        super().__init__()
        self.lam = float(lam)
        self.last: dict[str, float] = {}

    def forward(self, h_hat: Tensor, targets: Sequence[Tensor]) -> Tensor:
        h, x, y = targets
        if h_hat.shape != h.shape:
            raise ValueError(f"PSF shapes differ: {tuple(h_hat.shape)} vs {tuple(h.shape)}")
        psf = (h_hat - h).abs().sum(dim=(-3, -2, -1)).mean()
        r = h.shape[-1] // 2
        p = y.shape[-1]
        blurred = reblur(x, h_hat)
        re = (blurred - y[..., r : p - r, r : p - r]).abs().mean()
        total = psf + self.lam * re
        self.last = {
            "psf": float(psf.detach()),
            "reblur": float(re.detach()),
            "total": float(total.detach()),
        }
        return total


# --------------------------------------------------------------------------------------------
# identification of real images


def _patch_scores(image: np.ndarray, patch: int, stride: int) -> list[tuple[float, int, int]]:
    smooth = ndimage.median_filter(image, size=3, mode="reflect")
    ys = list(range(0, image.shape[0] - patch + 1, stride))
    xs = list(range(0, image.shape[1] - patch + 1, stride))
    if ys[-1] != image.shape[0] - patch:
        ys.append(image.shape[0] - patch)
    if xs[-1] != image.shape[1] - patch:
        xs.append(image.shape[1] - patch)
    return [
        (float(smooth[y0 : y0 + patch, x0 : x0 + patch].std()), y0, x0) for y0 in ys for x0 in xs
    ]


@torch.no_grad()
def identify(
    model: nn.Module,
    image: np.ndarray,
    *,
    patch: int | None = None,
    fc: float | None = None,
    theta_max: float | None = None,
    n_patches: int = 8,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """The PSF of an image of any size (2D, camera units), as float32 ``(k, k)``, unit sum.

    Candidate patches of ``patch`` px (default: the model's ``arch['patch']``, rounded down
    to its ``multiple``) on a grid of stride ``patch // 2`` (plus the last row/column at the
    border) are ranked by the standard deviation of the 3 x 3 median-filtered image inside
    them (bright, textured patches first; hot pixels do not count); the ``n_patches`` best
    (ties: in raster order) are normalised by :func:`normalise_observation` exactly as in
    training, the network is run on them, and the PSFs are averaged, clipped to ``>= 0`` and
    normalised to unit sum. An image smaller than a patch is reflect-padded to one. A network
    with 3 input channels needs ``fc`` (cycles/pixel, ``NA pixel_size / lambda``) and
    ``theta_max`` (waves), given as the constant channels of training; a 1-channel network
    ignores them.
    """
    img = np.asarray(image, dtype=np.float32)
    img = np.squeeze(img) if img.ndim > 2 else img
    if img.ndim != 2:
        raise ValueError(f"identify takes a 2D image; got shape {np.shape(image)}")
    if not np.all(np.isfinite(img)):
        raise ValueError("the image has non-finite values")
    m = int(getattr(model, "multiple", 1))
    p = int(patch if patch is not None else getattr(model, "arch", {}).get("patch", 64))
    p = max(m, p // m * m)
    if img.shape[0] < p or img.shape[1] < p:
        img = np.pad(
            img, [(0, max(0, p - img.shape[0])), (0, max(0, p - img.shape[1]))], mode="reflect"
        )
    scores = _patch_scores(img, p, max(1, p // 2))
    order = sorted(range(len(scores)), key=lambda i: (-scores[i][0], i))[: max(1, n_patches)]
    batch = np.stack(
        [
            normalise_observation(img[y0 : y0 + p, x0 : x0 + p])
            for _, y0, x0 in (scores[i] for i in order)
        ]
    )[:, None]
    if model.in_channels == 3:
        if fc is None or theta_max is None:
            raise ValueError("this network takes fc and theta_max (give_params); pass both")
        params = _param_channels(float(fc), float(theta_max), (p, p))
        batch = np.concatenate([batch, np.broadcast_to(params, (len(batch), 2, p, p))], axis=1)
    elif fc is not None or theta_max is not None:
        log.info("the network has no parameter channels: fc and theta_max are not used")
    was_training = model.training
    model.eval()
    try:
        out = model(torch.from_numpy(np.ascontiguousarray(batch)).to(device)).cpu().numpy()
    finally:
        model.train(was_training)
    h = np.clip(out[:, 0].astype(np.float64).mean(axis=0), 0.0, None)
    total = h.sum()
    if not total > 0:
        raise RuntimeError("the network returned an all-zero PSF")
    return (h / total).astype(np.float32)


# --------------------------------------------------------------------------------------------
# metrics


def psnr(estimate: np.ndarray, reference: np.ndarray) -> float:
    """``10 log10(max(ref)^2 / mean((est - ref)^2))`` (dB): data range = the reference's max."""
    est = np.asarray(estimate, np.float64)
    ref = np.asarray(reference, np.float64)
    mse = float(np.mean((est - ref) ** 2))
    peak = float(ref.max())
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(peak**2 / mse))


def psnr_psf(h_hat: np.ndarray, h: np.ndarray) -> float:
    """PSNR of an estimated PSF against the true one (both as given; data range = max(h))."""
    return psnr(np.squeeze(h_hat), np.squeeze(h))


@torch.no_grad()
def evaluate(
    model: nn.Module,
    n: int = 64,
    seed: int = 0,
    give_params: bool | None = None,
    *,
    batch: int = 16,
    **data_kw: Any,
) -> dict[str, float]:
    """Mean PSNRs of the model on ``n`` fresh examples drawn from ``default_rng([seed, 2024])``.

    The data are :class:`PSFData` with the model's ``patch`` and ``psf_size`` (``give_params``
    defaults to whether the model has 3 input channels; ``data_kw`` overrides other settings).
    Returns ``psnr_psf`` (``h_hat`` vs ``h``), ``psnr_reblur`` (``h_hat * x`` vs the noise-free
    ``h * x`` on the valid pixels), ``psnr_reblur_measured`` (vs the measured ``y``, physical
    units), ``l1_psf`` (mean ``sum |h_hat - h|``), and the same for the trivial predictor, the
    mean of the ``n`` true PSFs (``*_mean_psf``), plus ``n``.
    """
    arch = getattr(model, "arch", {})
    if give_params is None:
        give_params = model.in_channels == 3
    data = PSFData(
        patch=arch.get("patch", 64),
        psf_size=arch.get("psf_size", 21),
        give_params=give_params,
        seed=seed,
        **data_kw,
    )
    rng = np.random.default_rng([seed, 2024])
    was_training = model.training
    model.eval()
    hs, hats, xs, ys, cleans = [], [], [], [], []
    try:
        for start in range(0, n, batch):
            d = data.draw(rng, min(batch, n - start))
            out = model(torch.from_numpy(d["input"])).numpy()
            hats.append(out)
            for key, acc in (("h", hs), ("x", xs), ("y", ys), ("clean", cleans)):
                acc.append(d[key])
    finally:
        model.train(was_training)
    h, h_hat = np.concatenate(hs), np.concatenate(hats)
    x, y, clean = np.concatenate(xs), np.concatenate(ys), np.concatenate(cleans)
    mean_psf = np.broadcast_to(h.mean(axis=0, keepdims=True), h.shape)
    k, p = h.shape[-1], x.shape[-1]
    r = k // 2
    tx = torch.from_numpy(x)

    def scores(est: np.ndarray) -> dict[str, float]:
        blurred = reblur(tx, torch.from_numpy(np.ascontiguousarray(est, np.float32))).numpy()
        inner = (Ellipsis, slice(r, p - r), slice(r, p - r))
        return {
            "psnr_psf": float(np.mean([psnr_psf(a, b) for a, b in zip(est, h, strict=True)])),
            "psnr_reblur": float(
                np.mean([psnr(a, b) for a, b in zip(blurred, clean[inner], strict=True)])
            ),
            "psnr_reblur_measured": float(
                np.mean([psnr(a, b) for a, b in zip(blurred, y[inner], strict=True)])
            ),
            "l1_psf": float(np.abs(est - h).sum(axis=(1, 2, 3)).mean()),
        }

    out = {"n": int(n)} | scores(h_hat)
    out |= {f"{key}_mean_psf": v for key, v in scores(mean_psf).items()}
    return out

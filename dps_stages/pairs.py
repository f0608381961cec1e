"""Training data of the networks: :class:`Pairs` (inputs, targets) and their builders.

Each network learns from pairs built out of a simulated split (``dps simulate``), normalised
exactly as :mod:`dps_stages.inference` normalises at run time (:mod:`dps_stages.normalise`):

* :func:`denoise_pairs`: the 9 noisy raw frames of every image and signal level -> their
  expected value ``E[y] = g gamma x + b`` (the noise-free frames in the camera's units),
  normalised with the noisy input's percentiles, so that the output maps back to ADU.
* :func:`sim_pairs`: the denoised frames (the ``denoise`` model's output when given, else the
  noise-free frames) -> the 2x ground truth scaled to a 99.9 percentile of 1.
* :func:`artifact_pairs`: the SIM reconstruction the chain feeds the artifact network (Wiener
  on the background-removed denoised frames, or a SIM network's output) -> the same truth.
* :func:`dbpn_pairs_simulated`, :func:`dbpn_pairs_images`: no ground truth (Res-U-DBPN):
  the 2x truth blurred with a PSF plus photon noise at each signal level; or a user's images.

A builder that needs another trained network is handed a model runner ``restore`` (the
signature of :func:`dps_stages.inference.restore_with`) instead of importing the networks, so
that the networks' homes (:mod:`dps_stages.nets`) can use this module without an import
circle. :class:`PatchSampler` draws the seeded random patches of the training loop.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from dps_stages import io
from dps_stages.io import DpsInputError
from dps_stages.normalise import normalise, percentile_range

__all__ = [
    "TARGET_PERCENTILE",
    "PatchSampler",
    "Pairs",
    "Restore",
    "artifact_pairs",
    "dbpn_pairs_images",
    "dbpn_pairs_simulated",
    "denoise_pairs",
    "normalise_input",
    "normalise_target",
    "sim_pairs",
    "sim_reconstructions",
]

#: ``restore(model_path, stack, *, expect, denormalise=False) -> list of outputs``: runs the
#: trained ``expect`` network of ``model_path`` on each image of ``stack``.
Restore = Callable[..., list[np.ndarray]]

TARGET_PERCENTILE = 99.9


@dataclass
class Pairs:
    """Training examples: inputs (C, y, x) and targets (C', s y, s x), or no targets."""

    inputs: list[np.ndarray]
    targets: list[np.ndarray] | None
    scale: int
    description: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.inputs)

    def sampler(self, patch: int, multiple: int, rng: np.random.Generator) -> PatchSampler:
        return PatchSampler(self, patch, multiple, rng)

    def validation(self, multiple: int, size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        return _validation_batch(self, multiple, size)

    def digest(self) -> str:
        h = hashlib.sha256()
        for arrs in (self.inputs, self.targets or []):
            for a in arrs:
                h.update(np.ascontiguousarray(a, dtype=np.float32).tobytes())
        return h.hexdigest()[:16]


def normalise_input(x: np.ndarray) -> np.ndarray:
    return normalise(x, *percentile_range(x))


def normalise_target(truth: np.ndarray) -> np.ndarray:
    """Ground truth scaled so that its 99.9 percentile is 1 (its zero stays zero)."""
    top = float(np.percentile(truth, TARGET_PERCENTILE))
    return (np.asarray(truth, np.float32) / (top if top > 0 else 1.0)).astype(np.float32)


def _noise(attrs: dict[str, Any]) -> tuple[float, float]:
    """(gain, offset) of a simulated split's camera."""
    p = attrs.get("noise") or attrs.get("dps", {}).get("parameters", {})
    return float(p.get("gain", 1.0)), float(p.get("offset", 0.0))


def _expected_frames(attrs: dict[str, Any], clean: np.ndarray, n: int, level: float) -> np.ndarray:
    """``E[raw] = g (gamma c) clean + b``: the expected frames of image ``n`` at signal level
    ``level`` (ADU). A randomised microscope (the split's ``microscopes``, one per image)
    gives the image's own gain ``g``, offset ``b`` and photon factor ``c``; else the split's
    camera and ``c = 1``."""
    gain, offset = _noise(attrs)
    mics = attrs.get("microscopes")
    own = mics[n] if mics else {}
    gain = float(own.get("gain", gain))
    offset = float(own.get("offset", offset))
    photons = float(level) * float(own.get("photons", 1.0))
    return gain * photons * clean + offset


def _simulated(store: str | Path) -> tuple[Any, dict[str, Any]]:
    group = io.open_group(store)
    for key in ("raw", "raw_clean", "truth_2x"):
        if key not in group:
            raise DpsInputError(f"{store}: not a simulated split (no array {key!r})")
    return group, dict(group.attrs)


def denoise_pairs(store: str | Path) -> Pairs:
    group, attrs = _simulated(store)
    raw, clean = group["raw"][...], group["raw_clean"][...]
    inputs, targets = [], []
    for n in range(raw.shape[0]):
        for li, photons in enumerate(attrs["levels"]):
            noisy = raw[n, li]
            expected = _expected_frames(attrs, clean[n], n, photons)
            lo, hi = percentile_range(noisy)
            inputs.append(normalise(noisy, lo, hi))
            targets.append(normalise(expected, lo, hi))
    desc = {"store": str(store), "levels": attrs["levels"], "photons": photon_range(attrs)}
    return Pairs(inputs, targets, 1, desc)


def photon_range(attrs: dict[str, Any]) -> list[float]:
    """The photo-electrons at the brightest widefield pixel that a simulated split covers:
    its levels, each spread by the calibrated simulator's photon factor (``randomise``'s
    ``photons``, log-uniform within ``e^(+-s)``) where it has one."""
    from dps_stages.simulate import photon_spread

    spread = photon_spread((attrs.get("microscope") or {}).get("randomise"))
    levels = [float(v) for v in attrs["levels"]]
    return [min(levels) / spread, max(levels) * spread]


def _needs(restore: Restore | None, model: str | Path) -> Restore:
    if restore is None:
        raise ValueError(f"building pairs from the model {model} needs a model runner (restore=)")
    return restore


def _denoised_frames(
    store: str | Path, denoise_model: str | Path | None, restore: Restore | None
) -> list[np.ndarray]:
    """Per image and level: 9 frames as the SIM stage sees them (ADU, offset included)."""
    group, attrs = _simulated(store)
    raw = group["raw"][...]
    n, nl = raw.shape[:2]
    if denoise_model is None:
        clean = group["raw_clean"][...]
        return [
            _expected_frames(attrs, clean[i], i, photons)
            for i in range(n)
            for photons in attrs["levels"]
        ]
    flat = raw.reshape(n * nl, *raw.shape[2:])
    return _needs(restore, denoise_model)(denoise_model, flat, expect="denoise", denormalise=True)


#: the array of each SIM-grid target (``networks.<net>.target``)
TARGETS = {"object": "truth_2x", "sim_passband": "truth_2x_sim_passband"}


def _truth_targets(store: str | Path, target: str = "object") -> list[np.ndarray]:
    """Per image and level: the 2x truth ``target`` (:data:`TARGETS`), scaled by
    :func:`normalise_target`."""
    group, attrs = _simulated(store)
    if target not in TARGETS:
        raise DpsInputError(f"unknown target {target!r}; expected one of {sorted(TARGETS)}")
    if TARGETS[target] not in group:
        raise DpsInputError(
            f"{store}: no array {TARGETS[target]!r} for target {target!r} (simulated by an "
            "older version: simulate it again)"
        )
    truth = group[TARGETS[target]][...]
    return [
        normalise_target(truth[i])[None] for i in range(truth.shape[0]) for _ in attrs["levels"]
    ]


def sim_pairs(
    store: str | Path,
    denoise_model: str | Path | None = None,
    *,
    restore: Restore | None = None,
    target: str = "object",
) -> Pairs:
    """Denoised frames (``denoise_model``'s output, run by ``restore``; or the noise-free
    frames) -> the 2x ground truth."""
    frames = _denoised_frames(store, denoise_model, restore)
    return Pairs(
        [normalise_input(f) for f in frames],
        _truth_targets(store, target),
        2,
        {
            "store": str(store),
            "denoise_model": str(denoise_model) if denoise_model else None,
            "target": target,
        },
    )


def _calibrated_sim_kw(
    store: str | Path, optics, sim_kw: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """Per image and level (the order of :func:`_denoised_frames`): the Wiener settings with
    the OTF attenuation fitted to that acquisition's raw frames, as the chain's calibrate
    stage does for a user's acquisition."""
    from dps_stages.calibrate import resolve_sim_settings

    raw = _simulated(store)[0]["raw"][...]
    flat = raw.reshape(-1, *raw.shape[2:])
    return [resolve_sim_settings(sim_kw, f, optics) for f in flat]


def _with_denoise_error(
    store: str | Path,
    frames: Sequence[np.ndarray],
    optics,
    sim_kw: dict[str, Any] | Sequence[dict[str, Any]] | None,
) -> list[dict[str, Any]]:
    """Per stack of denoised ``frames`` (the order of :func:`_denoised_frames`): the Wiener
    settings with ``noise_variance``, the mid band of the denoiser's error profile
    (:mod:`dps_stages.sure`) measured exactly against the expected frames, as the chain's
    Wiener stage reads its SURE estimate from ``dps infer denoise --calibration``."""
    from dps_stages.sure import error_profile

    group, attrs = _simulated(store)
    clean = group["raw_clean"][...]
    levels = attrs["levels"]
    cutoff = float(optics.cutoff_per_pixel)
    kws = [dict(k) for k in sim_kw] if isinstance(sim_kw, Sequence) else None
    out = []
    for j, f in enumerate(frames):
        i, li = divmod(j, len(levels))
        error = np.asarray(f, np.float64) - _expected_frames(attrs, clean[i], i, levels[li])
        kw = kws[j] if kws else dict(sim_kw or {})
        kw["noise_variance"] = error_profile(error).band(cutoff)
        out.append(kw)
    return out


def sim_reconstructions(
    frames: Sequence[np.ndarray],
    method: str,
    *,
    optics,
    background_radius: float,
    sim_model: str | Path | None = None,
    sim_kw: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
    restore: Restore | None = None,
    sim_networks: Mapping[str, str] = MappingProxyType({}),
) -> list[np.ndarray]:
    """The SIM stage of the chain on denoised frames: Wiener after rolling-ball (``sim_kw``:
    its settings, or one set per stack of ``frames``), or the network
    ``sim_networks[method]`` of ``sim_model`` (run by ``restore``)."""
    if method == "wiener":
        from dps_stages.background import subtract_background
        from dps_stages.sim import reconstruct

        kws = [dict(k) for k in sim_kw] if isinstance(sim_kw, Sequence) else None
        out = []
        for i, f in enumerate(frames):
            bg = np.stack([subtract_background(x, background_radius) for x in f])
            out.append(reconstruct(bg, optics, **(kws[i] if kws else dict(sim_kw or {})))[0])
        return out
    if method in sim_networks:
        if sim_model is None:
            raise DpsInputError(f"the artifact network on {method!r} SIM needs --sim-model")
        return _needs(restore, sim_model)(sim_model, np.stack(frames), expect=sim_networks[method])
    raise DpsInputError(f"unknown SIM method {method!r}; expected wiener, dps or oidn")


def artifact_pairs(
    store: str | Path,
    *,
    optics,
    method: str = "wiener",
    denoise_model: str | Path | None = None,
    sim_model: str | Path | None = None,
    background_radius: float = 50.0,
    sim_kw: dict[str, Any] | None = None,
    restore: Restore | None = None,
    sim_networks: Mapping[str, str] = MappingProxyType({}),
    target: str = "object",
) -> Pairs:
    """The chain's SIM reconstruction of the denoised frames (:func:`sim_reconstructions`)
    -> the 2x ground truth; ``restore`` runs the denoise and SIM models."""
    frames = _denoised_frames(store, denoise_model, restore)
    if method == "wiener" and dict(sim_kw or {}).get("otf_decay", "auto") == "auto":
        sim_kw = _calibrated_sim_kw(store, optics, sim_kw)
    if method == "wiener" and denoise_model is not None:
        sim_kw = _with_denoise_error(store, frames, optics, sim_kw)
    recon = sim_reconstructions(
        frames,
        method,
        optics=optics,
        background_radius=background_radius,
        sim_model=sim_model,
        sim_kw=sim_kw,
        restore=restore,
        sim_networks=sim_networks,
    )
    return Pairs(
        [normalise_input(r)[None] for r in recon],
        _truth_targets(store, target),
        1,
        {
            "store": str(store),
            "target": target,
            "sim_method": method,
            "denoise_model": str(denoise_model) if denoise_model else None,
            "sim_model": str(sim_model) if sim_model else None,
        },
    )


def dbpn_pairs_simulated(
    store: str | Path, psf: np.ndarray, seed: int, *, grid: str = "2x", stream: int
) -> Pairs:
    """Images for self-supervised Res-U-DBPN training without a user's data: the truth of
    ``grid`` (``2x``: SIM-like with the srPSF; ``1x``: widefield-like with the Airy PSF)
    blurred with ``psf``, with photon noise at each of the split's signal levels (drawn from
    ``default_rng([seed, stream])``, ``stream`` the network's id)."""
    from dps_stages.physics import Blur

    group, attrs = _simulated(store)
    truth = group[f"truth_{grid}"][...]
    rng = np.random.default_rng([seed, stream])
    # zero continuation (``fftconvolve(mode="same")``); a zero row / column in front of an even
    # axis puts the centre where ``mode="same"`` has it (index ``k // 2 - 1`` of an even axis)
    psf = np.asarray(psf)
    blur = Blur(np.pad(psf, [(1 - k % 2, 0) for k in psf.shape]), boundary="zero")
    inputs = []
    for i in range(truth.shape[0]):
        blurred = np.clip(blur(truth[i]), 0, None)
        blurred /= max(float(blurred.max()), 1e-12)
        for photons in attrs["levels"]:
            noisy = rng.poisson(blurred * photons).astype(np.float32)
            inputs.append(normalise_input(noisy)[None])
    return Pairs(inputs, None, 2, {"store": str(store), "kind": f"truth_{grid} * PSF + noise"})


def dbpn_pairs_images(path: str | Path) -> Pairs:
    """A user's own SIM images (any size), for self-supervised Res-U-DBPN training."""
    arr, _ = io.read_image(path)
    images = np.asarray(io.as_image_stack(arr, path), dtype=np.float32)
    io.check_finite(images, path)
    return Pairs([normalise_input(im)[None] for im in images], None, 2, {"images": str(path)})


# --------------------------------------------------------------------------------------------
# sampler


class PatchSampler:
    """Random patches (with random dihedral flips) from :class:`Pairs`, seeded."""

    def __init__(self, pairs: Pairs, patch: int, multiple: int, rng: np.random.Generator):
        self.pairs, self.rng = pairs, rng
        smallest = min(min(x.shape[-2:]) for x in pairs.inputs)
        self.patch = max(multiple, min(patch, smallest) // multiple * multiple)
        if self.patch > smallest:
            raise DpsInputError(
                f"training images of {smallest} px are smaller than the network's "
                f"multiple {multiple}"
            )

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        xs, ys = [], []
        p, s = self.patch, self.pairs.scale
        for _ in range(size):
            i = int(self.rng.integers(len(self.pairs)))
            x = self.pairs.inputs[i]
            y0 = int(self.rng.integers(x.shape[-2] - p + 1))
            x0 = int(self.rng.integers(x.shape[-1] - p + 1))
            k, flip = int(self.rng.integers(4)), bool(self.rng.integers(2))
            xs.append(_dihedral(x[..., y0 : y0 + p, x0 : x0 + p], k, flip))
            if self.pairs.targets is not None:
                t = self.pairs.targets[i][..., s * y0 : s * (y0 + p), s * x0 : s * (x0 + p)]
                ys.append(_dihedral(t, k, flip))
        x = torch.from_numpy(np.stack(xs))
        return x, (torch.from_numpy(np.stack(ys)) if ys else None)


def _dihedral(a: np.ndarray, k: int, flip: bool) -> np.ndarray:
    a = np.rot90(a, k, axes=(-2, -1))
    return np.ascontiguousarray(a[..., ::-1] if flip else a)


def _validation_batch(pairs: Pairs, multiple: int, size: int, limit: int = 8):
    """Fixed centre crops of up to ``limit`` validation examples."""
    idx = np.linspace(0, len(pairs) - 1, min(limit, len(pairs))).round().astype(int)
    smallest = min(min(pairs.inputs[i].shape[-2:]) for i in idx)
    p = max(multiple, min(size, smallest) // multiple * multiple)
    s = pairs.scale
    xs, ys = [], []
    for i in idx:
        x = pairs.inputs[i]
        y0, x0 = (x.shape[-2] - p) // 2, (x.shape[-1] - p) // 2
        xs.append(x[..., y0 : y0 + p, x0 : x0 + p])
        if pairs.targets is not None:
            ys.append(pairs.targets[i][..., s * y0 : s * (y0 + p), s * x0 : s * (x0 + p)])
    return torch.from_numpy(np.stack(xs)), (torch.from_numpy(np.stack(ys)) if ys else None)

"""The default of every stage setting, defined once and keyed as in ``config.yaml``.

The ``dps`` command line takes its option defaults from here (:func:`default`), the workflow's
schema (``workflow/schemas/config.schema.yaml``) repeats them for Snakemake's validation, and
``tests/test_defaults.py`` checks that the command line, the schema and ``config.yaml`` agree.
Lengths in nm. Only plain Python here: importing it costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULTS", "Defaults", "default"]


@dataclass(frozen=True)
class OpticsDefaults:
    """``optics``: emission wavelength, numerical aperture, camera pixel at the sample, SIM
    modulation factor (srPSF = Airy with NA x this, Ye et al. 2024)."""

    wavelength: float = 525.0
    na: float = 1.4
    pixel_size: float = 65.0
    modulation_factor: float = 1.9


@dataclass(frozen=True)
class PatternDefaults:
    """``simulate.pattern``: SIM pattern frequency (fraction of the cutoff 2 NA / lambda),
    modulation depth m, and the standard deviations of angle and phase errors (rad)."""

    frequency: float = 0.9
    modulation: float = 0.8
    angle_error: float = 0.0
    phase_error: float = 0.0


@dataclass(frozen=True)
class NoiseDefaults:
    """``simulate.noise``: read noise (e- rms), gain (ADU/e-), offset (ADU), bits, and the
    fraction of hot or dead pixels (off: the chain has no hot-pixel removal)."""

    read_noise: float = 1.5
    gain: float = 1.0
    offset: float = 100.0
    bits: int = 16
    salt_pepper: float = 0.0


@dataclass(frozen=True)
class SimulateDefaults:
    """``simulate``: structures, camera-grid size, images per structure and split, and the
    signal levels (photons at the brightest widefield pixel)."""

    structures: tuple[str, ...] = ("microtubules", "ccps", "er", "actin")
    size: int = 128
    n_train: int = 8
    n_val: int = 2
    n_test: int = 2
    levels: tuple[float, ...] = (20.0, 100.0, 1000.0)
    pattern: PatternDefaults = field(default_factory=PatternDefaults)
    noise: NoiseDefaults = field(default_factory=NoiseDefaults)


@dataclass(frozen=True)
class BackgroundDefaults:
    """``background``: rolling-ball radius in pixels (DPS uses 50)."""

    radius: float = 50.0


@dataclass(frozen=True)
class SIMDefaults:
    """``sim``: the Wiener 2D-SIM reconstruction (Gustafsson 2000): parameter w or 'auto'
    (wiener_factor x the measured noise-to-signal ratio), OTF damping a (a**q, fairSIM; 'auto':
    fitted to the acquisition's own frames by :mod:`dps_stages.calibrate`), the local noise
    suppression after the combination (Lee 1980; 0: off), and the detection pupil:
    ``ideal``, or ``calibrated`` (the calibration's significant aberrations, with
    ``otf_decay: auto``)."""

    wiener: float | str = "auto"
    wiener_factor: float = 3.0
    otf_decay: float | str = "auto"
    local_wiener: float = 1.5
    pupil: str = "ideal"


@dataclass(frozen=True)
class RLDefaults:
    """``deconvolution.rl``: Richardson-Lucy iterations."""

    iterations: int = 30


@dataclass(frozen=True)
class SparseDefaults:
    """``deconvolution.sparse``: sparse-Hessian deconvolution (Zhao et al. 2022): fidelity
    and L1 weights, split-Bregman iterations."""

    fidelity: float = 150.0
    sparsity: float = 10.0
    iterations: int = 100


@dataclass(frozen=True)
class DeconvolutionDefaults:
    rl: RLDefaults = field(default_factory=RLDefaults)
    sparse: SparseDefaults = field(default_factory=SparseDefaults)


@dataclass(frozen=True)
class EvaluateDefaults:
    """``evaluate``: decorrelation analysis radii and high-pass filters (Descloux 2019), the
    largest region scored (a larger image is scored on its centre), and images per level in
    the figures."""

    n_r: int = 50
    n_g: int = 10
    max_region: int = 4096
    figure_images: int = 4


#: ``networks.precision``: ``auto`` (bf16 where the device computes it natively, else fp32),
#: ``fp32`` (the exact path: contiguous float32, no autocast), ``bf16``, ``fp16``
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class NetworkRunDefaults:
    """The ``networks`` settings that inference reads: device, inference tile (input pixels),
    tiles per forward pass, arithmetic precision (``auto``: bf16 autocast with
    ``channels_last`` where the device computes bf16 natively; ``fp32``: the exact float32
    path) and the SIM reconstruction that artifact removal cleans."""

    device: str = "auto"
    tile: int = 512
    batch: int = 2
    precision: str = "auto"
    sim_method: str = "wiener"


@dataclass(frozen=True)
class Defaults:
    """Every default, nested as the config is (``simulate`` is a dataset's ``simulate``)."""

    seed: int = 20241121
    tile: int = 1024
    optics: OpticsDefaults = field(default_factory=OpticsDefaults)
    simulate: SimulateDefaults = field(default_factory=SimulateDefaults)
    background: BackgroundDefaults = field(default_factory=BackgroundDefaults)
    sim: SIMDefaults = field(default_factory=SIMDefaults)
    deconvolution: DeconvolutionDefaults = field(default_factory=DeconvolutionDefaults)
    evaluate: EvaluateDefaults = field(default_factory=EvaluateDefaults)
    networks: NetworkRunDefaults = field(default_factory=NetworkRunDefaults)


DEFAULTS = Defaults()


def default(key: str) -> Any:
    """The default of a dotted config key, e.g. ``default("sim.wiener_factor") == 3.0``."""
    value: Any = DEFAULTS
    for part in key.split("."):
        value = getattr(value, part)
    return value

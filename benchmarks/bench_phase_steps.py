"""Benchmark: bias of the per-frame SIM phases with unequal phase steps (issue 12).

    python benchmarks/bench_phase_steps.py [--size 128] [--seeds 2]

Stacks from ``dps_stages.simulate.simulate_sample`` (default optics, no aberration) with the
systematic step errors of ``benchmarks/bench_unlike.py`` (up to 0.15 rad), clean and at 3000
photons. Per angle, at the true wave vector, the phase-step error (``max_p |e_p - e_0|``,
``e_p`` the phase error of frame ``p``) of:

* ``mean``: the estimator of :func:`dps_stages.sim.estimation._angle_parameters`,
  ``phi_p = arg rho_p``, ``rho_p`` the overlap of ``E_p = D_p - C_0`` with the zero band,
  ``C_0 = mean_p D_p``;
* ``iter n``: ``n`` iterations of the exact band separation, ``C_0 = sum_p U_0p D_p`` with
  ``U = M^-1`` at the current phases (``M_pq = e^{i q phi_p}``, ``q = 0, +-1``; Wicker et al.,
  Opt. Express 21, 2032, 2013), then ``phi_p = arg rho_p`` again;
* ``exact@truth``: one such step at the true phases (an oracle: the error that remains when the
  zero band is exact, i.e. the overlap's own bias).

``rho_p = A e^{i phi_p} + B e^{-i phi_p} - A L`` with ``L = sum_p U_0p e^{i phi_p}`` (the side
band the zero-band estimate keeps) and ``B`` the object's correlation between ``g`` and ``g +
2 k`` in the overlap; the iteration removes ``L`` but its fixed point (the circle through the
three ``rho_p``) absorbs ``B`` and is more biased than the mean. ``--equal``: the same
stacks with equal steps (``L = 0``: what is left is the ``B`` bias). Prints RMS and max over
structures, seeds and angles.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import fft as sfft

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dps_stages.optics import Optics  # noqa: E402
from dps_stages.sim import estimation as est_mod  # noqa: E402
from dps_stages.sim.otf import (  # noqa: E402
    _mixing_inverse,
    _ramp,
    periodic_smooth_decomposition,
    preprocess,
)
from dps_stages.simulate import simulate_sample  # noqa: E402

OPTICS = Optics(wavelength=525.0, na=1.4, pixel_size=65.0)
OFFSETS = [[0.0, 0.10, -0.12], [0.0, -0.08, 0.15], [0.0, 0.12, 0.05]]
STRUCTURES = ("microtubules", "er", "ccps", "actin")
ITERATIONS = 8


def _wrap(x: np.ndarray) -> np.ndarray:
    return np.angle(np.exp(1j * np.asarray(x)))


def overlaps(est, spec: np.ndarray, u0: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``rho_p`` (up to a common real factor) with ``C_0 = sum_p u0_p D_p``."""
    ny, nx = spec.shape[-2:]
    c0 = np.tensordot(u0.astype(np.complex64), spec, axes=1)
    a, b, _ = est_mod._overlap_pair(est, c0, spec - c0, k, mask=True)
    ramp = _ramp(ny, k[0])[:, None] * _ramp(nx, k[1])[None, :]
    return np.array([np.vdot(a, b[p] * ramp) for p in range(3)])


def step_error(phases: np.ndarray, truth: np.ndarray) -> float:
    e = _wrap(phases - truth)
    return float(np.abs(_wrap(e - e[0])).max())


def run(
    size: int, seeds: int, photons: float = 3000.0, offsets: list | None = None
) -> dict[str, np.ndarray]:
    out: dict[str, list[list[float]]] = {"clean": [], f"{photons:g} ph": []}
    for i, name in enumerate(STRUCTURES):
        for seed in range(seeds):
            rng = np.random.default_rng([7 + seed, i])
            d = simulate_sample(name, size, OPTICS, rng, levels=[photons],
                                pattern_kw={"phase_offsets": offsets or OFFSETS})  # fmt: skip
            truth = d["pattern"]
            for label, frames, bg in (("clean", d["raw_clean"], None),
                                      (f"{photons:g} ph", d["raw"][0], 0.5)):  # fmt: skip
                x = preprocess(frames, background_percentile=bg, normalise_intensity=True)
                xp, _ = periodic_smooth_decomposition(x)
                spec = sfft.fft2(xp, axes=(-2, -1)).astype(np.complex64)
                est = est_mod._estimation(x, spec, OPTICS, 0.125, 1.0, True, 0.1)
                for a in range(3):
                    k, ph, sp = truth.k[a], truth.phases[a], spec[3 * a : 3 * a + 3]
                    phases = np.angle(overlaps(est, sp, np.full(3, 1.0 / 3.0), k))
                    row = [step_error(phases, ph)]
                    for _ in range(ITERATIONS):
                        u0 = _mixing_inverse(phases)[0].real
                        phases = np.angle(overlaps(est, sp, u0, k))
                        row.append(step_error(phases, ph))
                    oracle = np.angle(overlaps(est, sp, _mixing_inverse(ph)[0].real, k))
                    row.append(step_error(oracle, ph))
                    out[label].append(row)
    return {key: np.asarray(v) for key, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--equal", action="store_true", help="equal steps (no step errors)")
    args = ap.parse_args()
    res = run(args.size, args.seeds, offsets=[[0.0] * 3] * 3 if args.equal else None)
    cols = ["mean"] + [f"iter {n}" for n in range(1, ITERATIONS + 1)] + ["exact@truth"]
    print("| data | statistic | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for key, v in res.items():
        for stat, f in (("rms", lambda x: np.sqrt(np.mean(x**2, axis=0))),
                        ("max", lambda x: x.max(axis=0))):  # fmt: skip
            print(f"| {key} | {stat} | " + " | ".join(f"{s:.3f}" for s in f(v)) + " |")


if __name__ == "__main__":
    main()

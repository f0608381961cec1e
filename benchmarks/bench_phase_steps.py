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
  zero band is exact, i.e. the overlap's own bias);
* ``joint``: an object-independent criterion tried for issue 12 and *not* adopted
  (:func:`joint_steps`): the steps (and the frames' relative intensities) that make the
  separated side band consistent with the zero band, ``C_+1(g + k) O(g) = m e^{i delta}
  C_0(g) O(g + k)``, fitted in the errors-in-variables sense from the ``mean`` estimate.
  Exact without noise (where ``mean`` keeps 0.1-0.2 rad), but the criterion is second order
  in the phase error, so at a few hundred photons its minimum wanders with the noise and it
  is worse than ``mean``; ``--photons`` sets the noisy level.

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
from scipy.optimize import minimize

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


def band_grams(
    est, spec: np.ndarray, k: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The frames' overlap images, their Gram matrices and noise at wave vector ``k``.

    ``A_p = w F^-1[D_p(g) O(g + k) M]`` and ``B_p = w F^-1[D_p(f) O(f - k) M(f - k)]
    e^{-2 pi i k.r}`` (:func:`_overlap_pair` applied to each frame, DC neighbourhoods
    masked): any band separation ``C_q = sum_p U_qp D_p`` maps linearly onto them. Returns
    ``(A, B, G_AA, G_BB, G_AB, n_A, n_B)`` with ``G_XY[p, q] = <X_p, Y_q>`` and ``n_X[p]``
    the white-noise power in ``<X_p, X_p>`` (frames independent; ``G_AB`` pairs frequencies
    ``k`` apart and has none).
    """
    ny, nx = spec.shape[-2:]
    a, b, fb = est_mod._overlap_pair(est, spec, spec, k, mask=True)
    b = b * (_ramp(ny, k[0])[:, None] * _ramp(nx, k[1])[None, :])
    fa = est.otf_at(k[0], k[1]) * est.mask_at(0.0, 0.0) * est.mask_at(k[0], k[1])
    a2 = a.reshape(3, -1).astype(np.complex128)
    b2 = b.reshape(3, -1).astype(np.complex128)
    scale = float(np.sum(est.win.astype(np.float64) ** 2)) / float(ny * nx) ** 2
    sigma2 = np.array([est.noise_power(spec[p]) for p in range(3)])
    n_a = sigma2 * float(np.sum(fa.astype(np.float64) ** 2)) * scale
    n_b = sigma2 * float(np.sum(fb.astype(np.float64) ** 2)) * scale
    return a, b, np.conj(a2) @ a2.T, np.conj(b2) @ b2.T, np.conj(a2) @ b2.T, n_a, n_b


def joint_steps(
    grams: tuple[np.ndarray, ...], phases: np.ndarray, fit_scales: bool = True
) -> tuple[np.ndarray, np.ndarray, float]:
    """Phase steps (and frame intensities) that make the separated bands consistent.

    With the true phases the separation ``C = M^-1 D`` is exact, and the side band moved to
    its place equals the zero band up to the factor ``c = m e^{i delta}`` over their
    overlap: ``C_+1(g + k) O(g) = c C_0(g) O(g + k)`` (Gustafsson 2000, eq. 5; the
    consistency behind Wicker et al., Opt. Express 21, 2032, 2013). With ``Q = sum_p U_0p
    A_p``, ``P = sum_p U_1p B_p`` (:func:`band_grams`, ``U = M^-1(phi) diag(1/s)`` for
    frame intensities ``s_p``), the residual ``v_0 Q + v_1 P`` is fitted in the
    errors-in-variables sense: ``min_v ||v_0 Q + v_1 P||^2 / (v^H N v)``, ``N`` the
    residual's noise covariance, is the smallest generalised eigenvalue of the 2 x 2 Gram
    matrix of ``(Q, P)`` against ``N``, and it is minimised over the steps ``phi_1 - phi_0,
    phi_2 - phi_0`` (and, with ``fit_scales``, ``log s_1 - log s_0``, ``log s_2 - log s_0``),
    starting from ``phases``. Without noise the criterion is exact at the truth whatever the
    object (each frame's own overlap also picks up the object's correlation ``2 k`` apart);
    normalising the noise keeps its minimum there with noise. Returns ``(phases, s, drop)``
    with ``phi_0`` unchanged, ``s_0 = 1`` and ``drop`` the criterion's decrease from the
    start (in units of the residual's noise energy).
    """
    g_aa, g_bb, g_ab, n_a, n_b = grams
    floor = 1e-9 * max(float(np.real(np.trace(g_aa))), float(np.real(np.trace(g_bb))), 1e-300)
    n_a = np.maximum(n_a, floor)
    n_b = np.maximum(n_b, floor)
    p0 = np.asarray(phases, dtype=np.float64)
    min_gap = np.radians(30.0)

    def unpack(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ph = np.array([p0[0], p0[0] + x[0], p0[0] + x[1]])
        s = np.exp(np.array([0.0, x[2], x[3]])) if fit_scales else np.ones(3)
        return ph, s

    def cost(x: np.ndarray) -> float:
        ph, s = unpack(x)
        gaps = np.abs(np.angle(np.exp(1j * (ph - np.roll(ph, 1)))))
        if gaps.min() < min_gap or np.abs(np.log(s)).max() > 0.5:
            return np.inf
        u = _mixing_inverse(ph) / s[None, :]
        qq = float(np.real(np.conj(u[0]) @ g_aa @ u[0]))
        pp = float(np.real(np.conj(u[1]) @ g_bb @ u[1]))
        qp = complex(np.conj(u[0]) @ g_ab @ u[1])
        na = float(np.sum(np.abs(u[0]) ** 2 * n_a))
        nb = float(np.sum(np.abs(u[1]) ** 2 * n_b))
        # smallest eigenvalue of N^-1/2 G N^-1/2 for G = [[qq, qp], [conj qp, pp]]
        x11, x22, x12 = qq / na, pp / nb, abs(qp) ** 2 / (na * nb)
        return 0.5 * (x11 + x22) - np.sqrt(0.25 * (x11 - x22) ** 2 + x12)

    start = np.angle(np.exp(1j * (p0[1:] - p0[0])))
    start = np.where(start < 0, start + (2 * np.pi), start)
    if fit_scales:
        start = np.concatenate([start, np.zeros(2)])
    simplex = np.vstack([start, start + 0.1 * np.eye(start.size)])
    res = minimize(cost, start, method="Nelder-Mead",
                   options={"xatol": 1e-5, "fatol": 0.0, "initial_simplex": simplex,
                            "maxiter": 400 * start.size})  # fmt: skip
    c0 = cost(start)
    if not (np.isfinite(res.fun) and res.fun < c0):
        return (*unpack(start), 0.0)
    return (*unpack(res.x), float(c0 - res.fun))


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
                    mean = np.angle(overlaps(est, sp, np.full(3, 1.0 / 3.0), k))
                    grams = band_grams(est, sp, k)[2:]
                    row.append(step_error(joint_steps(grams, mean)[0], ph))
                    out[label].append(row)
    return {key: np.asarray(v) for key, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--equal", action="store_true", help="equal steps (no step errors)")
    ap.add_argument("--photons", type=float, default=3000.0, help="the noisy level")
    args = ap.parse_args()
    offsets = [[0.0] * 3] * 3 if args.equal else None
    res = run(args.size, args.seeds, photons=args.photons, offsets=offsets)
    cols = ["mean"] + [f"iter {n}" for n in range(1, ITERATIONS + 1)] + ["exact@truth", "joint"]
    print("| data | statistic | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for key, v in res.items():
        for stat, f in (("rms", lambda x: np.sqrt(np.mean(x**2, axis=0))),
                        ("max", lambda x: x.max(axis=0))):  # fmt: skip
            print(f"| {key} | {stat} | " + " | ".join(f"{s:.3f}" for s in f(v)) + " |")


if __name__ == "__main__":
    main()

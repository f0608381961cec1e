"""Inference and Wiener SIM against this machine's limits, side by side in one run.

Measured in the same process, on the same threads:

- the FLOP floor: achieved fp32 GFLOP/s of a large 3x3 convolution (64 -> 64 channels) and
  of an sgemm; the network's FLOPs of a tiled run (every convolution and transposed
  convolution, 2 x MACs, counted by forward hooks on the tiles as they are cut: the halo's
  recomputation included); floor = FLOPs / conv GFLOP/s;
- Res-U-DBPN (small) on an N x N image: the old path (fp32, tile 256, one tile per pass) and
  the new default (``networks.precision``/``tile``/``batch`` of :mod:`dps_stages.settings`);
- sparse deconvolution of the same image (``dps deconvolve --method sparse`` defaults: 100
  split-Bregman iterations, 30 RL iterations with the Airy PSF);
- Wiener SIM of a simulated N/2 x N/2 raw stack (an N x N output) against its transform
  floor: the time of the transforms it cannot avoid (9 frame FFTs on the camera grid, per
  angle one inverse and one forward FFT on the 2x grid to move the band, one inverse real
  FFT of the output), timed here; and its count of 2-D transforms.

Targets (issue 14): inference / sparse <= 0.5, inference / FLOP floor <= 2.5, Wiener SIM /
transform floor <= 3. ``BENCH_SIZE`` sets N (default 1024); ``BENCH_THREADS`` the threads.
Writes ``benchmarks/out/bench_inference.json``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the dps command (dps_stages.cli)
import numpy as np  # noqa: E402
import scipy.fft
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import best_of, machine  # noqa: E402
from fft_count import counting_ffts  # noqa: E402

from dps_stages import inference, nets  # noqa: E402
from dps_stages.settings import DEFAULTS  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


def conv_gflops(device: torch.device, size: int = 256, width: int = 64) -> float:
    """Achieved fp32 GFLOP/s of a 3x3 convolution, ``width`` -> ``width`` channels."""
    x = torch.rand(1, width, size, size, device=device)
    w = torch.rand(width, width, 3, 3, device=device)

    def run() -> None:
        torch.nn.functional.conv2d(x, w, padding=1)
        if device.type == "cuda":
            torch.cuda.synchronize()

    run()
    t, _ = best_of(run, 3)
    return 2 * 9 * width * width * size * size / t / 1e9


def sgemm_gflops(device: torch.device, n: int = 2048) -> float:
    a, b = torch.rand(n, n, device=device), torch.rand(n, n, device=device)

    def run() -> None:
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()

    run()
    t, _ = best_of(run, 3)
    return 2 * n**3 / t / 1e9


def count_flops(model: torch.nn.Module, run) -> float:
    """FLOPs (2 x multiply-adds) of every convolution ``run()`` makes through ``model``."""
    total = [0.0]

    def hook(mod, inp, out) -> None:
        x = inp[0]
        if isinstance(mod, torch.nn.ConvTranspose2d):  # each input pixel: k^2 Cout MACs
            k = mod.kernel_size[0] * mod.kernel_size[1]
            total[0] += (
                2.0 * x.shape[0] * x.shape[1] * x.shape[2] * x.shape[3] * k * mod.out_channels
            )
        else:
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            total[0] += 2.0 * out.numel() * k

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)
    ]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return total[0]


def infer(model, image: np.ndarray, precision: str, tile: int, batch: int) -> float:
    inference.set_precision(model, precision)
    out = inference.predict(model, image[None], tile=tile, batch=batch)
    t0 = time.perf_counter()
    out.compute(scheduler="synchronous")
    return time.perf_counter() - t0


def sim_floor(n: int) -> float:
    """Time of the transforms Wiener SIM cannot avoid at camera size n (see the docstring),
    on as many threads as the reconstruction's own transforms (``workers``)."""
    from dps_stages.sim.reconstruction import _WORKERS as w

    rng = np.random.default_rng(0)
    frames = rng.random((9, n, n), dtype=np.float32)
    band = (rng.random((2 * n, 2 * n)) + 1j * rng.random((2 * n, 2 * n))).astype(np.complex64)
    half = band[:, : n + 1]

    def run() -> None:
        scipy.fft.fft2(frames, axes=(-2, -1), workers=w)
        for _ in range(3):
            scipy.fft.fft2(scipy.fft.ifft2(band, workers=w), workers=w)
        scipy.fft.irfft2(half, s=(2 * n, 2 * n), workers=w)

    run()
    t, _ = best_of(run, 3)
    return t


def main() -> dict:
    n = int(os.environ.get("BENCH_SIZE", "1024"))
    threads = int(os.environ.get("BENCH_THREADS", str(torch.get_num_threads())))
    torch.set_num_threads(threads)
    device = inference.select_device("auto")
    res: dict = {"machine": machine(), "threads": threads, "size": n, "device": str(device)}
    res["conv3x3_gflops"] = conv_gflops(device)
    res["sgemm_gflops"] = sgemm_gflops(device)

    from dps_stages.deconvolution import sparse_hessian
    from dps_stages.optics import airy_psf

    rng = np.random.default_rng(1)
    from scipy import ndimage

    image = ndimage.gaussian_filter(rng.random((n, n)), 2.0).astype(np.float32)
    image = (image - image.min()) / np.ptp(image)

    torch.manual_seed(0)
    model = nets.build("resudbpn", nets.default_arch("resudbpn")).eval().to(device)
    net = DEFAULTS.networks
    paths = {"old": ("fp32", 256, 1), "new": (net.precision, net.tile, net.batch)}
    for name, (precision, tile, batch) in paths.items():
        inference.set_precision(model, "fp32")
        flops = count_flops(
            model,
            lambda t=tile, b=batch: inference.predict(model, image[None], tile=t, batch=b).compute(
                scheduler="synchronous"
            ),
        )
        infer(model, image[: n // 4, : n // 4], precision, tile, batch)  # warm-up
        t = min(infer(model, image, precision, tile, batch) for _ in range(2))
        floor = flops / (res["conv3x3_gflops"] * 1e9)
        res[f"inference_{name}"] = {
            "precision": precision, "tile": tile, "batch": batch, "seconds": t,
            "gflop": flops / 1e9, "flop_floor_s": floor, "over_floor": t / floor,
        }  # fmt: skip
    # the FLOPs of the whole image without tiles: the halo overhead of each path
    k = min(n, 256)
    whole = count_flops(model, lambda: inference.run_block(model, image[None, :k, :k]))
    res["network_flop_per_pixel"] = whole / (k * k)

    psf = airy_psf(31, 525.0, 1.4, 65.0)
    sp = DEFAULTS.deconvolution.sparse
    t_sparse, _ = best_of(
        lambda: sparse_hessian(
            image[None],
            psf=psf,
            fidelity=sp.fidelity,
            sparsity=sp.sparsity,
            iterations=sp.iterations,
        ),  # fmt: skip
        1,
    )
    res["sparse_seconds"] = t_sparse
    for name in ("old", "new"):
        res[f"inference_{name}"]["over_sparse"] = res[f"inference_{name}"]["seconds"] / t_sparse

    from dps_stages import sim
    from dps_stages.optics import Optics
    from dps_stages.simulate import simulate_sample

    optics = Optics(wavelength=525.0, na=1.4, pixel_size=65.0)
    raw = simulate_sample("microtubules", n // 2, optics, np.random.default_rng(2), levels=[500])
    frames = raw["raw"][0]
    sim.reconstruct(frames, optics)  # warm-up
    with counting_ffts() as counts:
        sim.reconstruct(frames, optics)
    t_sim, _ = best_of(lambda: sim.reconstruct(frames, optics), 2)
    t_floor = sim_floor(n // 2)
    res["sim"] = {
        "seconds": t_sim, "transform_floor_s": t_floor, "over_floor": t_sim / t_floor,
        "transforms_2d": sum(counts.values()), "floor_transforms_2d": 9 + 6 + 1,
    }  # fmt: skip
    return res


def report(res: dict) -> str:
    lines = [
        f"{res['machine']}; {res['threads']} threads; device {res['device']}; "
        f"image {res['size']}^2",
        f"FLOP floor: conv3x3 {res['conv3x3_gflops']:.0f} GFLOP/s, sgemm "
        f"{res['sgemm_gflops']:.0f} GFLOP/s; Res-U-DBPN small "
        f"{res['network_flop_per_pixel'] / 1e3:.1f} kFLOP per input pixel without tiles",
    ]
    for name in ("old", "new"):
        r = res[f"inference_{name}"]
        lines.append(
            f"inference {name} ({r['precision']}, tile {r['tile']}, batch {r['batch']}): "
            f"{r['seconds']:.2f} s, {r['gflop']:.0f} GFLOP (halo incl.), "
            f"/ FLOP floor {r['over_floor']:.2f} (target <= 2.5), / sparse {r['over_sparse']:.2f} "
            "(target <= 0.5)"
        )
    lines.append(f"sparse deconvolution: {res['sparse_seconds']:.2f} s")
    s = res["sim"]
    lines.append(
        f"Wiener SIM: {s['seconds']:.2f} s, {s['transforms_2d']:.0f} 2-D transforms; floor "
        f"({s['floor_transforms_2d']} transforms) {s['transform_floor_s']:.3f} s; "
        f"/ floor {s['over_floor']:.1f} (target <= 3)"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    result = main()
    OUT.mkdir(exist_ok=True)
    (OUT / "bench_inference.json").write_text(json.dumps(result, indent=2))
    print(report(result))

"""Peak memory of the streaming commands at two image sizes (issue 14, "streaming on every path").

For each command and format (TIFF and Zarr in, the same format out) this makes a synthetic
input in a temporary folder, runs ``dps <command>`` in a child process and reads the child's
peak resident set size from ``os.wait4`` (``ru_maxrss``, the figure ``/usr/bin/time -v``
prints). It prints one row per command and format: peak at the small size, at the large size,
and their ratio (the goal: at most 1.5).

Memory does not depend on the number of iterations (each tile holds the same buffers), so the
deconvolutions run with few iterations (``--iterations 3``) to keep the run short. SIM runs
on 9-frame stacks of ``SIZE / 2`` per frame (1024² and 4096² by default): the reconstruction's
output is on the 2x grid, i.e. the same size as the other commands' outputs.

Usage: ``python benchmarks/bench_memory.py [--small 2048] [--large 8192] [--only background,rl]``
(commands: background, rl, sparse, sim, infer; formats: tif, zarr).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import dask.array as da
import numpy as np

from dps_stages import io

PIXEL = 65.0
COMMANDS = ("background", "rl", "sparse", "sim", "infer")


def _widefield_block(block_info=None) -> np.ndarray:
    """One tile of a synthetic widefield image: blurred random points on a background,
    Poisson noise; each tile from its own seed (tile location)."""
    from scipy import ndimage as ndi

    info = block_info[None]
    (y0, y1), (x0, x1) = info["array-location"]
    rng = np.random.default_rng([y0, x0, 14])
    obj = np.zeros((y1 - y0, x1 - x0), np.float32)
    n = obj.size // 200
    obj[rng.integers(0, y1 - y0, n), rng.integers(0, x1 - x0, n)] = rng.random(n) * 500
    img = ndi.gaussian_filter(obj, 1.3) + 20.0
    return rng.poisson(img).astype(np.float32)


def _chunks(size: int, tile: int) -> tuple[int, ...]:
    return (tile,) * (size // tile) + ((size % tile,) if size % tile else ())


def widefield(size: int) -> da.Array:
    return da.map_blocks(_widefield_block, chunks=(_chunks(size, 1024),) * 2,
                         dtype=np.float32, meta=np.empty((0, 0), np.float32))  # fmt: skip


def _sim_block(block_info=None) -> np.ndarray:
    """One tile of 9 synthetic raw 2D-SIM frames: ``h * (x (1 + m cos(2 pi k.r + phi)))`` with
    the pattern in image coordinates (so tiles join), ``h`` a Gaussian of the Airy width."""
    from scipy import ndimage as ndi

    info = block_info[None]
    _, (y0, y1), (x0, x1) = info["array-location"]
    rng = np.random.default_rng([y0, x0, 9])
    obj = np.zeros((y1 - y0, x1 - x0), np.float32)
    n = obj.size // 100
    obj[rng.integers(0, y1 - y0, n), rng.integers(0, x1 - x0, n)] = rng.random(n) * 300
    obj = ndi.gaussian_filter(obj, 0.7) + 2.0
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    frames = np.empty((9,) + obj.shape, np.float32)
    freq = 0.8 * 2 * 1.4 / 525.0 * PIXEL  # 0.8 of the OTF cutoff, cycles per pixel
    for a in range(3):
        angle = np.deg2rad(15 + 60 * a)
        ky, kx = freq * np.sin(angle), freq * np.cos(angle)
        for p in range(3):
            pattern = 1 + 0.8 * np.cos(2 * np.pi * (ky * yy + kx * xx) + 2 * np.pi * p / 3)
            blurred = ndi.gaussian_filter(obj * pattern, 1.3)
            frames[3 * a + p] = rng.poisson(blurred * 10).astype(np.float32) + 100
    return frames


def sim_raw(size: int) -> da.Array:
    return da.map_blocks(_sim_block, chunks=((9,),) + (_chunks(size, 512),) * 2,
                         dtype=np.float32, meta=np.empty((0, 0, 0), np.float32))  # fmt: skip


def make_input(kind: str, size: int, fmt: str, folder: Path) -> Path:
    path = folder / f"{kind}_{size}.{'tif' if fmt == 'tif' else 'zarr'}"
    if path.exists():
        return path
    arr = sim_raw(size) if kind == "sim" else widefield(size)
    if fmt == "tif":
        io.write_tiff(path, arr, PIXEL)
    else:
        io.write_stage(path, arr, {"pixel_size": PIXEL})
    return path


def make_model(folder: Path) -> Path:
    """An untrained Res-U-DBPN (the default architecture): memory does not depend on weights."""
    import torch

    from dps_stages.inference import save_model
    from dps_stages.nets import build

    path = folder / "model_resudbpn"
    if not path.exists():
        path.mkdir()
        torch.manual_seed(0)
        save_model(path / "model.pt", "resudbpn", build("resudbpn", {}), {"origin": "bench"})
    return path


def peak_rss(argv: list[str]) -> tuple[float, float]:
    """Peak RSS (MB) and wall time (s) of a child process running ``argv``.

    The child's stderr goes to a temporary file, read once it has exited: a pipe read only
    after ``os.wait4`` would fill (64 KiB: about 100 s of the progress bar) and block the
    child's next write for ever, the parent waiting for it to exit.
    """
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        err = log.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{err[-2000:]}")
    return usage.ru_maxrss / 1024.0, time.perf_counter() - t0


def command(name: str, size: int, fmt: str, folder: Path) -> list[str]:
    dps = [shutil.which("dps") or "dps"]
    out = folder / f"out_{name}_{size}.{'tif' if fmt == 'tif' else 'zarr'}"
    if name == "sim":
        src = make_input("sim", size // 2, fmt, folder)
        return dps + ["sim-reconstruct", str(src), str(out), "--otf-decay", "1"]
    src = make_input("wf", size, fmt, folder)
    if name == "background":
        return dps + ["background", str(src), str(out)]
    if name in ("rl", "sparse"):
        return dps + ["deconvolve", str(src), str(out), "--method", name, "--iterations", "3"]
    if name == "infer":
        return dps + ["infer", "resudbpn", str(src), str(out), "--model", str(make_model(folder))]
    raise ValueError(name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=2048)
    ap.add_argument("--large", type=int, default=8192)
    ap.add_argument("--only", default=",".join(COMMANDS))
    ap.add_argument("--formats", default="tif,zarr")
    ap.add_argument("--workdir", type=Path, default=None, help="keep inputs here")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory() if args.workdir is None else None
    folder = Path(tmp.name) if tmp else args.workdir
    folder.mkdir(parents=True, exist_ok=True)
    print(f"| command | format | {args.small}² MB | {args.large}² MB | ratio | seconds |")
    print("|---|---|---|---|---|---|")
    for name in args.only.split(","):
        for fmt in args.formats.split(","):
            figures = []
            for size in (args.small, args.large):
                argv = command(name, size, fmt, folder)
                figures.append(peak_rss(argv))
                for p in folder.glob("out_*"):  # free the disk between runs
                    subprocess.run(["rm", "-rf", str(p)], check=True)
            (a, ta), (b, tb) = figures
            print(f"| {name} | {fmt} | {a:.0f} | {b:.0f} | {b / a:.2f} | {ta:.0f} / {tb:.0f} |",
                  flush=True)  # fmt: skip
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()

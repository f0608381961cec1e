#!/usr/bin/env bash
# One GPU, under 10 minutes: train the paper-scale Res-U-DBPN and PSF-identification networks
# with `dps train` (--scale paper), time Res-U-DBPN inference at 2048^2 and 8192^2 (tiled,
# batched, AMP), run benchmarks/bench_inference.py, and write the figures to
# benchmarks/out/gpu/results.txt (and the JSON of each step beside it).
#
#   bash benchmarks/gpu.sh                 # on a GPU machine, from the repository root
#   GPU_SMOKE=1 bash benchmarks/gpu.sh     # CPU smoke check: tiny sizes and steps, same steps
#
# Budget knobs (environment): RESUDBPN_STEPS, PSFID_STEPS, SIZES ("2048 8192"), TILE, BATCH.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=benchmarks/out/gpu
mkdir -p "$OUT"
RESULTS="$OUT/results.txt"

if [[ "${GPU_SMOKE:-0}" == 1 ]]; then
  SCALE=small; RESUDBPN_STEPS=${RESUDBPN_STEPS:-3}; PSFID_STEPS=${PSFID_STEPS:-3}
  SIZES=${SIZES:-"256 512"}; TILE=${TILE:-128}; BATCH=${BATCH:-2}; SIM_SIZE=32; BATCH_TRAIN=2
  PATCH=32; BENCH_SIZE=128
else
  SCALE=paper; RESUDBPN_STEPS=${RESUDBPN_STEPS:-1000}; PSFID_STEPS=${PSFID_STEPS:-2000}
  SIZES=${SIZES:-"2048 8192"}; TILE=${TILE:-1024}; BATCH=${BATCH:-8}; SIM_SIZE=128
  BATCH_TRAIN=16; PATCH=128; BENCH_SIZE=1024
fi
DEVICE=${DEVICE:-auto}

{
  echo "# benchmarks/gpu.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) smoke=${GPU_SMOKE:-0} scale=$SCALE"
  python - <<'PY'
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu only")
PY
} | tee "$RESULTS"

t0=$(date +%s.%N)
dps simulate "$OUT/train.zarr" --split train --seed 11 --size "$SIM_SIZE" \
  --structures microtubules,ccps,er,actin --n-per-structure 2 --levels 100,1000 > "$OUT/simulate.log" 2>&1
t1=$(date +%s.%N)
dps train resudbpn "$OUT/resudbpn" --data "$OUT/train.zarr" --psf sr --scale "$SCALE" \
  --steps "$RESUDBPN_STEPS" --batch "$BATCH_TRAIN" --patch "$PATCH" --device "$DEVICE" \
  > "$OUT/train_resudbpn.log" 2>&1
t2=$(date +%s.%N)
dps train psfid "$OUT/psfid" --scale "$SCALE" --steps "$PSFID_STEPS" --batch "$BATCH_TRAIN" \
  --device "$DEVICE" > "$OUT/train_psfid.log" 2>&1
t3=$(date +%s.%N)
python - "$t0" "$t1" "$t2" "$t3" "$RESUDBPN_STEPS" "$PSFID_STEPS" <<'PY' | tee -a "$RESULTS"
import sys
t0, t1, t2, t3 = map(float, sys.argv[1:5])
print(f"simulate training split: {t1 - t0:.1f} s")
print(f"train resudbpn ({sys.argv[5]} steps): {t2 - t1:.1f} s")
print(f"train psfid ({sys.argv[6]} steps): {t3 - t2:.1f} s")
PY

# inference timings: the trained paper-scale model, fp32 (exact path) and the AMP default
python - "$OUT/resudbpn" "$TILE" "$BATCH" "$DEVICE" $SIZES <<'PY' | tee -a "$RESULTS"
import json, sys, time
import numpy as np, torch
from dps_stages import inference
path, tile, batch, device = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
dev = inference.select_device(device)
rows = []
for n in map(int, sys.argv[5:]):
    image = np.random.default_rng(0).random((1, n, n), dtype=np.float32)
    for precision in ("fp32", "auto"):
        model, _ = inference.load_model(path, expect="resudbpn", device=dev, precision=precision)
        inference.predict(model, image[:, :tile, :tile], tile=tile, batch=batch).compute(
            scheduler="synchronous")  # warm-up (kernels, autotuning)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        inference.predict(model, image, tile=tile, batch=batch).compute(scheduler="synchronous")
        if dev.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t
        rows.append({"size": n, "precision": precision, "tile": tile, "batch": batch,
                     "seconds": dt, "mpix_per_s": n * n / dt / 1e6})
        print(f"inference {n}^2 {precision} (tile {tile}, batch {batch}): {dt:.2f} s, "
              f"{n * n / dt / 1e6:.1f} Mpixel/s")
json.dump(rows, open(path.rsplit("/", 1)[0] + "/inference.json", "w"), indent=2)
PY

BENCH_SIZE=$BENCH_SIZE python benchmarks/bench_inference.py | tee -a "$RESULTS"
cp benchmarks/out/bench_inference.json "$OUT/" 2>/dev/null || true
echo "results: $RESULTS"

"""Step 2: per-level table of the classical anomaly (issue 12 item 5).

For each level of the real TIRF-SIM data, as the DAG computes it (rolling ball, then Wiener
SIM with the real_data.yaml settings): mean ADU, estimated pattern (|k|, angle, phases,
modulation, significance), the auto Wiener parameter, the shift of the level's widefield
against GT's (camera px) and against the reference widefield, and SSIM against
reference/TIRF_SIM_640_1.tif before and after registration, with the level's own and with
GT's pattern parameters. Writes anomaly_table.json to the cache and prints markdown.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from skimage.metrics import structural_similarity

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.anomaly_common import (  # noqa: E402
    CACHE,
    LEVELS,
    OPTICS,
    SIM_KW,
    raw,
    raw_bg,
    reference,
    vdl,
    widefield_reference,
)
from dps_stages.metrics import compare, fit_scale_offset, normalise_percentile  # noqa: E402
from dps_stages.register import estimate_shift, register  # noqa: E402
from dps_stages.sim import auto_wiener, fourier_upsample, reconstruct_stack  # noqa: E402


def bin2(img: np.ndarray) -> np.ndarray:
    n, m = img.shape
    return img.reshape(n // 2, 2, m // 2, 2).mean(axis=(1, 3))


def split_ssim(cand: np.ndarray, ref: np.ndarray) -> tuple[float, float, float]:
    """SSIM over the reference's zero (clipped) pixels and the rest, and the LS fit scale."""
    r = normalise_percentile(ref).astype(np.float64)
    c = normalise_percentile(cand)
    fitted = fit_scale_offset(c, r)
    _, smap = structural_similarity(r, fitted, data_range=1.0, full=True)
    z = r == 0
    scale = float(np.polyfit(c.ravel(), r.ravel(), 1)[0])
    return float(smap[z].mean()), float(smap[~z].mean()), scale


def scores(img: np.ndarray, ref: np.ndarray, shift=None) -> dict:
    """SSIM/PSNR unregistered and registered to the reference (shift estimated on the
    image itself unless given), the latter over the whole image and over the overlap."""
    out = {"ssim": compare(img, ref)["ssim"], "psnr": compare(img, ref)["psnr"]}
    reg = register(img, ref, shift=shift)
    rows, cols = reg.valid
    out["shift_sim_px"] = reg.shift
    out["ssim_reg"] = compare(reg.image, ref)["ssim"]
    out["psnr_reg"] = compare(reg.image, ref)["psnr"]
    out["ssim_reg_overlap"] = compare(reg.image[rows, cols], ref[rows, cols])["ssim"]
    bg, fg, scale = split_ssim(img, ref)
    bgr, fgr, scaler = split_ssim(reg.image, ref)
    out.update(ssim_bg=bg, ssim_fg=fg, scale=scale, ssim_bg_reg=bgr, ssim_fg_reg=fgr,
               scale_reg=scaler)  # fmt: skip
    return out


def main() -> None:
    ref = reference()
    wf_ref = bin2(widefield_reference())
    gt_mean = raw("GT").mean(axis=0)
    gt_params = None
    table = {}
    for level in ["GT", *LEVELS[:-1]]:
        r = raw(level)
        bg = raw_bg(level)
        mean = r.mean(axis=0)
        row: dict = {"mean_adu": float(r.mean()), "mean_bg": float(bg.mean()),
                     "min_adu": float(r.min()), "max_adu": float(r.max()),
                     "p0.5_adu": float(np.percentile(r, 0.5)),
                     "frame_means": r.mean(axis=(1, 2)).tolist()}  # fmt: skip
        row["shift_vs_gt_cam_px"] = estimate_shift(mean, gt_mean)[0].tolist()
        row["shift_vs_wfref_cam_px"] = estimate_shift(mean, wf_ref)[0].tolist()
        row["corr_vs_gt"] = float(np.corrcoef(mean.ravel(), gt_mean.ravel())[0, 1])
        w0 = auto_wiener(bg, OPTICS, otf_decay=SIM_KW["otf_decay"])
        row["wiener"] = SIM_KW["wiener_factor"] * w0
        img, params = reconstruct_stack(bg, OPTICS, **SIM_KW)
        img = img[0]
        p = params[0]
        if level == "GT":
            gt_params = p
        row["params"] = p.to_dict()
        row["phase_steps_deg"] = np.degrees(p.phase_steps).tolist()
        row["own"] = scores(img, ref)
        gimg, _ = reconstruct_stack(bg, OPTICS, params=gt_params, **SIM_KW)
        row["gt_params"] = scores(gimg[0], ref)
        # widefield of the level, Fourier-upsampled to the reference grid (no SIM)
        wf = fourier_upsample(bg.mean(axis=0), 2)
        row["widefield"] = scores(wf, ref)
        row["vdl"] = scores(vdl(level), ref)
        table[level] = row
        o = row["own"]
        print(
            f"{level:>4} mean {row['mean_adu']:6.1f} w {row['wiener']:.4f} shift_gt "
            f"{np.round(row['shift_vs_gt_cam_px'], 2)} SSIM {o['ssim']:.3f} reg "
            f"{o['ssim_reg']:.3f} GTp {row['gt_params']['ssim']:.3f}/"
            f"{row['gt_params']['ssim_reg']:.3f} WF {row['widefield']['ssim_reg']:.3f} "
            f"VDL {row['vdl']['ssim']:.3f}/{row['vdl']['ssim_reg']:.3f}",
            flush=True,
        )
    (CACHE / "anomaly_table.json").write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()

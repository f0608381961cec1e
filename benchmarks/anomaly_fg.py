"""Step 4 check: SSIM split by the reference's clipped background (issue 12 item 5).

For the DAG's Wiener (rolling ball first) and Wiener on the raw frames, registered to the
reference and scored over the image less a 16-px border: the mean of the SSIM map over the
pixels where the normalised reference is 0 (bg, 44.5 %) and over the rest (fg), with the fit
over all pixels (current protocol) and the censored fit; the fraction of the fitted candidate
clipped to 0 in the reference's zero region (censored fit).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from skimage.metrics import structural_similarity

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.anomaly_common import LEVELS, OPTICS, SIM_KW, raw, raw_bg, reference  # noqa: E402
from dps_stages import sim  # noqa: E402
from dps_stages.metrics import fit_scale_offset, normalise_percentile  # noqa: E402
from dps_stages.register import register  # noqa: E402

INNER = (slice(16, -16), slice(16, -16))


def main() -> None:
    ref = reference()
    r = normalise_percentile(ref[INNER]).astype(np.float64)
    z = r == 0
    print(
        "| level | DAG bg / fg (all-pixel fit) | raw-frames bg / fg (all-pixel fit) | "
        "DAG bg / fg (censored) | raw-frames bg / fg (censored) | clipped bg: DAG / raw |"
    )
    print("|---|---|---|---|---|---|")
    for level in LEVELS:
        cells, clipped = [], []
        maps = {}
        for name, frames in (("dag", raw_bg(level)), ("raw", raw(level))):
            img = sim.reconstruct(frames, OPTICS, **SIM_KW)[0]
            c = normalise_percentile(register(img, ref).image[INNER]).astype(np.float64)
            _, m_all = structural_similarity(r, fit_scale_offset(c, r), data_range=1.0, full=True)
            a, b = np.polyfit(c[~z], r[~z], 1)
            f = np.clip(a * c + b, 0.0, 1.0)
            _, m_cen = structural_similarity(r, f, data_range=1.0, full=True)
            maps[name] = (m_all, m_cen)
            clipped.append(float(np.mean(f[z] == 0)))
        for k in (0, 1):
            for name in ("dag", "raw"):
                m = maps[name][k]
                cells.append(f"{m[z].mean():.3f} / {m[~z].mean():.3f}")
        print(
            f"| {level} | " + " | ".join(cells) + f" | {clipped[0]:.2f} / {clipped[1]:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()

"""Figure of a calibration: photon transfer, band ratio, radial spectrum, haze map, pupil."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..sim import otf_values
from .core import Calibration

__all__ = ["plot_calibration"]


def _photon_transfer(fig, ax, calib: Calibration) -> str:
    cam = calib.camera
    if cam.points is not None and cam.points.size:
        mu, var = cam.points
        ax.plot(mu, var, ".", ms=2, alpha=0.4, label="tiles")
        xs = np.linspace(min(mu.min(), cam.offset), mu.max(), 50)
        ax.plot(xs, cam.gain * xs + cam.intercept, "r-", label="fit")
        ax.axvline(cam.offset, color="k", ls=":", label="offset")
    return (
        f"g={cam.gain:.3g}±{cam.gain_sigma:.2g} ADU/e-, b={cam.offset:.4g}±{cam.offset_sigma:.2g}"
        f"\nread noise {cam.read_noise:.3g}±{cam.read_noise_sigma:.2g} e-"
        + (f", signal {min(cam.photons):.3g}-{max(cam.photons):.3g} e-" if cam.photons else "")
    )


def _band_ratio(fig, ax, calib: Calibration) -> str:
    otf = calib.otf
    if otf.ratio is not None and len(otf.ratio):
        dq, rr, ss = otf.ratio.T
        good = ss < 0.5 * np.maximum(np.abs(rr), 1e-3) + 0.5
        ax.errorbar(dq[good], rr[good], ss[good], fmt=".", ms=3, alpha=0.5, elinewidth=0.5)
        xs = np.linspace(dq.min(), dq.max(), 50)
        if np.isfinite(otf.attenuation):
            ax.plot(xs, otf.attenuation**xs, "r-", label=f"a^dq, a={otf.attenuation:.3g}")
        ax.plot(xs, np.ones_like(xs), "k:", label="ideal (a=1)")
        ax.set_yscale("log")
    return (
        f"band overlap: a={otf.attenuation:.3g}±{otf.attenuation_sigma:.2g}, "
        f"m={', '.join(f'{v:.2f}' for v in otf.modulation[:3])}"
    )


def _spectrum(fig, ax, calib: Calibration) -> str:
    otf = calib.otf
    if otf.radial is not None:
        qc, prad = otf.radial
        ax.semilogy(qc, prad, "k.", ms=3, label="data (widefield)")
        ax.axhline(otf.noise_floor, color="gray", ls=":", label="noise floor")
        if np.isfinite(otf.object_slope):
            qq = qc[(qc > 0.02) & (qc < 1.0)]
            cut = calib.optics.cutoff_per_pixel
            for a, lab in ((otf.attenuation, "fit"), (1.0, "ideal OTF, same object")):
                o = otf_values(qq * cut, 0 * qq, cut, decay=a, pixel=True).astype(float)
                model = otf.amplitude * qq ** (-otf.object_slope) * o**2 + otf.noise_floor
                ax.semilogy(qq, model, "r-" if lab == "fit" else "b--", label=lab)
        ax.axvline(1.0, color="k", lw=0.5)
    return f"radial spectrum: beta={otf.object_slope:.2f}, support {otf.support_cutoff:.2f} f_c"


def _haze(fig, ax, calib: Calibration) -> str:
    hz = calib.haze
    if hz.map is not None:
        lo, hi = np.percentile(hz.map, [1, 99])  # the map's edges are extrapolated
        im = ax.imshow(hz.map, cmap="magma", vmin=lo, vmax=hi)
        fig.colorbar(im, ax=ax, fraction=0.046)
    return (
        f"haze {100 * hz.level:.1f}±{100 * hz.level_sigma:.1f} % of mean, "
        f"scale {hz.scale:.2g}±{hz.scale_sigma:.1g} um"
    )


def _pupil(fig, ax, calib: Calibration) -> str:
    from ..optics import zernike

    pu = calib.pupil
    if pu is None or not pu.determined:
        ax.set_axis_off()
        return "pupil: not determined"
    y, x = np.mgrid[-1:1:129j, -1:1:129j]
    rho, theta = np.hypot(y, x), np.arctan2(y, x)
    w = sum(c * zernike(j, np.minimum(rho, 1.0), theta) for j, c in pu.aberration.items())
    w = np.where(rho <= 1.0, w, np.nan)
    lim = max(float(np.nanmax(np.abs(w))), 1e-3)
    im = ax.imshow(w, cmap="RdBu_r", vmin=-lim, vmax=lim, extent=(-1, 1, -1, 1), origin="lower")
    fig.colorbar(im, ax=ax, fraction=0.046, label="waves")
    terms = ", ".join(
        f"Z{j} {c:+.3f}" for j, c in pu.aberration.items() if abs(c) >= 3 * pu.aberration_sigma[j]
    )
    return f"pupil wavefront, {pu.rms:.3f} waves rms\n{terms or 'no term above 3 sigma'}"


#: the panels: ``draw(fig, ax, calib)``, which plots (labelled lines get a legend) and returns
#: the title (the estimates), and the axis labels (None: an image, no axes labelled)
_PANELS: tuple[tuple[Callable[..., str], str | None, str | None], ...] = (
    (_photon_transfer, "tile mean (ADU)", "noise variance (ADU$^2$)"),
    (_band_ratio, "q1 - q0 (fraction of f_c)", "R / (m T_ideal)"),
    (_spectrum, "|f| / f_c", "power"),
    (_haze, None, None),
    (_pupil, None, None),
)


def plot_calibration(calib: Calibration, path: str | Path) -> Path:
    """Figure: photon transfer (tiles and fit), band ratio against ``a^dq``, radial spectrum
    against the fitted model, haze map, the fitted pupil's wavefront; estimates in the
    titles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dps_stages.plotting import save_png

    fig, axes = plt.subplots(1, len(_PANELS), figsize=(22, 4.2))
    for (draw, xlabel, ylabel), ax in zip(_PANELS, axes, strict=True):
        title = draw(fig, ax, calib)
        if xlabel is not None:
            ax.set(xlabel=xlabel, ylabel=ylabel)
        ax.set_title(title, fontsize=9)
        if ax.get_legend_handles_labels()[0]:  # a legend where the panel drew labelled data
            ax.legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, path)

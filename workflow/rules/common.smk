# Helpers shared by the rules: paths, dataset lookups and the stage chain. No rules here.
import re
import shlex

RESULTS = config["results"]
DATASETS = config["datasets"]
SIMULATED = [ds for ds, spec in DATASETS.items() if spec["source"] == "simulate"]
USER = [ds for ds in DATASETS if ds not in SIMULATED]
USER_RAW = [ds for ds in USER if DATASETS[ds]["kind"] == "raw"]
USER_IMAGE = [ds for ds in USER if ds not in USER_RAW]
SPLITS = ("train", "val", "test")


def name_regex(names):
    """A wildcard constraint matching exactly these names (or nothing when empty)."""
    return "|".join(re.escape(n) for n in names) if names else "(?!x)x"


wildcard_constraints:
    sim_ds=name_regex(SIMULATED),
    raw_ds=name_regex(USER_RAW),
    image_ds=name_regex(USER_IMAGE),
    split="|".join(SPLITS),
    level=r"[A-Za-z0-9.]+",
    ds=r"[A-Za-z0-9_.-]+",
    stage=r"[A-Za-z0-9_]+",


def level_key(level):
    """A signal level as it appears in paths and tables: 20.0 -> '20', 0.5 -> '0.5'."""
    return f"{float(level):g}"


def optics(ds):
    """The dataset's optics: the top-level optics, overridden key by key."""
    return {**config["optics"], **DATASETS[ds].get("optics", {})}


def input_kind(ds):
    return "raw" if ds in SIMULATED else DATASETS[ds]["kind"]


def levels(ds):
    """Signal levels of a simulated dataset; a user's data is the single level 'input'."""
    if ds in SIMULATED:
        return [level_key(v) for v in DATASETS[ds]["simulate"]["levels"]]
    return ["input"]


def stage_chain(ds):
    """The stages of a dataset in DAG order, each with the stage its resolution gain is
    measured against (the widefield for every reconstruction from raw frames)."""
    kind = input_kind(ds)
    if kind == "raw":
        return [
            ("widefield", None),
            ("raw_bg", "widefield"),
            ("widefield_bg", "widefield"),
            ("widefield_rl", "widefield"),
            ("widefield_sparse", "widefield"),
            ("sim_wiener", "widefield"),
            ("sim_sparse", "sim_wiener"),
        ]
    if kind == "widefield":
        return [
            ("widefield", None),
            ("widefield_bg", "widefield"),
            ("widefield_rl", "widefield"),
            ("widefield_sparse", "widefield"),
        ]
    return [("sim", None), ("sim_bg", "sim"), ("sim_sparse", "sim")]


# deconvolution stages: name -> (method, PSF), their input by dataset kind below
DECONVOLUTION = {
    "widefield_rl": ("rl", "airy"),
    "widefield_sparse": ("sparse", "airy"),
    "sim_sparse": ("sparse", "sr"),
}


def deconvolution_input(ds, level, stage):
    if stage.startswith("widefield"):
        source = "widefield_bg"
    else:
        source = "sim_wiener" if input_kind(ds) == "raw" else "sim_bg"
    return stage_path(ds, level, source)


def final_stages(ds):
    """The images a user takes away (OME-Zarr and TIFF), later extended by the networks."""
    return {
        "raw": ["sim_wiener", "sim_sparse", "widefield_rl", "widefield_sparse"],
        "widefield": ["widefield_rl", "widefield_sparse"],
        "sim": ["sim_bg", "sim_sparse"],
    }[input_kind(ds)]


def optics_options(ds):
    opt = optics(ds)
    return shlex.join(
        str(a)
        for a in (
            "--wavelength", opt["wavelength"], "--na", opt["na"],
            "--modulation-factor", opt["modulation_factor"],
        )
    )  # fmt: skip


def stage_path(ds, level, stage):
    return f"{RESULTS}/{ds}/{level}/{stage}.zarr"


def truth_store(ds):
    return f"{RESULTS}/{ds}/simulate/test.zarr" if ds in SIMULATED else None


def simulate_args(ds, split):
    """Command-line options of `dps simulate` from the config."""
    sim = DATASETS[ds]["simulate"]
    opt = optics(ds)
    pat, noise = sim["pattern"], sim["noise"]
    n = {"train": sim["n_train"], "val": sim["n_val"], "test": sim["n_test"]}[split]
    args = [
        "--seed", config["seed"], "--structures", ",".join(sim["structures"]),
        "--n-per-structure", n, "--size", sim["size"],
        "--levels", ",".join(level_key(v) for v in sim["levels"]),
        "--pattern-frequency", pat["frequency"], "--modulation", pat["modulation"],
        "--angle-error", pat["angle_error"], "--phase-error", pat["phase_error"],
        "--read-noise", noise["read_noise"], "--gain", noise["gain"],
        "--offset", noise["offset"], "--bits", noise["bits"],
        "--salt-pepper", noise["salt_pepper"], "--tile", config["tile"],
        "--wavelength", opt["wavelength"], "--na", opt["na"],
        "--pixel-size", opt["pixel_size"], "--modulation-factor", opt["modulation_factor"],
    ]
    return shlex.join(str(a) for a in args)


def pixel_size_of_input(ds):
    """Pixel size of a user's input image: the camera's, or half of it for a SIM image."""
    px = optics(ds)["pixel_size"]
    return px / 2 if input_kind(ds) == "sim" else px


def evaluate_inputs(w):
    inputs = {name: stage_path(w.ds, w.level, name) for name, _ in stage_chain(w.ds)}
    if w.ds in SIMULATED:
        inputs["truth"] = truth_store(w.ds)
    return inputs


def stage_options(w, with_input=True):
    parts = []
    for name, source in stage_chain(w.ds):
        parts += ["--stage", name, stage_path(w.ds, w.level, name)]
        if with_input:
            parts.append(source or "-")
    if w.ds in SIMULATED:
        parts += ["--truth", truth_store(w.ds)]
    return shlex.join(parts)


def all_outputs():
    out = []
    for ds in DATASETS:
        out += [
            f"{RESULTS}/{ds}/metrics.tsv",
            f"{RESULTS}/{ds}/metrics_summary.tsv",
            f"{RESULTS}/{ds}/metrics.png",
        ]
        for level in levels(ds):
            out.append(f"{RESULTS}/{ds}/{level}/stages.png")
            for stage in final_stages(ds):
                out += [
                    f"{RESULTS}/{ds}/{level}/final/{stage}.ome.zarr",
                    f"{RESULTS}/{ds}/{level}/final/{stage}.tif",
                ]
    return out

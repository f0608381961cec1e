# Helpers shared by the rules: paths, dataset lookups and the stage chain. No rules here.
import glob
import hashlib
import json
import math
import os
import re
import shlex
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError

from dps_stages.figures import STAGE_GROUPS, group_stages
from dps_stages.nets.registry import MODELS, REGISTRY, SIM_NETWORKS

SCHEMAS = Path(workflow.basedir) / "workflow" / "schemas"
CONFIG_SCHEMA = str(SCHEMAS / "config.schema.yaml")
#: a dataset name: a safe path component, the pattern of `datasets`' names in the config schema
with open(CONFIG_SCHEMA) as _f:
    NAME_PATTERN = re.compile(
        yaml.safe_load(_f)["properties"]["datasets"]["propertyNames"]["pattern"]
    )
#: characters that make a `source` a glob (when no file of that exact name exists)
GLOB_MAGIC = re.compile(r"[*?[]")
#: extensions left out of a dataset name made from a file name (longest first)
IMAGE_SUFFIXES = (".ome.tiff", ".ome.tif", ".ome.zarr", ".tiff", ".tif", ".zarr")
#: sample sheet column -> key of a dataset's `optics`
SHEET_OPTICS = ("wavelength", "na", "pixel_size", "modulation_factor", "psf")


def is_glob(source):
    """A `source` holding `*`, `?` or `[` that names no existing path is a glob."""
    return source != "simulate" and bool(GLOB_MAGIC.search(source)) and not os.path.exists(source)


def acquisition_name(entry, pattern, match):
    """The dataset name of one match of a glob: the entry's name and the path components that
    the glob's wildcards matched, joined by '_' (image extensions dropped, characters outside
    [A-Za-z0-9_.-] replaced by '_'): `run1` with `/data/run1/*.tif` and `/data/run1/c 1.tif`
    gives `run1_c_1`."""
    parts = [m for p, m in zip(Path(pattern).parts, Path(match).parts) if GLOB_MAGIC.search(p)]
    last = parts[-1]
    for suffix in IMAGE_SUFFIXES:
        if last.lower().endswith(suffix) and len(last) > len(suffix):
            parts[-1] = last[: -len(suffix)]
            break
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "_".join([entry, *parts]))


def glob_datasets(entry, spec, where):
    """The datasets of one `datasets:` entry (or sample sheet row) whose source is a glob: one
    per matched path, in sorted order, each with the entry's other keys."""
    pattern = spec["source"]
    matches = sorted(glob.glob(pattern))
    if not matches:
        raise WorkflowError(f"{where}: source {pattern!r} is a glob that matches nothing")
    return {acquisition_name(entry, pattern, m): (m, {**spec, "source": m}) for m in matches}


def read_sample_sheet(path):
    """The datasets of a sample sheet (`samples:`, a TSV): one per row, as if written under
    `datasets:`. The table is checked against workflow/schemas/samples.schema.yaml (snakemake's
    validate, row by row); an error names the sheet, the row and the column."""
    import pandas as pd

    schema_file = SCHEMAS / "samples.schema.yaml"
    with open(schema_file) as f:
        schema = yaml.safe_load(f)
    if not os.path.isfile(path):
        raise WorkflowError(f"samples: the sample sheet {path!r} is not a file")
    table = pd.read_csv(path, sep="\t", dtype=str, comment="#", keep_default_na=False)
    table.columns = [c.strip() for c in table.columns]
    columns = schema["properties"]
    for column in schema["required"]:
        if column not in table.columns:
            raise WorkflowError(
                f"sample sheet {path}: column {column!r} is missing (required columns: "
                f"{', '.join(schema['required'])}; a tab-separated table with a header line)"
            )
    for column in table.columns:
        if column not in columns:
            raise WorkflowError(
                f"sample sheet {path}: column {column!r} is not a sample sheet column "
                f"(columns: {', '.join(columns)})"
            )
    # empty cells are absent; numbers and booleans are converted where they parse, so that a
    # cell that does not is reported by the schema at its own row
    table = table.map(lambda v: (v.strip() or None) if isinstance(v, str) else v)
    for column in table.columns:
        kind = columns[column].get("type")
        if kind == "number":
            table[column] = [_number(v) for v in table[column]]
        elif kind == "boolean":
            table[column] = [_boolean(v) for v in table[column]]
    rows = [f"row {i + 1} (line {i + 2})" for i in range(len(table))]
    seen = {}
    for row, name in zip(rows, table["name"]):
        if name is not None and name in seen:
            raise WorkflowError(
                f"sample sheet {path}, {row}, column 'name': {name!r} is also the name of "
                f"{seen[name]}; names must be unique"
            )
        seen[name] = row
    try:
        validate(table, str(schema_file))
    except WorkflowError as error:
        raise WorkflowError(_sheet_error(path, rows, error)) from None
    out = {}
    for row, record in zip(rows, table.to_dict("records")):
        record = {k: v for k, v in record.items() if v is not None and not pd.isna(v)}
        spec = {"source": record["source"], "kind": record["kind"]}
        spec_optics = {k: record[k] for k in SHEET_OPTICS if k in record}
        if spec_optics:
            spec["optics"] = spec_optics
        if "adapt" in record:
            spec["adapt"] = record["adapt"].split(",")
        if "self_supervised" in record:
            spec["self_supervised"] = record["self_supervised"]
        out[record["name"]] = (f"sample sheet {path}, {row}", spec)
    return out


def _number(value):
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return number if math.isfinite(number) else value


def _boolean(value):
    return {"true": True, "false": False}.get(value.lower(), value) if value else value


def _sheet_error(path, rows, error):
    """A row error of snakemake's validate as 'sheet, row, column: what is wrong'."""
    import jsonschema

    row = re.search(r"row (\d+)", str(error))
    where = f"sample sheet {path}, {rows[int(row.group(1))]}" if row else f"sample sheet {path}"
    err = error.__context__  # the schema's error, which snakemake's validate wraps
    if not isinstance(err, jsonschema.ValidationError):
        return f"{where}: {error}"
    if err.validator == "required":  # an empty cell of a required column
        missing = [c for c in err.validator_value if c not in err.instance]
        return f"{where}, column {missing[0]!r}: the cell is empty (a required column)"
    column = err.path[0] if err.path else None
    return f"{where}, column {column!r}: {err.message}" if column else f"{where}: {err.message}"


def expand_datasets(config):
    """Every dataset of the config, in order: the entries of `datasets:` then the rows of the
    sample sheet (`samples:`), a glob `source` standing for one dataset per matched path. Each
    name must match the schema's safe pattern and be unique; each spec is checked against the
    config schema (and given its defaults) as the entries of `datasets:` are; the datasets of a
    glob are copies of their checked entry with another source."""
    given = config.get("datasets") or {}
    entries = {name: (f"datasets.{name}", spec) for name, spec in given.items()}
    if config.get("samples"):
        rows = read_sample_sheet(config["samples"])
        # the rows as config datasets: the config schema's checks and defaults
        try:
            validate({**config, "datasets": {n: s for n, (_, s) in rows.items()}}, CONFIG_SCHEMA)
        except WorkflowError as error:
            raise WorkflowError(f"sample sheet {config['samples']}: {error}") from None
        for name, (where, spec) in rows.items():
            if name in entries:
                raise WorkflowError(
                    f"{where}: the name {name!r} is also a dataset of `datasets:` in the config"
                )
            entries[name] = (where, spec)
    out, origin = {}, {}
    for entry, (where, spec) in entries.items():
        if is_glob(spec["source"]):
            found = glob_datasets(entry, spec, where)
        else:
            found = {entry: (spec["source"], spec)}
        for name, (path, dataset) in found.items():
            if not NAME_PATTERN.fullmatch(name):
                raise WorkflowError(
                    f"{where}: the dataset name {name!r} made from {path!r} is not a safe name "
                    f"(pattern {NAME_PATTERN.pattern})"
                )
            if name in out:
                first_where, first_path = origin[name]
                raise WorkflowError(
                    f"dataset name {name!r} is made twice: from {first_path!r} ({first_where}) "
                    f"and from {path!r} ({where}); rename one of them"
                )
            out[name], origin[name] = dataset, (where, path)
    if not out:
        raise WorkflowError("the config names no dataset (datasets: and samples: are empty)")
    return out


RESULTS = config["results"]
NET = config["networks"]
#: the networks that train on a simulated split (the others draw their data on the fly)
NETWORK_NAMES = tuple(n for n, s in REGISTRY.items() if s.data != "generated")
# the networks train on simulation only: without a simulated dataset in the config, a hidden
# one (networks.simulate, top-level optics) provides the training splits and is not evaluated
TRAINING_DS = "_training"
DATASETS = expand_datasets(config)
if not any(s["source"] == "simulate" for s in DATASETS.values()) and any(
    NET[n]["model"] is None for n in NETWORK_NAMES
):
    DATASETS[TRAINING_DS] = {"source": "simulate", "simulate": NET["simulate"]}
EVALUATED = [ds for ds in DATASETS if ds != TRAINING_DS]
SIMULATED = [ds for ds, spec in DATASETS.items() if spec["source"] == "simulate"]
USER = [ds for ds in DATASETS if ds not in SIMULATED]
USER_RAW = [ds for ds in USER if DATASETS[ds]["kind"] == "raw"]
USER_IMAGE = [ds for ds in USER if ds not in USER_RAW]
SPLITS = ("train", "val", "test")


def settings_digest(*parts):
    """A short digest of config values, for a rule's `settings` param.

    Snakemake reruns a job whose params differ from those it recorded, but skips params
    computed by functions that take `input`, `output`, `threads` or `resources` (it treats
    them as derived from the inputs), as `train_files` does. A plain string param holding
    a digest of the config values a rule reads makes a change of those values rerun its jobs
    whatever form its other params take. The stage rules need none: each config value they
    read is a param of its own (a plain value or a function of the wildcards only), which
    Snakemake compares; only the training rules, whose options are built from the input,
    still carry a digest.
    """
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


#: the top-level optics and the seed, which every dataset's stages read. A dataset's own
#: entry is left out so that adding a dataset does not rerun the others; a change of its
#: source reruns its jobs through their inputs, a change of its optics override through the
#: params that pass it on (`optics`, `pixel_size`, `opts`: functions of the wildcards only,
#: which Snakemake compares).
DATA_SETTINGS = settings_digest(config["optics"], config["seed"])


def train_settings(net):
    """The config values a network's training reads: its own block, the shared network
    settings, the training dataset and the optics; for a network that reads Wiener images
    after background removal (its spec's inputs hold `sim_options`: artifact removal) also
    `sim` and `background` (devices, threads and tiles do not change the result)."""
    shared = {k: NET[k] for k in ("scale", "sim_method", "vgg16_weights", "simulate")}
    try:
        data = DATASETS[train_dataset()]
    except ValueError:  # every network has a model: the training rules are not used
        data = None
    reads_sim = "sim_options" in REGISTRY[net].inputs
    inputs = (config["sim"], config["background"]) if reads_sim else ()
    return settings_digest(NET[net], shared, data, DATA_SETTINGS, *inputs)


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
    group=name_regex([*STAGE_GROUPS, "other"]),


def level_key(level):
    """A signal level as it appears in paths and tables: 20.0 -> '20', 0.5 -> '0.5'."""
    return f"{float(level):g}"


def optics(ds):
    """The dataset's optics: the top-level optics, overridden key by key."""
    return {**config["optics"], **DATASETS[ds].get("optics", {})}


def input_kind(ds):
    return "raw" if ds in SIMULATED else DATASETS[ds]["kind"]


def check_levels():
    """Two signal levels with the same name in paths (6 significant digits) would share
    their outputs: refuse them before any job runs."""
    for ds in SIMULATED:
        values = DATASETS[ds]["simulate"]["levels"]
        names = [level_key(v) for v in values]
        if len(set(names)) < len(names):
            raise ValueError(
                f"datasets.{ds}.simulate.levels: {values} name the same level twice "
                f"({names}); levels must differ in their first 6 significant digits"
            )


def check_calibrations():
    """A simulation of a calibrated microscope names a user's raw dataset of this config."""
    for ds in SIMULATED:
        source = DATASETS[ds]["simulate"].get("calibration")
        raws = sorted(d for d in DATASETS if d not in SIMULATED and input_kind(d) == "raw")
        if source is not None and source not in raws:
            raise ValueError(
                f"datasets.{ds}.simulate.calibration: {source!r} is not a raw dataset of this "
                f"config with a path (raw datasets: {raws})"
            )


def levels(ds):
    """Signal levels of a simulated dataset; a user's data is the single level 'input'."""
    if ds in SIMULATED:
        return [level_key(v) for v in DATASETS[ds]["simulate"]["levels"]]
    return ["input"]


def stage_chain(ds):
    """The stages of a dataset in DAG order, each with the stage its resolution gain is
    measured against (the widefield for every reconstruction from raw frames)."""
    kind = input_kind(ds)
    # RL with the identified PSF: a row beside RL with the theory (blind datasets use it anyway)
    identified = [] if blind(ds) else [("widefield_rl_id", "widefield")]
    if kind == "raw":
        return [
            ("widefield", None),
            ("raw_bg", "widefield"),
            ("widefield_bg", "widefield"),
            ("widefield_rl", "widefield"),
            ("widefield_sparse", "widefield"),
            *identified,
            ("sim_wiener", "widefield"),
            ("sim_sparse", "sim_wiener"),
            ("raw_dn", "widefield"),
            ("sim_dn_wiener", "widefield"),
            ("sim_dps", "widefield"),
            ("sim_oidn", "widefield"),
            ("sim_ar", ARTIFACT_INPUT),
            ("sim_ar_bg", "sim_ar"),
            ("sim_dbpn", "sim_ar_bg"),
        ]
    if kind == "widefield":
        return [
            ("widefield", None),
            ("widefield_bg", "widefield"),
            ("widefield_rl", "widefield"),
            ("widefield_sparse", "widefield"),
            *identified,
            ("widefield_dbpn", "widefield_bg"),
        ]
    return [("sim", None), ("sim_bg", "sim"), ("sim_sparse", "sim"), ("sim_dbpn", "sim_bg")]


check_levels()
check_calibrations()
# the SIM reconstruction that artifact removal cleans, by config
ARTIFACT_INPUT = {"wiener": "sim_dn_wiener", "dps": "sim_dps", "oidn": "sim_oidn"}[
    NET["sim_method"]
]
# the network behind each SIM method (from the registry)
SIM_NETS = dict(SIM_NETWORKS)
# Wiener SIM stages and the background-removed frames they reconstruct
SIM_WIENER = {"sim_wiener": "raw_bg", "sim_dn_wiener": "raw_dn_bg"}


def net_stages(ds):
    """Network stages of a dataset: stage -> (network, input stage, model folder)."""
    kind = input_kind(ds)
    if kind == "raw":
        return {
            "raw_dn": ("denoise", "raw", model_dir("denoise")),
            # an adapted SIM network reconstructs the raw frames it was adapted on (its physics
            # loss stops at the camera's noise level: it denoises as it reconstructs)
            "sim_dps": ("sim", "raw" if "sim" in adapted(ds) else "raw_dn", model_dir("sim")),
            "sim_oidn": ("oidn", "raw" if "oidn" in adapted(ds) else "raw_dn", model_dir("oidn")),
            "sim_ar": ("artifact", ARTIFACT_INPUT, model_dir("artifact")),
            "sim_dbpn": ("resudbpn", "sim_ar_bg", model_dir("resudbpn")),
        }
    stage = f"{kind}_dbpn"
    return {stage: ("resudbpn", f"{kind}_bg", dbpn_model(ds))}


def dbpn_model(ds):
    """Res-U-DBPN for a user's widefield or SIM images: its own (self-supervised) or shared."""
    if DATASETS[ds].get("self_supervised"):
        return f"{RESULTS}/{ds}/model_resudbpn"
    return model_dir("resudbpn" if input_kind(ds) == "sim" else "resudbpn_widefield")


def model_dir(name):
    """A model folder: the config's trained model, else the DAG's training output."""
    return NET[MODELS[name]]["model"] or f"{RESULTS}/models/{name}"


def train_dataset():
    ds = NET["train_dataset"] or (SIMULATED[0] if SIMULATED else None)
    if ds is None or ds not in SIMULATED:
        raise ValueError(
            f"networks.train_dataset: {ds!r} is not a simulated dataset; the networks train on "
            "a simulated split (add one, or set networks.<net>.model to trained models)"
        )
    return ds


def train_options(net, ds=None, model=None):
    """`dps train <net>` options from the config, made from its spec: architecture, budget,
    its own loss weights and settings, the model variant's options, the optics."""
    spec, block = REGISTRY[net], NET[net]
    args = [
        "--scale", NET["scale"], "--steps", block["steps"], "--batch", block["batch"],
        "--patch", block["patch"], "--lr", block["lr"], "--seed", config["seed"],
        "--device", NET["device"], "--threads", NET["threads"],
    ]  # fmt: skip
    for term in spec.loss_terms:
        args += [term.flag, block["loss"][term.key]]
    for setting in spec.settings:
        args += [setting.flag, block[setting.key]]
    for key in ("width", "depth", "blocks"):
        if block[key] is not None:
            args += [f"--{key}", block[key]]
    if model is not None:  # a model folder of the training rule: its variant's options
        args += list(spec.variants[model])
    return f"{shlex.join(str(a) for a in args)} {optics_options(ds or train_dataset())}"


def train_options_of(net):
    """The `opts` param of `train_<net>`, the options of the model wildcard (wildcards only, so
    Snakemake compares it and a config edit reruns the training)."""
    return lambda w: train_options(net, model=w.model)


def blind(ds):
    """Blind mode: the dataset's PSF is identified from its widefield images."""
    if optics(ds)["psf"] != "identify":
        return False
    if input_kind(ds) == "sim":
        raise ValueError(
            f"datasets.{ds}.optics.psf: 'identify' needs widefield images (kind raw or "
            "widefield); a SIM image's PSF lies outside what the identification network learns"
        )
    return True


def identified_psf(ds, level, grid):
    """The identified PSF of a blind dataset: 'widefield' (camera grid) or 'sr' (SIM grid)."""
    return f"{RESULTS}/{ds}/{level}/psf/{grid}.tif"


def deconvolution_psf(ds, level, deconv):
    """The PSF option of a deconvolution stage: theory (airy, sr) or the identified file."""
    kind = DECONVOLUTION[deconv][1]
    if blind(ds) or kind == "identified":
        return identified_psf(ds, level, "sr" if kind == "sr" else "widefield")
    return kind


def deconvolve_inputs(w):
    """A deconvolution's input image and, in blind mode, its identified PSF."""
    inputs = {"image": store(deconvolution_input(w.ds, w.level, w.deconv))}
    if blind(w.ds) or DECONVOLUTION[w.deconv][1] == "identified":
        inputs["psf"] = deconvolution_psf(w.ds, w.level, w.deconv)
    return inputs


def sim_options():
    """`dps` options of the Wiener SIM settings, quoted (for the artifact training)."""
    sim = config["sim"]
    return shlex.join(
        str(a)
        for a in (
            "--wiener", sim["wiener"], "--wiener-factor", sim["wiener_factor"],
            "--otf-decay", sim["otf_decay"], "--local-wiener", sim["local_wiener"],
        )
    )  # fmt: skip


def sparse_options(w):
    """The sparse-Hessian weights of a sparse deconvolution stage; none for RL."""
    if DECONVOLUTION[w.deconv][0] != "sparse":
        return []
    sparse = config["deconvolution"]["sparse"]
    return ["--fidelity", sparse["fidelity"], "--sparsity", sparse["sparsity"]]


# deconvolution stages: name -> (method, PSF), their input by dataset kind below
DECONVOLUTION = {
    "widefield_rl": ("rl", "airy"),
    "widefield_sparse": ("sparse", "airy"),
    "sim_sparse": ("sparse", "sr"),
    # RL with the PSF identified by the network, beside RL with the theoretical PSF
    "widefield_rl_id": ("rl", "identified"),
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
        "raw": ["sim_wiener", "sim_sparse", "widefield_rl", "widefield_sparse", "sim_ar",
                "sim_dbpn"],
        "widefield": ["widefield_rl", "widefield_sparse", "widefield_dbpn"],
        "sim": ["sim_bg", "sim_sparse", "sim_dbpn"],
    }[input_kind(ds)]  # fmt: skip


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


#: the root metadata file of a Zarr v3 store
STORE_FILE = "zarr.json"


def store(path):
    """A Zarr store as a rule's input or output: its root metadata file `zarr.json`, a file of
    the format. A `directory()` output would get Snakemake's `.snakemake_timestamp` inside the
    store, a foreign file that readers warn about. Shell commands pass the store itself, a
    param made by `in_store` or `out_store`."""
    return os.path.join(path, STORE_FILE)


def store_dir(path):
    """The store of a `store()` path (for params and options that name the store)."""
    return os.path.dirname(path) if os.path.basename(path) == STORE_FILE else str(path)


def in_store(key=0):
    """A param: the store of a `store()` input (by name, or the first)."""
    return lambda w, input: store_dir(input[key])


def out_store(key=0):
    """A param: the store of a `store()` output (by name, or the first)."""
    return lambda w, output: store_dir(output[key])


def truth_store(ds):
    return f"{RESULTS}/{ds}/simulate/test.zarr" if ds in SIMULATED else None


def calibration_json(ds):
    """The calibration of a raw dataset's first level (the one that sets a simulation)."""
    return f"{RESULTS}/{ds}/{levels(ds)[0]}/calibration.json"


def covered_calibrations(w):
    """The calibrations whose photon counts a calibrated simulation's training and validation
    splits span (`simulate.training_levels: data`): those of every raw dataset."""
    if (
        w.split == "test"
        or not simulate_setting(w.sim_ds, "calibration")
        or simulate_setting(w.sim_ds, "training_levels") != "data"
    ):
        return []
    spreads = simulate_setting(w.sim_ds, "randomise")  # None: the defaults, photons included
    if spreads is not None and not spreads.get("photons"):
        return []
    raw = [ds for ds in DATASETS if ds not in SIMULATED and input_kind(ds) == "raw"]
    return [calibration_json(ds) for ds in raw]


def simulate_inputs(w):
    """A simulation of a calibrated microscope reads that dataset's calibration (and, for
    training data that span the user's photon counts, every raw dataset's)."""
    source = simulate_setting(w.sim_ds, "calibration")
    if not source:
        return {}
    return {"calibration": calibration_json(source), "cover": covered_calibrations(w)}


def simulate_calibration_options(w):
    """`--calibration FILE [--randomise SPREADS]`, quoted; empty without a calibration (a
    function of the wildcards only, so that Snakemake's params trigger compares it)."""
    source = simulate_setting(w.sim_ds, "calibration")
    if not source:
        return ""
    args = ["--calibration", calibration_json(source)]
    spreads = simulate_setting(w.sim_ds, "randomise")
    if spreads is not None:
        args += ["--randomise", ",".join(f"{k}={v}" for k, v in spreads.items()) or "none"]
    if cover := covered_calibrations(w):
        args += ["--cover", *cover]
    return shlex.join(str(a) for a in args)


def simulate_setting(ds, *keys):
    """A simulated dataset's setting, e.g. ``simulate_setting(ds, "noise", "gain")``."""
    value = DATASETS[ds]["simulate"]
    for key in keys:
        value = value[key]
    return value


def model_input_pixel_size(model):
    """nm per pixel of a model's input grid: the camera's (top-level optics); the SIM grid's
    (half) for artifact removal and the SIM Res-U-DBPN."""
    px = config["optics"]["pixel_size"]
    return px / 2 if model in ("artifact", "resudbpn") else px


def pixel_size_of_input(ds):
    """Pixel size of a user's input image: the camera's, or half of it for a SIM image."""
    px = optics(ds)["pixel_size"]
    return px / 2 if input_kind(ds) == "sim" else px


def evaluate_inputs(w):
    inputs = {name: store(stage_path(w.ds, w.level, name)) for name, _ in stage_chain(w.ds)}
    if w.ds in SIMULATED:
        inputs["truth"] = store(truth_store(w.ds))
    return inputs


def stage_options(w, with_input=True):
    """`--stage NAME PATH [INPUT]` of every stage and `--truth`: a list, quoted by `:q`."""
    parts = []
    for name, source in stage_chain(w.ds):
        parts += ["--stage", name, stage_path(w.ds, w.level, name)]
        if with_input:
            parts.append(source or "-")
    if w.ds in SIMULATED:
        parts += ["--truth", truth_store(w.ds)]
    return parts


def figure_groups(ds):
    """The stage figures of a dataset: group -> its stages (at most four per figure)."""
    return group_stages([name for name, _ in stage_chain(ds)])


def stage_figure_options(w):
    """`--stage NAME PATH` of the stages of one figure group, and `--truth`: a list."""
    parts = []
    for name in figure_groups(w.ds)[w.group]:
        parts += ["--stage", name, stage_path(w.ds, w.level, name)]
    if w.ds in SIMULATED:
        parts += ["--truth", truth_store(w.ds)]
    return parts


def trained_networks():
    """The shared networks the DAG uses: the DPS chain and OIDN for raw frames, Res-U-DBPN
    (one for SIM, one for widefield images) unless a dataset trains its own, and PSF
    identification where a widefield image is deconvolved."""
    nets = []
    for ds in EVALUATED:
        kind = input_kind(ds)
        if kind == "raw":
            nets += ["denoise", "sim", "artifact", "oidn", "resudbpn", "psfid"]
        elif not DATASETS[ds].get("self_supervised"):
            nets.append("resudbpn" if kind == "sim" else "resudbpn_widefield")
        if kind == "widefield":
            nets.append("psfid")
    return list(dict.fromkeys(nets))


def all_outputs():
    out = [f"{RESULTS}/models/figures/{net}_loss.png" for net in trained_networks()]
    if NET["bioimageio"]:
        out += [f"{RESULTS}/models/bioimageio/{net}.zip" for net in trained_networks()]
    if "oidn" in trained_networks():
        out.append(f"{RESULTS}/models/figures/oidn_psf.png")
    for ds in EVALUATED:
        out += [
            f"{RESULTS}/{ds}/metrics.tsv",
            f"{RESULTS}/{ds}/metrics_summary.tsv",
            f"{RESULTS}/{ds}/metrics.png",
            f"{RESULTS}/{ds}/metrics_summary.html",
        ]
        for level in levels(ds):
            out += [f"{RESULTS}/{ds}/{level}/stages/{g}.png" for g in figure_groups(ds)]
            if input_kind(ds) == "raw":
                out.append(f"{RESULTS}/{ds}/{level}/calibration.png")
            if "raw_dn" in net_stages(ds):
                out.append(f"{RESULTS}/{ds}/{level}/denoise_error.png")
            if input_kind(ds) != "sim":
                out.append(f"{RESULTS}/{ds}/{level}/psf/identified.png")
            for stage in final_stages(ds):
                out += [
                    store(f"{RESULTS}/{ds}/{level}/final/{stage}.ome.zarr"),
                    f"{RESULTS}/{ds}/{level}/final/{stage}.tif",
                ]
    return out


# network training and inference inputs


def train_data(w):
    ds = train_dataset()
    return {
        "data": store(f"{RESULTS}/{ds}/simulate/train.zarr"),
        "val": store(f"{RESULTS}/{ds}/simulate/val.zarr"),
    }


def train_inputs_of(net):
    """The input function of `train_<net>`: its data and what its spec's inputs name."""
    spec = REGISTRY[net]

    def inputs(w):
        out = train_data(w) if spec.data != "generated" else {}
        if "denoise_model" in spec.inputs:
            out["denoise"] = model_dir("denoise")
        if "sim_model" in spec.inputs and NET["sim_method"] in SIM_NETS:
            out["sim"] = model_dir(SIM_NETS[NET["sim_method"]])
        if "vgg16_weights" in spec.inputs and NET["vgg16_weights"]:
            out["vgg"] = NET["vgg16_weights"]
        return out

    return inputs


#: `dps train` option of each named input of a training rule
_TRAIN_FILE_FLAGS = {"data": "--data", "val": "--val", "denoise": "--denoise-model",
                     "sim": "--sim-model", "vgg": "--vgg16-weights"}  # fmt: skip


def train_files(w, input):
    """`dps train` options naming a training's input files, quoted."""
    args = []
    for key, flag in _TRAIN_FILE_FLAGS.items():
        if key in input.keys():
            args += [flag, store_dir(input[key])]
    return shlex.join(str(a) for a in args)


def train_sim_options(net):
    """Wiener SIM and background options for a network whose spec reads them, quoted."""
    if "sim_options" not in REGISTRY[net].inputs:
        return ""
    sim = config["sim"]
    args = [
        "--sim-method", NET["sim_method"], "--wiener", sim["wiener"],
        "--wiener-factor", sim["wiener_factor"], "--otf-decay", sim["otf_decay"],
        "--local-wiener", sim["local_wiener"],
        "--background-radius", config["background"]["radius"],
    ]  # fmt: skip
    return shlex.join(str(a) for a in args)


def calibration_input(ds, level):
    """The calibration the Wiener stage reads: with `sim.otf_decay: auto` only."""
    if config["sim"]["otf_decay"] != "auto":
        return []
    return f"{RESULTS}/{ds}/{level}/calibration.json"


def calibration_option(w):
    """`--calibration FILE` (quoted) when the Wiener stage reads the calibration."""
    path = calibration_input(w.ds, w.level)
    return shlex.join(["--calibration", path]) if path else ""


def adapted(ds):
    """The networks fine-tuned on each acquisition of a raw dataset (`datasets.<ds>.adapt`)."""
    return tuple(DATASETS[ds].get("adapt") or ()) if input_kind(ds) == "raw" else ()


def adapted_model(ds, level, net):
    return f"{RESULTS}/{ds}/{level}/models/{net}"


def infer_inputs(w):
    net, source, model = net_stages(w.ds)[w.net_stage]
    if net in adapted(w.ds):
        model = adapted_model(w.ds, w.level, net)
    inputs = {"image": store(stage_path(w.ds, w.level, source)), "model": model}
    if net == "denoise":  # the camera for the denoiser's error (SURE), raw data only
        inputs["calibration"] = f"{RESULTS}/{w.ds}/{w.level}/calibration.json"
    return inputs


def sure_option(w):
    """`--calibration FILE --seed N` (quoted) for the denoiser: its error measured by SURE
    under the calibrated camera, which the Wiener stage of its frames reads."""
    if net_stages(w.ds)[w.net_stage][0] != "denoise":
        return ""
    path = f"{RESULTS}/{w.ds}/{w.level}/calibration.json"
    return shlex.join(["--calibration", path, "--seed", str(config["seed"])])


def dbpn_own_inputs(w):
    inputs = {"image": store(stage_path(w.image_ds, "input", f"{input_kind(w.image_ds)}_bg"))}
    if blind(w.image_ds):  # widefield images only: blind() refuses SIM images
        inputs["psf"] = identified_psf(w.image_ds, "input", "widefield")
    return inputs


# the reviewer's page (rules/paper.smk)
#: the shared reference data, beside the project (../shared/data/README.md names the sources)
PAPER_DATA = str(Path(workflow.basedir).resolve().parent / "shared" / "data")
#: the page's folder, inside the results it reads (nothing is written outside `results`)
PAPER_DIR = f"{RESULTS}/paper"


def paper_datasets():
    """`--dataset NAME KIND SOURCE` of every evaluated dataset, for `dps paper`."""
    args = []
    for ds in EVALUATED:
        source = DATASETS[ds]["source"]
        args += ["--dataset", ds, input_kind(ds), str(source)]
    return args

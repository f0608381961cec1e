"""The SLURM profile (profiles/slurm) against recording stand-ins for sbatch and friends.

The tiny configuration's upstream outputs are laid as empty placeholders, so that the jobs
under test (a training, an inference, a PSF identification, two background jobs of one
group and a figure copy) are ready at once. Snakemake then runs with the SLURM executor
and the profile; `sbatch` records its command line and prints a job id, `sacct` reports
every recorded job OUT_OF_MEMORY, so each is retried with its memory and time scaled by
the attempt. The run is stopped once the second attempts are recorded: no job ever runs.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip(
    "snakemake_executor_plugin_slurm",
    reason="snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')",
)

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny.yaml"
PROFILE = ROOT / "profiles" / "slurm"
GPU_RULES = {"infer", "identify_psf", "adapt"}

#: one stand-in for every SLURM command the plugin calls, dispatched on its own name
STAND_IN = r"""
import json, os, re, sys
from pathlib import Path

record = Path(os.environ["FAKE_SLURM_RECORD"])
name = Path(sys.argv[0]).name
args = sys.argv[1:]
if name == "sbatch":
    stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    lines = record.read_text().splitlines() if record.exists() else []
    job_id = 1001 + sum(json.loads(line)["cmd"] == "sbatch" for line in lines)
    with record.open("a") as f:
        f.write(json.dumps({"cmd": name, "argv": args, "stdin": stdin, "id": job_id}) + "\n")
    print(f"Submitted batch job {job_id}")
elif name in ("sacct", "squeue") and any("State" in a or "%T" in a for a in args):
    lines = record.read_text().splitlines() if record.exists() else []
    for line in lines:
        entry = json.loads(line)
        if entry["cmd"] == "sbatch":
            # first attempts end in FAKE_SLURM_STATE; retries stay queued until cancelled, so
            # that the interrupt always finds them (they failed again within seconds before)
            attempt = re.search(r"--attempt (\d+)", " ".join(entry["argv"]))
            retry = attempt is not None and int(attempt.group(1)) > 1
            state = "PENDING" if retry else os.environ.get("FAKE_SLURM_STATE", "RUNNING")
            print(f"{entry['id']}|{state}")
elif name == "sacct" and "-j" in args:  # the reason of a failed job
    print(os.environ.get("FAKE_SLURM_STATE", ""))
elif name in ("sacct", "sacctmgr", "sshare"):  # the account
    print("testacct")
elif name == "scontrol":
    print("MinJobAge = 300 sec\nMaxArraySize = 1001")
elif name == "sinfo":
    print("cpu_test*\ngpu_test")
else:  # scancel
    with record.open("a") as f:
        f.write(json.dumps({"cmd": name, "argv": args}) + "\n")
"""

#: what the jobs under test read: (path, is a directory), in the DAG's order
PLACEHOLDERS = [
    ("results/simulated/simulate/train.zarr/zarr.json", False),
    ("results/simulated/simulate/val.zarr/zarr.json", False),
    ("results/simulated/simulate/test.zarr/zarr.json", False),
    ("results/simulated/50/raw.zarr/zarr.json", False),
    ("results/simulated/500/raw.zarr/zarr.json", False),
    ("results/simulated/50/calibration.json", False),  # the denoiser's camera (SURE)
    ("results/simulated/50/widefield.zarr/zarr.json", False),
    ("results/simulated/50/widefield_bg.zarr/zarr.json", False),
    ("results/models/denoise", True),
    ("results/models/psfid", True),
    ("results/models/psfid/loss.png", False),
]
TARGETS = [
    "results/models/oidn",  # train_oidn
    "results/simulated/50/raw_dn.zarr/zarr.json",  # infer (a store: its zarr.json)
    "results/simulated/50/psf/widefield.tif",  # identify_psf
    "results/simulated/50/raw_bg.zarr/zarr.json",  # background, group background_raw
    "results/simulated/500/raw_bg.zarr/zarr.json",  # background, group background_raw
    "results/models/figures/psfid_loss.png",  # model_figure, a local rule
]


def fake_slurm(bin_dir: Path) -> None:
    """Stand-ins named sbatch, sacct, squeue, scontrol, sinfo, sacctmgr, sshare, scancel."""
    bin_dir.mkdir(parents=True)
    script = bin_dir / "fake_slurm.py"
    script.write_text(f"#!{sys.executable}\n{STAND_IN}")
    script.chmod(0o755)
    for name in ("sbatch", "sacct", "squeue", "scontrol", "sinfo", "sacctmgr", "sshare"):
        (bin_dir / name).symlink_to(script)
    (bin_dir / "scancel").symlink_to(script)


def lay_placeholders(work: Path) -> None:
    """Empty stand-ins for the upstream outputs, each newer than the one before."""
    start = time.time() - 1000
    for i, (rel, is_dir) in enumerate(PLACEHOLDERS):
        path = work / rel
        if is_dir:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
        os.utime(path, (start + 10 * i, start + 10 * i))


def submissions(record: Path) -> list[dict]:
    if not record.exists():
        return []
    entries = [json.loads(line) for line in record.read_text().splitlines()]
    return [e for e in entries if e["cmd"] == "sbatch"]


def cancelled(record: Path) -> list[str]:
    """The job ids that ``scancel`` was asked to cancel."""
    if not record.exists():
        return []
    entries = [json.loads(line) for line in record.read_text().splitlines()]
    return [i for e in entries if e["cmd"] == "scancel" for i in e["argv"]]


def option(argv: list[str], flag: str) -> str | None:
    """The value of ``flag`` in an sbatch command line (``--flag value`` or ``--flag=value``)."""
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def comment(argv: list[str]) -> str:
    return option(argv, "--comment") or ""


def attempt(argv: list[str]) -> int:
    match = re.search(r"--attempt (\d+)", option(argv, "--wrap") or "")
    return int(match.group(1)) if match else 0


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory):
    """Run the tiny DAG's ready jobs through the profile; return (submissions, stdout+err)."""
    work = tmp_path_factory.mktemp("slurm")
    (work / "config.yaml").write_text(TINY.read_text())
    fake_slurm(work / "bin")
    lay_placeholders(work)
    record = work / "sbatch.jsonl"
    exe = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{work / 'bin'}{os.pathsep}{exe}{os.pathsep}{os.environ.get('PATH', '')}",
        "FAKE_SLURM_RECORD": str(record),
        "FAKE_SLURM_STATE": "OUT_OF_MEMORY",
        "DPS_SLURM_PARTITION": "cpu_test",
        "DPS_SLURM_GPU_PARTITION": "gpu_test",
        "DPS_SLURM_ACCOUNT": "testacct",
    }
    env.pop("DPS_SLURM_GRES", None)
    command = [
        str(exe / "snakemake"), "-s", str(ROOT / "Snakefile"), "--workflow-profile", str(PROFILE),
        "--slurm-init-seconds-before-status-checks", "1", "--latency-wait", "1", *TARGETS,
    ]  # fmt: skip
    log = (work / "snakemake.log").open("w")
    # SIGINT at its default in the child: an ignored SIGINT is inherited across exec, and
    # something earlier in the full suite leaves the test process ignoring it, so Snakemake
    # (which only installs its handler over the default) never saw the interrupt
    proc = subprocess.Popen(
        command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip

    def all_cancelled() -> bool:
        queued = {str(s["id"]) for s in submissions(record) if attempt(s["argv"]) == 2}
        done = set(cancelled(record))
        return bool(done) and queued <= done

    deadline = time.monotonic() + 150
    try:
        # until the five submissions (four jobs and one group) are recorded a second time
        while time.monotonic() < deadline and proc.poll() is None:
            if sum(attempt(s["argv"]) == 2 for s in submissions(record)) >= 4:
                break
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # Snakemake cancels its jobs (scancel) and exits
            # once every queued job's cancellation is recorded, the rest of its exit is the
            # SLURM plugin's status thread finishing a sleep of up to 11 s: not waited for
            deadline = time.monotonic() + 120  # a loaded machine answers slowly
            while proc.poll() is None and time.monotonic() < deadline and not all_cancelled():
                time.sleep(0.2)
            try:
                proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
    return work, submissions(record), (work / "snakemake.log").read_text()


def by_name(subs: list[dict], name: str, attempt_no: int = 1) -> list[list[str]]:
    return [
        s["argv"]
        for s in subs
        if re.fullmatch(f"rule_{name}(_wildcards_.*)?", comment(s["argv"]))
        and attempt(s["argv"]) == attempt_no
    ]


def test_gpu_jobs_go_to_the_gpu_partition_with_one_gpu(slurm_run):
    _, subs, log = slurm_run
    assert subs, log[-3000:]
    for name in ("train_oidn", "infer", "identify_psf"):
        calls = by_name(subs, name)
        assert len(calls) == 1, (name, [comment(s["argv"]) for s in subs], log[-3000:])
        argv = calls[0]
        assert option(argv, "-p") == "gpu_test", argv
        assert option(argv, "--gpus") == "1", argv
        assert option(argv, "--gres") is None, argv  # one GPU: `gpu` or `gres`, never both
        assert option(argv, "-A") == "testacct", argv


def test_cpu_group_is_one_submission_on_the_cpu_partition(slurm_run):
    _, subs, log = slurm_run
    groups = [
        s["argv"]
        for s in subs
        if "group_background_raw" in (option(s["argv"], "--output") or "")
        and attempt(s["argv"]) == 1
    ]
    assert len(groups) == 1, ([option(s["argv"], "--output") for s in subs], log[-3000:])
    argv = groups[0]
    wrap = option(argv, "--wrap")
    assert "level=50" in wrap and "level=500" in wrap  # both images in one job
    assert option(argv, "-p") == "cpu_test", argv
    assert option(argv, "--gpus") is None and option(argv, "--gres") is None, argv
    assert not by_name(subs, "background"), "background submitted outside its group"


def test_retries_scale_memory_and_time_with_the_attempt(slurm_run):
    _, subs, log = slurm_run
    for name in ("train_oidn", "infer"):
        first, second = by_name(subs, name, 1), by_name(subs, name, 2)
        assert first and second, (name, log[-3000:])
        assert int(option(second[0], "--mem")) == 2 * int(option(first[0], "--mem"))
        assert int(option(second[0], "-t")) == 2 * int(option(first[0], "-t"))
        assert option(second[0], "-p") == "gpu_test"


def test_an_interrupted_run_cancels_its_jobs(slurm_run):
    """Ctrl-C (SIGINT) cancels the jobs still queued: the second attempts."""
    work, subs, log = slurm_run
    second = {str(s["id"]) for s in subs if attempt(s["argv"]) == 2}
    assert second and second <= set(cancelled(work / "sbatch.jsonl")), log[-3000:]


def test_trivial_rules_run_locally(slurm_run):
    work, subs, log = slurm_run
    submitted = " ".join(comment(s["argv"]) + (option(s["argv"], "--output") or "") for s in subs)
    assert "model_figure" not in submitted
    assert "localrule model_figure" in log
    assert (work / "results/models/figures/psfid_loss.png").exists()


def test_every_training_and_gpu_inference_rule_has_a_gpu_entry():
    """The profile's GPU entries cover the workflow's rules, with `gpu` or `gres`, not both."""
    import yte

    exe = Path(sys.executable).parent
    listed = subprocess.run(
        [str(exe / "snakemake"), "-s", str(ROOT / "Snakefile"), "--list-rules",
         "--configfile", str(TINY)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr[-2000:]
    rules = {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}
    wanted = {r for r in rules if r.startswith("train_")} | GPU_RULES
    assert {"train_denoise", "train_psfid", "train_resudbpn_own", "infer"} <= wanted
    for gres in ("", "gpu:a100:1"):
        old = os.environ.get("DPS_SLURM_GRES")
        os.environ["DPS_SLURM_GRES"] = gres
        try:
            with (PROFILE / "config.yaml").open() as f:
                profile = yte.process_yaml(f, require_use_yte=True)
        finally:
            if old is None:
                os.environ.pop("DPS_SLURM_GRES")
            else:
                os.environ["DPS_SLURM_GRES"] = old
        entries = profile["set-resources"]
        for rule in wanted:
            entry = entries.get(rule)
            assert entry is not None, f"{rule} has no entry in profiles/slurm"
            assert entry["slurm_partition"] == repr("gpu"), (rule, entry)
            if gres:
                assert entry["gpu"] == 0 and entry["gres"] == repr(gres), (rule, entry)
            else:
                assert entry["gpu"] == 1 and "gres" not in entry, (rule, entry)
        for rule in rules - wanted:
            assert "gpu" not in entries.get(rule, {}), rule
        # every rule's memory and time grow with the attempt
        for rule in rules - {"all", "model_figure", "metrics_table"}:
            entry = {**profile["default-resources"], **entries.get(rule, {})}
            assert entry["mem_mb"].endswith("*attempt") and entry["runtime"].endswith("*attempt")
    # the trivial rules are local rules of the workflow
    declared = re.search(r"^localrules:\n((?:    \w+,\n)+)", (ROOT / "Snakefile").read_text(), re.M)
    assert declared and set(re.findall(r"\w+", declared.group(1))) == {
        "all",
        "model_figure",
        "metrics_table",
    }

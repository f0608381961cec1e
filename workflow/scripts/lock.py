"""Write requirements.lock and envs/dps.yaml from a fresh virtual environment (`make lock`).

Usage: ``python workflow/scripts/lock.py VENV_PYTHON LOCK ENV_YAML``. ``VENV_PYTHON`` is the
interpreter of a venv where torch and then ``-e ".[workflow,dev,modelzoo]"`` were installed;
its ``pip freeze`` (the project itself left out) is the lock, minus torch and the CUDA and
triton packages a torch build brings, which the Makefile installs first from ``TORCH_INDEX``.
The conda environment for ``snakemake --sdm conda`` gets the same pins through pip, and torch
from conda-forge (its CPU or CUDA build, as conda chooses for the machine).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

#: packages that come with the chosen torch build, not from the lock
TORCH_BUILD = re.compile(r"^(torch|triton|nvidia-[a-z0-9-]+|cuda-[a-z0-9-]+)==", re.IGNORECASE)


def main(python: str, lock: str, env_yaml: str) -> None:
    frozen = subprocess.run(
        [python, "-m", "pip", "freeze", "--exclude-editable"],
        check=True, capture_output=True, text=True,
    ).stdout.splitlines()  # fmt: skip
    pins = sorted((p for p in frozen if "==" in p and not TORCH_BUILD.match(p)), key=str.lower)
    torch = next(p.split("==")[1].split("+")[0] for p in frozen if p.lower().startswith("torch=="))
    version = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    header = [
        "# requirements.lock: every dependency of dps and its extras (workflow, dev, modelzoo),",
        f"# pinned; made by `make lock` (pip freeze of a fresh Python {version} venv, torch "
        f"{torch} and its",
        "# CUDA/triton packages left out: the Makefile installs torch first from TORCH_INDEX).",
        "# Regenerate with `make lock` after changing pyproject.toml; do not edit by hand.",
    ]
    Path(lock).write_text("\n".join(header + pins) + "\n")
    env = [
        "# Conda environment for `snakemake --sdm conda`, generated from requirements.lock by",
        "# `make lock` (workflow/scripts/lock.py); do not edit by hand.",
        "channels:",
        "  - conda-forge",
        "  - nodefaults",
        "dependencies:",
        f"  - python={version}",
        f"  - pytorch={torch}",
        "  - pip",
        "  - pip:",
        *[f"      - {p}" for p in pins],
        "      - -e ../",
    ]
    Path(env_yaml).write_text("\n".join(env) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])

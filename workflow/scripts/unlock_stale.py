"""Remove the Snakemake lock a killed run left behind, never the lock of a live run.

A run stopped by ``kill -9`` (or a power cut) leaves ``.snakemake/locks/`` behind and every
later run stops with a LockException. Run from the working directory before ``snakemake``
(``make run`` does), with the snakemake to use and any options it needs (``-s Snakefile``)
as arguments: with no lock it does nothing; with a lock and no other snakemake process
working in this directory it runs ``snakemake --unlock``; with one it names it and exits 1.
Where processes cannot be listed (no /proc), it says what to do and exits 1.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def snakemake_processes(workdir: Path) -> list[int] | None:
    """PIDs of snakemake processes working in ``workdir``; None where unknowable."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    mine = {os.getpid(), os.getppid()}
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")[:3]
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:  # gone, or another user's
            continue
        names = {Path(a.decode(errors="replace")).name for a in argv}
        if "snakemake" in names and cwd == workdir:
            found.append(int(entry.name))
    return found


def main(argv: list[str]) -> int:
    snakemake, *extra = argv or ["snakemake"]  # extra: e.g. -s path/to/Snakefile
    workdir = Path.cwd().resolve()
    locks = workdir / ".snakemake" / "locks"
    if not locks.is_dir() or not any(locks.iterdir()):
        return 0
    others = snakemake_processes(workdir)
    if others is None:
        print(f"{locks} holds a lock; if no other snakemake run works here, remove it with "
              f"'{snakemake} --unlock' and run again", file=sys.stderr)  # fmt: skip
        return 1
    if others:
        print(f"another snakemake run (pid {', '.join(map(str, others))}) works in {workdir}: "
              "wait for it to finish or stop it, then run again", file=sys.stderr)  # fmt: skip
        return 1
    print("a killed run left its lock behind: unlocking (its unfinished jobs rerun)",
          file=sys.stderr)  # fmt: skip
    return subprocess.run([snakemake, *extra, "--unlock"], stdout=subprocess.DEVNULL).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

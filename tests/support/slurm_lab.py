"""The Slurm lab of ``tests/slurm/cluster.sh`` as the tests reach it.

Shared by the Slurm engine tests and the crash tests: the lab's environment (it must be
up: these tests fail, never skip, when it is not), the scheduler ids named for a job,
and job ids the lab has never seen.
"""

from __future__ import annotations

import os
import random
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SH = ROOT / "tests" / "slurm" / "cluster.sh"
LAB_DIR = Path(os.environ.get("EFI_SLURM_LAB", "/tmp/efi-slurm-lab"))
UP_HINT = "the Slurm lab is not up: run `tests/slurm/cluster.sh up` (as root) first"


def read_env_sh(path: Path) -> dict[str, str]:
    """The variables ``cluster.sh`` exported in its ``env.sh``."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            name, _, value = line.removeprefix("export ").partition("=")
            values[name] = shlex.split(value)[0] if value else ""
    return values


def lab_environment() -> dict[str, str]:
    """This process's environment plus the lab's; fails the test when the lab is down."""
    status = subprocess.run([str(CLUSTER_SH), "status"], capture_output=True, text=True,
                            timeout=600, env={**os.environ, "EFI_SLURM_LAB": str(LAB_DIR)},
                            check=False)
    if status.returncode != 0:
        pytest.fail(f"{UP_HINT}\n{status.stdout}{status.stderr}", pytrace=False)
    return {**os.environ, **read_env_sh(LAB_DIR / "env.sh")}


def slurm(env: dict[str, str], args: list[str], check: bool = True) -> str:
    """Run a Slurm client command against the lab; its standard output."""
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60,
                          check=check)
    return done.stdout


def slurm_jobs(env: dict[str, str], job_id: int) -> dict[str, str]:
    """Every Slurm job named for ``job_id`` (``efi-<id>-<claim>``): scheduler id → state."""
    text = slurm(env, ["squeue", "--noheader", "--states=all", "--format=%i|%j|%T"])
    text += slurm(env, ["sacct", "-X", "--noheader", "--parsable2",
                        "--format=JobID,JobName,State", "--starttime", "now-1days"])
    jobs: dict[str, str] = {}
    for line in text.splitlines():
        sid, name, state = [*line.strip().split("|"), "", ""][:3]
        if name == f"efi-{job_id}" or name.startswith(f"efi-{job_id}-"):
            jobs.setdefault(sid, state.split()[0] if state else "")
    return jobs


def new_ids(count: int = 1) -> list[int]:
    """Job ids the lab has never seen, so that ``efi-<id>-…`` names are new to it."""
    return random.sample(range(10**8, 10**9), count)

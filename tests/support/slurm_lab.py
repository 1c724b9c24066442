"""The Slurm lab of ``tests/slurm/cluster.sh`` as every Slurm test reaches it.

Shared by the Slurm connector's tests, the Slurm engine tests and the crash tests: the
lab's environment (it must be up: these tests fail, never skip, when it is not), its
daemons (stopped for a block and always started again), the scheduler ids named for a job,
and job ids the lab has never seen.
"""

from __future__ import annotations

import os
import random
import shlex
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs
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


@attrs.define
class Lab:
    """The running lab: its environment, root's Slurm commands, and its daemons."""

    env: dict[str, str]

    @property
    def scratch(self) -> Path:
        """The directory shared with the cluster's user, where jobs' directories go."""
        return Path(self.env.get("EFI_SLURM_SCRATCH", str(LAB_DIR / "scratch")))

    def run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a Slurm command here as root (the lab's administrator)."""
        return subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=60,
                              check=check)

    def cluster(self, *args: str) -> None:
        """Run ``cluster.sh`` (``stop slurmctld``, ``start sshd``…); fail the test if it fails."""
        done = subprocess.run([str(CLUSTER_SH), *args], capture_output=True, text=True,
                              env=self.env, timeout=120, check=False)
        assert done.returncode == 0, f"cluster.sh {' '.join(args)}: {done.stdout}{done.stderr}"

    @contextmanager
    def stopped(self, daemon: str) -> Iterator[None]:
        """Stop one daemon for the block; it is started again whatever happens."""
        self.cluster("stop", daemon)
        try:
            yield
        finally:
            self.cluster("start", daemon)

    def names(self, name: str) -> list[str]:
        """Every job id Slurm knows under exactly ``name`` (squeue and sacct), in order."""
        ids = set()
        queue = self.run(["squeue", "--noheader", "--states=all", "--format=%i",
                          f"--name={name}"]).stdout
        accounting = self.run(["sacct", "-X", "--noheader", "--parsable2", "--format=JobID",
                               "--starttime", "now-1days", "--name", name]).stdout
        for line in (queue + accounting).splitlines():
            if line.strip():
                ids.add(line.strip())
        return sorted(ids, key=int)


def current_lab() -> Lab:
    """The lab, after checking that every daemon is up (the test fails if not)."""
    return Lab(lab_environment())


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


def write_token(env: dict[str, str], file: Path, *, seconds: int = 3600,
                user: str = "efijm") -> Path:
    """Write a token for ``user`` (``cluster.sh token``: ``SLURM_JWT=…``) into ``file``, 0600.

    Renewing a file rewrites it in place, as an operator would.
    """
    done = subprocess.run([str(CLUSTER_SH), "token", str(seconds), user], capture_output=True,
                          text=True, env=env, timeout=60, check=True)
    file.touch(mode=0o600)
    file.write_text(done.stdout)
    return file

"""What the Slurm benchmarks share: the lab's connector settings, held jobs, a timed transport.

The lab is ``tests/slurm/cluster.sh``'s (``EFI_SLURM_LAB``, default ``/tmp/efi-slurm-lab``).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from efi_job_manager.transport import CommandResult, Transport

LAB = Path(os.environ.get("EFI_SLURM_LAB", "/tmp/efi-slurm-lab"))  # noqa: S108 - the lab
CLUSTER_SH = Path(__file__).resolve().parents[1] / "tests" / "slurm" / "cluster.sh"


def lab_environment() -> dict[str, str]:
    """This process's environment plus the lab's ``env.sh`` (``SLURM_CONF``…)."""
    env = dict(os.environ)
    for line in (LAB / "env.sh").read_text().splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = shlex.split(value)[0]
    return env


def lab_settings(mode: str) -> dict[str, Any]:
    """The Slurm connector's settings for the lab: ``local`` here, ``ssh`` to its sshd, or
    ``rest``: the files over ssh, Slurm through slurmrestd-jwt with a fresh token."""
    env = lab_environment()
    if mode == "local":
        return {"slurm_conf": env["SLURM_CONF"]}
    settings = {"transport": "ssh", "host": env["EFI_SLURM_SSH_HOST"],
                "ssh_config": env["EFI_SLURM_SSH_CONFIG"],
                "remote_dir": f"{env['EFI_SLURM_SCRATCH']}/bench"}
    if mode == "rest":
        settings |= {"api": "rest", "rest_url": env["EFI_SLURM_REST_URL"],
                     "rest_user": env["EFI_SLURM_SSH_USER"], "rest_token_file": token_file()}
    return settings


def token_file() -> str:
    """A file holding a fresh token (one hour) for the lab's user, made by ``cluster.sh``."""
    token = subprocess.run([str(CLUSTER_SH), "token", "3600"], capture_output=True, text=True,
                           check=True, timeout=60).stdout
    handle, name = tempfile.mkstemp(prefix="efi-bench-jwt-")  # 0600
    with os.fdopen(handle, "w") as file:
        file.write(token)
    return name


def submit_held(transport: Transport, count: int) -> list[str]:
    """``count`` held jobs in one shell loop: the plain sbatch loop, also the rate's reference."""
    loop = (f'i=0; while [ "$i" -lt {count} ]; do sbatch --parsable --hold '
            "--job-name=efi-bench --output=/dev/null --wrap=true || exit 1; i=$((i+1)); done")
    done = transport.run(["sh", "-c", loop], timeout=3600, check=True)
    return [line.split(";")[0] for line in done.stdout.split()]


class TimedRest:
    """Counts the requests a connector's slurmrestd client makes, by API, and adds up their time
    into ``timed`` (the connector's timed transport), so that "own time" leaves them out."""

    def __init__(self, connector: Any, timed: Timed) -> None:
        client = connector.rest.client
        request = client.request

        def timing(method: str, path: str, **kwargs: Any) -> Any:
            with timed._timing(f"rest {path.split('/')[1]}"):
                return request(method, path, **kwargs)

        client.request = timing


class Timed(Transport):
    """A transport that counts the commands it runs, by program, and adds up their time."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.seconds = 0.0

    @contextlib.contextmanager
    def _timing(self, what: str) -> Iterator[None]:
        begin = time.perf_counter()
        try:
            yield
        finally:
            self.calls[what] += 1
            self.seconds += time.perf_counter() - begin

    @property
    def description(self) -> str:
        return self.inner.description

    def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        with self._timing(argv[0]):
            return self.inner.run(argv, **kwargs)

    def put(self, local: Path, remote: str, **kwargs: Any) -> None:
        with self._timing("put"):
            self.inner.put(local, remote, **kwargs)

    def get(self, remote: str, local: Path, **kwargs: Any) -> None:
        with self._timing("get"):
            self.inner.get(remote, local, **kwargs)

    def write_text(self, remote: str, text: str, **kwargs: Any) -> None:
        with self._timing("write_text"):
            self.inner.write_text(remote, text, **kwargs)

    def close(self) -> None:
        self.inner.close()

    def reset(self) -> None:
        """Forget the commands counted so far."""
        self.calls.clear()
        self.seconds = 0.0

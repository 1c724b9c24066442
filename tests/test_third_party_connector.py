"""DESIGN §1: a third party adds a cluster by installing a package, and nothing in the core changes.

The test writes a complete small distribution, ``efi-connector-echo``, builds a real wheel
from it with ``python -m build``, installs the wheel into a folder of its own and puts that
folder on ``sys.path``. The core then finds the connector through its entry point and runs
an EFI job through it to ``finished``.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from stevedore import ExtensionManager

from efi_job_manager import BaseConnector, JobSpec, available_connectors, load_connector
from efi_job_manager.cli import main
from efi_job_manager.testing import ConnectorContract, fasta_job, make_site

PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.24"]
build-backend = "hatchling.build"

[project]
name = "efi-connector-echo"
version = "0.1.0"
description = "Runs efi-job-manager jobs at once, on this machine (an example connector)."
requires-python = ">=3.11"
dependencies = ["efi-job-manager>=0.1,<0.2"]

[project.entry-points."efi_job_manager.connectors"]
echo = "efi_connector_echo:EchoConnector"

[tool.hatch.build.targets.wheel]
packages = ["src/efi_connector_echo"]
"""

# The connector of docs/connectors.md: keep the two in step.
CONNECTOR = '''\
"""An example connector: runs each job at once, on this machine, in submit_job."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from efi_job_manager.toolkit import (
    BaseConnector,
    JobSpec,
    PermanentError,
    SchedulerState,
    SchedulerStatus,
    TransientError,
)


class EchoConnector(BaseConnector):
    """Runs the job's command synchronously and remembers its exit code.

    Settings: ``state_dir`` (required), where one ``<id>.json`` record per submission
    lives, so statuses survive a restart of the manager.
    """

    def __init__(self, config=None):
        super().__init__(config)
        if "state_dir" not in self.config:
            raise ValueError("echo connector: the setting state_dir is required")
        self.state_dir = Path(self.config["state_dir"])

    def prepare_job_environment(self, spec: JobSpec) -> str:
        params = spec.job_dir / "params.json"  # the job runs where the manager staged it
        if not params.is_file():
            raise PermanentError(f"{params} does not exist")
        return str(params)

    def submit_job(self, spec: JobSpec, params_path: str) -> str:
        try:
            scheduler_id = self._new_id()
            self._write(scheduler_id, {"name": spec.name, "exit_code": None})
        except OSError as exc:
            raise TransientError(f"cannot write to {self.state_dir}: {exc}") from exc
        with open(spec.job_dir / "stdout.log", "wb") as out, \\
                open(spec.job_dir / "stderr.log", "wb") as err:
            try:
                code = subprocess.run(list(spec.command), cwd=spec.job_dir,
                                      stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                      check=False).returncode
            except OSError as exc:  # the program is missing or not executable
                err.write(f"{exc}\\n".encode())
                code = 127
        self._write(scheduler_id, {"name": spec.name, "exit_code": code})
        return scheduler_id

    def get_job_statuses(self, scheduler_ids: Iterable[str]) -> dict[str, SchedulerStatus]:
        return {sid: self._status(sid) for sid in scheduler_ids}

    def _status(self, scheduler_id: str) -> SchedulerStatus:
        record = self._read(scheduler_id)
        if record is None:
            return SchedulerStatus.unknown(reason=f"no record of job {scheduler_id}")
        code = record["exit_code"]
        if code is None:
            return SchedulerStatus(SchedulerState.RUNNING, raw="RUNNING")
        if code == 0:
            return SchedulerStatus(SchedulerState.COMPLETED, raw="COMPLETED", exit_code=0)
        return SchedulerStatus(SchedulerState.FAILED, reason=f"EXIT_CODE {code}",
                               raw="FAILED", exit_code=code)

    def retrieve_job_results(self, spec: JobSpec) -> Path:
        if not spec.job_dir.is_dir():
            raise PermanentError(f"{spec.job_dir} is gone")
        return spec.job_dir  # the job ran in its own directory

    def cancel_jobs(self, scheduler_ids) -> None:
        """Every job has ended by the time submit_job returns: nothing to do."""

    def find_job(self, spec: JobSpec) -> Sequence[str]:
        ids = [p.stem for p in self.state_dir.glob("*.json")
               if (self._read(p.stem) or {}).get("name") == spec.name]
        return sorted(ids, key=int)

    def _new_id(self) -> str:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        number = len(list(self.state_dir.glob("*.json"))) + 1
        while True:
            try:
                os.close(os.open(self.state_dir / f"{number}.json",
                                 os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                number += 1
            else:
                return str(number)

    def _write(self, scheduler_id: str, record: dict) -> None:
        tmp = self.state_dir / f".{scheduler_id}.tmp"
        tmp.write_text(json.dumps(record))
        tmp.replace(self.state_dir / f"{scheduler_id}.json")

    def _read(self, scheduler_id: str) -> dict | None:
        try:
            return json.loads((self.state_dir / f"{scheduler_id}.json").read_text() or "null")
        except (FileNotFoundError, ValueError):
            return None
'''


def _run(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=240)
    if result.returncode != 0:
        pytest.fail(f"{what} failed ({result.returncode}): {' '.join(argv)}\n"
                    f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}", pytrace=False)


def _install_command(wheel: Path, target: Path) -> list[str]:
    """``pip install --no-deps --target``, with pip if this interpreter has it, else uv's."""
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target),
                str(wheel)]
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("neither pip (in this interpreter) nor uv is available to install a wheel",
                    pytrace=False)
    return [uv, "pip", "install", "--no-deps", "--target", str(target), str(wheel)]


@pytest.fixture(scope="module")
def echo_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Write the efi-connector-echo project and build its wheel for real (hatchling)."""
    project = tmp_path_factory.mktemp("efi-connector-echo")
    (project / "pyproject.toml").write_text(PYPROJECT)
    package = project / "src" / "efi_connector_echo"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(CONNECTOR)
    dist = project / "dist"
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(project)],
         "building the wheel")
    wheels = list(dist.glob("efi_connector_echo-0.1.0-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def installed_echo(echo_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Install the wheel into its own folder and put that folder on sys.path."""
    site = tmp_path_factory.mktemp("echo-site") / "site"
    _run(_install_command(echo_wheel, site), "installing the wheel")
    assert (site / "efi_connector_echo-0.1.0.dist-info" / "entry_points.txt").is_file()
    sys.path.insert(0, str(site))
    ExtensionManager.ENTRY_POINT_CACHE.clear()  # stevedore caches entry points per group
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        ExtensionManager.ENTRY_POINT_CACHE.clear()
        for name in [m for m in sys.modules if m.startswith("efi_connector_echo")]:
            del sys.modules[name]


@pytest.mark.slow
def test_an_installed_wheel_adds_a_connector_that_runs_a_job(
        installed_echo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Built, installed, listed, loaded by name, and an est_generate_fasta job finishes."""
    info = available_connectors()["echo"]
    assert info.error is None
    assert info.distribution == "efi-connector-echo 0.1.0"
    assert info.target == "efi_connector_echo:EchoConnector"
    assert info.cls is not None
    assert Path(sys.modules[info.cls.__module__].__file__ or "").is_relative_to(installed_echo)
    main(["connectors"])  # its exit code also reflects the other connectors installed
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("echo "))
    assert line.split()[1:] == ["efi_connector_echo:EchoConnector", "efi-connector-echo",
                                "0.1.0", "ok"]

    connector = load_connector("echo", {"state_dir": str(tmp_path / "echo-state")})
    with make_site(tmp_path, f"sqlite:///{tmp_path / 'efi.db'}", lambda _: connector) as site:
        site.insert(fasta_job(1))
        manager = site.manager()
        reports = [manager.run_once()]  # claims, stages and submits: the echo runs it now
        while len(reports) < 4 and not reports[-1].finished:
            reports.append(manager.run_once())  # polls: COMPLETED, stats.json into columns
        raw = site.raw(1)
        assert raw["status"] == "finished", (reports, manager.job_dir(1).failure())
        assert reports[0].started == (1,)
        assert raw["schedulerJobId"] == 1
        assert raw["numFastaHeaders"] == 2
        job_dir = site.results / "1"
        assert (job_dir / "stats.json").is_file()
        assert (job_dir / "stdout.log").is_file()
        claim = manager.job_dir(1).claim_of("u-1")
        assert claim is not None
        spec = JobSpec(1, "est_generate_fasta", job_dir, (), claim=claim)
        assert spec.name == f"efi-1-{claim}"
        assert list(connector.find_job(spec)) == ["1"]


class TestEchoConnectorContract(ConnectorContract):
    """The installed third-party connector passes the contract suite (it runs jobs at once)."""

    runs_in_background = False

    @pytest.fixture
    def make_connector(self, installed_echo: Path, tmp_path: Path) -> Callable[[], BaseConnector]:
        return lambda: load_connector("echo", {"state_dir": str(tmp_path / "echo-state")})

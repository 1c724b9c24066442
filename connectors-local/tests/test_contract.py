"""The connector as the manager sees it: configuration, the base class, the entry point."""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from efi_connector_local import LocalConnector
from efi_connector_local.connector import default_state_dir
from efi_job_manager.connector import BaseConnector, JobSpec, PermanentError, TransientError
from efi_job_manager.status import SchedulerState
from efi_job_manager.toolkit import ConfigError


def _spec(tmp_path: Path, *, params: bool = True) -> JobSpec:
    job_dir = tmp_path / "job"
    job_dir.mkdir(exist_ok=True)
    if params:
        (job_dir / "params.json").write_text("{}")
    return JobSpec(job_id=5, job_type="test", job_dir=job_dir, command=(sys.executable, "-c", ""))


def test_is_a_base_connector(tmp_path: Path) -> None:
    """LocalConnector implements BaseConnector and can be built from a plain mapping."""
    connector = LocalConnector({"state_dir": str(tmp_path)})

    assert isinstance(connector, BaseConnector)
    assert connector.display_name == "local"


def test_entry_point_loads_local_connector() -> None:
    """The ``local`` entry point of ``efi_job_manager.connectors`` loads LocalConnector."""
    (entry,) = importlib.metadata.entry_points(group="efi_job_manager.connectors", name="local")

    assert entry.load() is LocalConnector


def test_constructor_creates_nothing(tmp_path: Path) -> None:
    """Building the connector touches no file: the state directory appears on first use."""
    LocalConnector({"state_dir": str(tmp_path / "state")})

    assert not (tmp_path / "state").exists()


def test_config_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without settings: XDG state dir, 5 s grace, this interpreter, no extra environment."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))

    connector = LocalConnector()

    assert connector.state_dir == tmp_path / "efi-connector-local"
    assert connector.kill_grace == 5
    assert connector.python == sys.executable
    assert connector.env == {}


def test_default_state_dir_ignores_relative_xdg(monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative ``XDG_STATE_HOME`` is ignored, as the XDG specification asks."""
    monkeypatch.setenv("XDG_STATE_HOME", "relative/dir")

    assert default_state_dir() == Path.home() / ".local/state/efi-connector-local"


@pytest.mark.parametrize(
    ("config", "key", "shown"),
    [
        ({"state_dir": 5}, "state_dir", "5"),
        ({"state_dir": ""}, "state_dir", '""'),
        ({"kill_grace": "soon"}, "kill_grace", '"soon"'),
        ({"kill_grace": -1}, "kill_grace", "-1"),
        ({"kill_grace": True}, "kill_grace", "true"),
        ({"kill_grace": float("nan")}, "kill_grace", "NaN"),
        ({"python": ""}, "python", '""'),
        ({"python": ["python3"]}, "python", '["python3"]'),
        ({"env": "A=1"}, "env", '"A=1"'),
        ({"env": {"A": 1}}, "env.A", "1"),
        ({"env": {"A=B": "1"}}, 'env."A=B"', '"1"'),
        ({"env_passthrough": "CONDA_*"}, "env_passthrough", '"CONDA_*"'),
        ({"env_passthrough": ["PATH", ""]}, "env_passthrough[1]", '""'),
    ],
)
def test_invalid_config_names_the_key(config: dict[str, Any], key: str, shown: str) -> None:
    """A wrong setting is a ConfigError naming the key, the value and what was expected."""
    with pytest.raises(ConfigError) as caught:
        LocalConnector(config)
    assert str(caught.value).startswith(f"local connector settings: {key} = {shown}: expected ")
    assert isinstance(caught.value, ValueError)


def test_every_wrong_setting_is_reported_at_once() -> None:
    """Unknown keys get "did you mean"; every problem of the table is one line of the error."""
    with pytest.raises(ConfigError) as caught:
        LocalConnector({"kill_grac": 3, "state_dir": 5, "env": {"A": 1, "API_TOKEN": 2}})
    assert caught.value.messages == [
        "local connector settings: state_dir = 5: expected a path (a non-empty string): where "
        "the connector keeps its records",
        "local connector settings: env.A = 1: expected a string without NUL characters",
        "local connector settings: env.API_TOKEN = ***: expected a string without NUL characters",
        "local connector settings: unknown key kill_grac (did you mean kill_grace?); known keys: "
        "env, env_passthrough, kill_grace, python, state_dir",
    ]


@pytest.mark.parametrize(("grace", "seconds"), [(0, 0.0), (2.5, 2.5), ("5s", 5.0), ("1m", 60.0),
                                                ("500ms", 0.5), ("7", 7.0)])
def test_kill_grace_takes_durations(tmp_path: Path, grace: object, seconds: float) -> None:
    """``kill_grace`` is a duration as the core reads it: seconds, or "5s", "1m"…"""
    connector = LocalConnector({"state_dir": str(tmp_path), "kill_grace": grace})

    assert connector.kill_grace == seconds


def test_settings_are_kept(tmp_path: Path) -> None:
    """Paths (``~`` expanded), the interpreter, ``env`` and ``env_passthrough`` are kept."""
    connector = LocalConnector({
        "state_dir": "~/efi-state", "python": tmp_path / "python3", "env": {"A": "1"},
        "env_passthrough": ["CONDA_*"], "kill_grace": None})

    assert connector.state_dir == Path.home() / "efi-state"
    assert connector.python == str(tmp_path / "python3")
    assert connector.env == {"A": "1"}
    assert connector.env_passthrough == ("CONDA_*",)
    assert connector.kill_grace == 5
    assert LocalConnector({"state_dir": tmp_path}).state_dir == tmp_path


def test_prepare_returns_params_path_and_is_idempotent(tmp_path: Path) -> None:
    """prepare_job_environment returns ``<job_dir>/params.json`` every time it is called."""
    connector = LocalConnector({"state_dir": str(tmp_path / "state")})
    spec = _spec(tmp_path)

    first = connector.prepare_job_environment(spec)

    assert first == str(spec.job_dir / "params.json")
    assert connector.prepare_job_environment(spec) == first


def test_prepare_without_params_is_permanent(tmp_path: Path) -> None:
    """A job directory without ``params.json`` is a PermanentError."""
    connector = LocalConnector({"state_dir": str(tmp_path / "state")})

    with pytest.raises(PermanentError, match=r"params\.json"):
        connector.prepare_job_environment(_spec(tmp_path, params=False))


def test_submit_without_job_dir_is_permanent(tmp_path: Path) -> None:
    """Submitting a job whose directory does not exist is a PermanentError."""
    connector = LocalConnector({"state_dir": str(tmp_path / "state")})
    spec = JobSpec(job_id=1, job_type="t", job_dir=tmp_path / "missing", command=("true",))

    with pytest.raises(PermanentError, match="missing"):
        connector.submit_job(spec, "params.json")


def test_retrieve_results_returns_job_dir(tmp_path: Path) -> None:
    """The results are already in the job's directory, which is returned."""
    connector = LocalConnector({"state_dir": str(tmp_path / "state")})
    spec = _spec(tmp_path)

    assert connector.retrieve_job_results(spec) == spec.job_dir


def test_retrieve_results_without_job_dir_is_permanent(tmp_path: Path) -> None:
    """A job directory that is gone is a PermanentError."""
    connector = LocalConnector({"state_dir": str(tmp_path / "state")})
    spec = JobSpec(job_id=1, job_type="t", job_dir=tmp_path / "gone", command=("true",))

    with pytest.raises(PermanentError):
        connector.retrieve_job_results(spec)


def test_health_check_passes_and_creates_state_dir(tmp_path: Path) -> None:
    """health_check creates the state directory and runs the interpreter."""
    connector = LocalConnector({"state_dir": str(tmp_path / "state")})

    connector.health_check()

    assert (tmp_path / "state").is_dir()


def test_health_check_with_a_missing_python_fails(tmp_path: Path) -> None:
    """health_check names the interpreter that cannot be run."""
    connector = LocalConnector({"state_dir": str(tmp_path), "python": "/nonexistent/python"})

    with pytest.raises(PermanentError, match="/nonexistent/python"):
        connector.health_check()


def test_health_check_with_unwritable_state_dir_fails(tmp_path: Path) -> None:
    """health_check fails when the state directory cannot be created."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    connector = LocalConnector({"state_dir": str(blocker / "state")})

    with pytest.raises(PermanentError, match="state_dir"):
        connector.health_check()


def test_broken_python_is_transient_and_leaves_no_job(tmp_path: Path) -> None:
    """If the wrapper cannot be launched, submit raises TransientError, the command never
    runs, and find_job does not offer the failed attempt for adoption."""
    connector = LocalConnector({"state_dir": str(tmp_path / "state"), "python": "/nonexistent/py"})
    spec = _spec(tmp_path)

    with pytest.raises(TransientError, match="/nonexistent/py"):
        connector.submit_job(spec, connector.prepare_job_environment(spec))

    assert list(connector.find_job(spec)) == []
    record = json.loads((tmp_path / "state/jobs/1.json").read_text())
    assert record["launch_error"]
    assert connector.get_job_status("1").state is SchedulerState.FAILED


def test_close_is_idempotent_and_context_manager_closes(tmp_path: Path) -> None:
    """close() may be called repeatedly, and the connector works as a context manager."""
    with LocalConnector({"state_dir": str(tmp_path)}) as connector:
        connector.close()
    connector.close()

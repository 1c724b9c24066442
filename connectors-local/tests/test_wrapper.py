"""The wrapper run on its own: what it records in its run folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def _wrap(tmp_path: Path, *command: str, marker: Path | None = None) -> tuple[int, Path]:
    job_dir = tmp_path / "job"
    job_dir.mkdir(exist_ok=True)
    run_dir = job_dir / ".efi-local" / "1"
    argv = [sys.executable, "-m", "efi_connector_local.wrapper"]
    argv += ["--job-dir", str(job_dir), "--run-dir", str(run_dir)]
    if marker is not None:
        argv += ["--cancel-marker", str(marker)]
    result = subprocess.run([*argv, "--", *command], check=False, timeout=60)
    return result.returncode, run_dir


def test_wrapper_records_exit_code_and_times(tmp_path: Path) -> None:
    """exit.json holds the command's exit code, no signal, and start and end times."""
    code, run_dir = _wrap(tmp_path, sys.executable, "-c", "import sys; sys.exit(4)")

    outcome = json.loads((run_dir / "exit.json").read_text())
    assert code == 4
    assert outcome["exit_code"] == 4
    assert outcome["signal"] is None
    assert outcome["started"] <= outcome["ended"]
    assert json.loads((run_dir / "wrapper.json").read_text())["pid"] > 0


def test_wrapper_records_a_signal(tmp_path: Path) -> None:
    """A command killed by a signal is recorded with that signal and no exit code."""
    kill_self = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    code, run_dir = _wrap(tmp_path, sys.executable, "-c", kill_self)

    outcome = json.loads((run_dir / "exit.json").read_text())
    assert code == 128 + 9
    assert outcome["exit_code"] is None
    assert outcome["signal"] == 9


def test_wrapper_does_not_start_a_cancelled_command(tmp_path: Path) -> None:
    """With an existing cancel marker the command is never started."""
    marker = tmp_path / "cancel"
    marker.write_text("{}")
    touched = tmp_path / "ran"

    _, run_dir = _wrap(tmp_path, "touch", str(touched), marker=marker)

    assert not touched.exists()
    assert "cancelled" in json.loads((run_dir / "exit.json").read_text())["error"]


def test_wrapper_refuses_a_missing_command(tmp_path: Path) -> None:
    """Without a command after ``--`` the wrapper exits with an error and runs nothing."""
    code, _ = _wrap(tmp_path)

    assert code != 0

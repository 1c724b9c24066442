"""The deployment examples of docs/deploy/ are valid, say what docs/deploy.md says they say, and
run the manager as our command line reads it.

- The systemd unit passes ``systemd-analyze verify`` (a copy whose ``ExecStart`` is this
  environment's ``efi-job-manager`` and whose user is this one), and a typo'd key or a bad
  value in it is reported, so the check bites. Without ``systemd-analyze`` the test is
  skipped, except under ``CI=true``, where it fails.
- The keys that matter are set (``KillMode=process``…), and ``ExecStart`` and the cron line
  parse with `efi_job_manager.cli.parser.build_parser`.
- The logrotate example rotates the file the cron line writes (run for real when logrotate is
  installed).
- docs/deploy.md shows each file as it is.
"""

from __future__ import annotations

import configparser
import grp
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest

from efi_job_manager.cli.parser import build_parser

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "docs" / "deploy"
UNIT = DEPLOY / "efi-job-manager.service"
CRON = DEPLOY / "efi-job-manager.cron"
LOGROTATE = DEPLOY / "logrotate.conf"
CONFIG = "/etc/efi-job-manager/efi-job-manager.toml"


def _tool(name: str) -> str:
    """The path of ``name``; missing: a skip, or a failure under CI=true."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{name} is not installed; CI must check the deployment files with it")
        pytest.skip(f"{name} is not installed")
    return path


def _unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    unit.read_string(UNIT.read_text(encoding="utf-8"))
    return unit


def _manager_executable() -> Path:
    beside = Path(sys.executable).parent / "efi-job-manager"
    found = beside if beside.is_file() else Path(shutil.which("efi-job-manager") or beside)
    assert found.is_file(), "efi-job-manager is not installed in this environment"
    return found


def _runnable_copy(tmp_path: Path, replace: tuple[str, str] | None = None) -> Path:
    """The unit with an existing ExecStart, User and Group (and ``replace`` applied)."""
    text = UNIT.read_text(encoding="utf-8")
    text = re.sub(r"^ExecStart=\S+", f"ExecStart={_manager_executable()}", text, flags=re.M)
    text = re.sub(r"^User=.*$", f"User={pwd.getpwuid(os.getuid()).pw_name}", text, flags=re.M)
    text = re.sub(r"^Group=.*$", f"Group={grp.getgrgid(os.getgid()).gr_name}", text,
                  flags=re.M)
    if replace is not None:  # a whole line
        lines = text.splitlines(keepends=True)
        lines[lines.index(replace[0] + "\n")] = replace[1] + "\n"
        text = "".join(lines)
    path = tmp_path / UNIT.name
    path.write_text(text, encoding="utf-8")
    return path


def _verify(unit: Path) -> tuple[int, list[str]]:
    """``systemd-analyze verify``'s exit status and its lines about ``unit``."""
    done = subprocess.run([_tool("systemd-analyze"), "verify", "--man=no", str(unit)],
                          capture_output=True, text=True, timeout=120, check=False)
    about = [line for line in (done.stdout + done.stderr).splitlines()
             if str(unit) in line or unit.name in line]
    return done.returncode, about


def _parse(argv: list[str]) -> Namespace:
    return build_parser().parse_args(argv)


def test_systemd_verifies_the_unit(tmp_path: Path) -> None:
    """``systemd-analyze verify`` exits 0 and says nothing about the unit."""
    status, about = _verify(_runnable_copy(tmp_path))
    assert (status, about) == (0, [])


@pytest.mark.parametrize(("good", "bad"), [
    ("Restart=on-failure", "Restrat=on-failure"),
    ("KillMode=process", "KillMode=proces"),
    ("TimeoutStopSec=120", "TimeoutStopSec=two minutes"),
])
def test_systemd_verify_reports_a_bad_key_or_value(tmp_path: Path, good: str, bad: str) -> None:
    """The check bites: the broken line is reported with its file and line number.

    systemd ignores such a line with a warning (verify still exits 0 with systemd 252), so
    the warning is what is looked for.
    """
    unit = _runnable_copy(tmp_path, (good, bad))
    number = unit.read_text(encoding="utf-8").splitlines().index(bad) + 1
    _status, about = _verify(unit)
    assert any(line.startswith(f"{unit}:{number}:") for line in about), about


def test_the_unit_sets_what_matters() -> None:
    """The keys docs/deploy.md explains, with the values it explains."""
    unit = _unit()
    assert "network-online.target" in unit["Unit"]["After"].split()
    assert "network-online.target" in unit["Unit"]["Wants"].split()
    assert unit["Unit"]["Description"]
    assert unit["Unit"]["Documentation"]
    service = unit["Service"]
    assert service["Type"] == "simple"
    assert service["User"] == service["Group"] == "efi"
    assert service["KillMode"] == "process"  # the local connector's jobs survive a restart
    assert service["Restart"] == "on-failure"
    assert service["RestartSec"] == "10s"
    assert service["RestartPreventExitStatus"] == "2"  # a configuration error
    assert service["TimeoutStopSec"] == "120"
    assert service["UMask"] == "0027"
    assert service["NoNewPrivileges"] == "yes"
    assert service["EnvironmentFile"] == "-/etc/efi-job-manager/secrets.env"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_the_units_command_is_run_as_our_command_line_reads_it() -> None:
    """``ExecStart`` is ``efi-job-manager run --config FILE --log-format json``."""
    argv = shlex.split(_unit()["Service"]["ExecStart"])
    assert argv[0] == "/opt/efi-job-manager/bin/efi-job-manager"
    args = _parse(argv[1:])
    assert (args.command, args.config, args.log_format) == ("run", CONFIG, "json")
    assert not args.once
    assert not args.dry_run


def _cron_line() -> tuple[list[str], list[str], str]:
    """The cron job's schedule and user, its command, and the file its output goes to."""
    jobs = [line for line in CRON.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")
            and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", line)]
    assert len(jobs) == 1, jobs
    fields = jobs[0].split(None, 6)
    words = shlex.split(fields[6])
    output = [word for word in words if word.startswith(">>")]
    assert len(output) == 1, words
    assert words[-1] == "2>&1", words
    command = [word for word in words if not word.startswith((">", "2>"))]
    return fields[:6], command, output[0].removeprefix(">>")


def test_the_cron_line_runs_one_cycle_a_minute_never_two_at_once() -> None:
    """``flock -n LOCK efi-job-manager run --once --config FILE`` each minute, as efi."""
    schedule, command, _output = _cron_line()
    assert schedule == ["*", "*", "*", "*", "*", "efi"]
    assert command[:2] == ["flock", "-n"]
    lock = Path(command[2])
    assert lock.parent != Path("/run"), "a user other than root cannot make a file in /run"
    assert command[3] == "/opt/efi-job-manager/bin/efi-job-manager"
    args = _parse(command[4:])
    assert (args.command, args.once, args.dry_run, args.config) == ("run", True, False, CONFIG)


def test_logrotate_rotates_the_file_the_cron_line_writes() -> None:
    """With copytruncate, and never the manager's own [log] file."""
    _schedule, _command, output = _cron_line()
    text = LOGROTATE.read_text(encoding="utf-8")
    blocks = re.findall(r"^(\S+) \{\n(.*?)^\}", text, re.MULTILINE | re.DOTALL)
    assert [path for path, _ in blocks] == [output]
    directives = [line.strip() for line in blocks[0][1].splitlines()
                  if line.strip() and not line.strip().startswith("#")]
    assert "copytruncate" in directives
    assert "su efi efi" in directives


def test_logrotate_accepts_and_applies_the_example(tmp_path: Path) -> None:
    """A forced rotation of a copy: no error, the file emptied in place, its lines kept."""
    logrotate = _tool("logrotate")
    log = tmp_path / "log" / "manager.log"
    log.parent.mkdir()
    log.write_text("a line of the log\n", encoding="utf-8")
    user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    _schedule, _command, output = _cron_line()
    config = tmp_path / "logrotate.conf"
    config.write_text(LOGROTATE.read_text(encoding="utf-8").replace(output, str(log))
                      .replace("su efi efi", f"su {user} {group}"), encoding="utf-8")
    done = subprocess.run([logrotate, "--force", "--state", str(tmp_path / "state"),
                           str(config)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert (done.returncode, done.stderr) == (0, "")
    assert log.read_text(encoding="utf-8") == ""
    assert (log.parent / "manager.log.1").read_text(encoding="utf-8") == "a line of the log\n"


@pytest.mark.parametrize("path", sorted(DEPLOY.iterdir()), ids=lambda path: path.name)
def test_deploy_md_shows_each_file_as_it_is(path: Path) -> None:
    """Each file of docs/deploy/ is a code block of docs/deploy.md, verbatim, and linked."""
    page = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", page, re.MULTILINE | re.DOTALL)
    assert path.read_text(encoding="utf-8") in blocks
    assert f"](deploy/{path.name})" in page

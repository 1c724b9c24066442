"""``efi-job-manager check``: everything a site needs, probed the way a cycle would use it.

Each part prints one line (``ok``, or ``!`` and what is wrong) and a failing part counts
as a problem; `check_site` returns the number of problems (the command exits 1 on any).
It reads and probes, and changes nothing in the table.
"""

from __future__ import annotations

import shlex
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from efi_job_manager.config import Settings
from efi_job_manager.connector import BaseConnector
from efi_job_manager.faults import SiteFault, probe_readable_dir, probe_writable_dir
from efi_job_manager.manager import JobManager
from efi_job_manager.notify import check_smtp
from efi_job_manager.schema import check_table, status_index_ddl
from efi_job_manager.status import Status

__all__ = ["check_site"]

#: How many row ids a problem line names.
SHOWN_IDS = 10


def check_site(settings: Settings, out: Callable[[str], None] = print) -> int:
    """Check the table, the directories, each destination and the mail server.

    Returns:
        The number of problems found (0: the site can run jobs).
    """
    out(f"configuration: {settings.config_file or 'built-in defaults'}")
    out(f"database: {settings.database.masked_url}")
    manager = JobManager.from_settings(settings)
    try:
        problems = _table(manager, out)
        problems += _directories(manager, out)
        for name in manager.destinations:
            problems += _destination(manager, name, out)
    finally:
        manager.close()
    email = settings.notify.email
    if email is not None:
        problem = check_smtp(email)
        out(f"mail server: {email.smtp}: ok" if problem is None else f"  ! mail server {problem}")
        problems += problem is not None
    out("ok" if not problems else f"{problems} problem(s)")
    return problems


def _ids(ids: list[int], total: int) -> str:
    shown = ", ".join(str(i) for i in ids[:SHOWN_IDS])
    return shown + (f" and {total - SHOWN_IDS} more" if total > SHOWN_IDS else "")


def _table(manager: JobManager, out: Callable[[str], None]) -> int:
    repository = manager.repository
    report = check_table(repository.engine, repository.job_class)
    if not report.exists:
        out("  ! the Job table does not exist (efi-job-manager init-db makes one for "
            "development)")
        return 1
    problems = 0
    counts = repository.counts_by_status()
    out("  Job table: " + (", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "empty"))
    known = {s.value for s in Status}
    for status in sorted(k for k in counts if k not in known):
        out(f"  ! status {status!r} is not one this manager knows (left alone): rows "
            f"{_ids(repository.ids_with_status(status, SHOWN_IDS), counts[status])}")
        problems += 1
    unknown_types = repository.new_jobs_of_unknown_type(limit=1000)
    by_type: dict[str, list[int]] = {}
    for row in unknown_types:
        by_type.setdefault(row.job_type, []).append(row.id)
    for job_type, ids in sorted(by_type.items()):
        out(f"  ! new rows of job type {job_type!r}, which no pipeline runs (they will fail): "
            f"rows {_ids(ids, len(ids))}")
        problems += 1
    if report.missing_required or report.missing_optional:
        out("  ! missing columns: " + ", ".join(report.missing_required + report.missing_optional))
        problems += 1
    for problem in report.narrowed:
        out(f"  ! {problem}")
        problems += 1
    if not report.status_indexed:
        ddl = status_index_ddl(repository.engine, repository.job_class)
        out(f"  ! no index on Job.status: every cycle reads the whole table; add one: {ddl}")
    return problems


def _directories(manager: JobManager, out: Callable[[str], None]) -> int:
    problems = 0
    for what, path, probe in (("the results directory", manager.results_dir, probe_writable_dir),
                              ("the input directory", manager.input_dir, probe_readable_dir)):
        try:
            probe(path, what)
        except SiteFault as exc:
            out(f"  ! {exc}")
            problems += 1
        else:
            out(f"{what}: {path}: ok")
    if manager.share.active and not problems:
        problems += _sharing(manager, out)
    return problems


def _sharing(manager: JobManager, out: Callable[[str], None]) -> int:
    """Give a probe directory and file the configured group and mode, as a job's would get."""
    settings = manager.settings
    wanted = ", ".join(part for part in (
        f"group {settings.results_group}" if settings.results_group else "",
        f"mode {settings.results_mode:04o}" if settings.results_mode is not None else "") if part)
    try:
        with tempfile.TemporaryDirectory(prefix=".efi-probe-", dir=manager.results_dir) as probe:
            (Path(probe) / "file").write_text("")
            manager.share.apply(Path(probe))
    except OSError as exc:
        out(f"  ! the results directory {manager.results_dir}: cannot give job files "
            f"{wanted} ({exc.strerror or exc}): is the manager's user in the group?")
        return 1
    out(f"job files: {wanted}: ok")
    return 0


def _destination(manager: JobManager, name: str, out: Callable[[str], None]) -> int:
    connector = manager.destinations[name].connector
    label = f"destination {manager.destinations[name].label}"
    way = connector.describe()
    if way:
        out(f"{label}: {way}")
    try:
        connector.health_check()
    except Exception as exc:
        out(f"{label}: FAILED: {exc}")
        return 1
    job_types = [t for t in manager.catalogue.job_types() if manager.route(t) == name]
    needs = manager.catalogue.site_needs(job_types)
    try:
        missing = connector.check_site(needs.executables, needs.paths)
    except Exception as exc:
        out(f"{label}: FAILED checking the pipeline's executables and paths: {exc}")
        return 1
    if missing is None:
        out(f"{label}: ok (this connector cannot check the pipeline's executables and paths)")
        return 0
    if missing:
        for problem in missing:
            out(f"{label}: ! {problem}")
        return len(missing)
    checked = len(needs.executables) + len(needs.paths)
    out(f"{label}: ok ({checked} executables and paths for {len(job_types)} job types)")
    return _probes(connector, label, needs.probes, out)


def _probes(connector: BaseConnector, label: str, probes: Sequence[Sequence[str]],
            out: Callable[[str], None]) -> int:
    """Run each pipeline program's version command where the jobs run (its environment)."""
    problems = 0
    for argv in probes:
        shown = shlex.join(argv)
        try:
            failed = connector.check_command(argv)
        except NotImplementedError:
            out(f"{label}: `{shown}` not run (this connector cannot run a command there)")
            continue
        except Exception as exc:
            out(f"{label}: ! `{shown}` could not be run: {exc}")
            problems += 1
            continue
        if failed is None:
            out(f"{label}: `{shown}` runs")
        else:
            out(f"{label}: ! the pipeline's program cannot run: {failed}")
            problems += 1
    return problems

"""The sections of the manager's file other than ``[database]``, each an attrs class.

``[resources]`` is read into `ResourceSettings` by name, and used as `ResourceProfiles`.

Each key is declared once, here: its type says how it is read and checked (see
`efi_job_manager.config.values`), its line under ``Attributes:`` in the class docstring what
it means (for operators too), and the paragraphs after a class's summary line say more about
its table. The settings reference (``docs/settings.md``) is generated from these classes by
``scripts/settings_doc.py`` (`efi_job_manager.config.reference`); a field a table holds
(``[pipelines.efi_db]``) is described by its line in the class that holds it.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import attrs

from efi_job_manager.config.masking import redacted_repr
from efi_job_manager.config.values import (
    Check,
    CommaList,
    Command,
    Convert,
    Count,
    Duration,
    FileMode,
    FreeForm,
    MemorySize,
    PositiveDuration,
    PositiveNumber,
    QueueName,
    ResolvedPath,
    Secret,
    Text,
    TimeLimit,
    duration,
)
from efi_job_manager.connector import Resources

__all__ = [
    "DestinationSettings",
    "EfiDbSettings",
    "EmailSettings",
    "LogSettings",
    "ManagerSettings",
    "MetricsSettings",
    "NotifySettings",
    "PipelineSettings",
    "ResourceProfiles",
    "ResourceSettings",
]

Port = Annotated[int, Check("a TCP port (1-65535)", lambda n: 0 < n < 65536)]
LogFormatName = Annotated[str, Check('"text" or "json"', lambda text: text in ("text", "json"))]

GracePeriod = Annotated[float, duration(
    minimum=60.0, why="a shorter one takes a slow start for a lost job")]


_TEMPLATE_EXPECTED = 'a name with {efi_db_version} ("efi_{efi_db_version}")'


def _efi_db_template(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TypeError(value)
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
    except ValueError:
        fields = set()
    if fields != {"efi_db_version"}:
        raise ValueError(value)
    return str(value)


def _smtp(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    host, _, port = value.strip().rpartition(":")
    if not host.strip("[]") or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(value)
    return value.strip()


EfiDbTemplate = Annotated[str, Convert(_TEMPLATE_EXPECTED, _efi_db_template)]
SmtpServer = Annotated[str, Convert('the SMTP server as "host:port"', _smtp)]


@attrs.frozen
class ManagerSettings:
    """How the manager's loop behaves (``[manager]``). Durations are in seconds.

    Attributes:
        interval: Seconds between two cycles.
        results_dir: The central directory EFI-Web serves results from; each job gets
            ``<results_dir>/<job id>/``.
        input_dir: Where uploaded input files are; nothing outside it is ever read.
        max_running_jobs: At most this many jobs running at once, over all destinations
            (counted in the ``Job`` table).
        max_running_jobs_per_user: At most this many running jobs per user (``user_id``);
            not set: no limit.
        max_running_jobs_per_pipeline: Job type or pipeline name (``est``, ``gnt``…) → at
            most this many running jobs of it.
        dry_run: Report what a cycle would do; claim, write and submit nothing (as
            ``run --dry-run``).
        submit_grace: A claimed job with no scheduler id older than this is recovered. At
            least 60 s: a shorter one could recover a job its scheduler is still starting.
        lost_grace: A job the scheduler has not known for this long is failed as ``LOST``.
        cancel_window: Cancellations are sent to the scheduler for jobs cancelled within
            this window.
        claim_batch: At most this many new jobs are claimed in one cycle.
        step_timeout: How long one step of a cycle (cancel, recover, poll, start) may take
            up jobs; the jobs it has not reached wait for the next cycle (said once, at
            WARNING), whose poll begins with them.
        default_destination: The destination of job types not listed in ``[routing]``; it
            must be a configured destination.
        heartbeat: While cycles change nothing, ``run`` logs one INFO line this often
            (jobs waiting, running, the next cycle), so a quiet daemon is seen to be alive.
        results_group: The group (a name or a number) every file and directory of a job's
            directory gets: the web server's, so that EFI-Web can read results and failure
            reasons. The manager's user must be a member (or root). Not set: unchanged.
        results_mode: The mode of every file of a job's directory (``"0640"``); directories
            get the read bits as search bits too (``0750``), and the setgid bit with
            ``results_group``. Applied to what the manager writes and to what comes back from
            the cluster. Not set: the files keep the umask's and the cluster's modes.
    """

    interval: PositiveDuration = 30.0
    results_dir: ResolvedPath = Path("results")
    input_dir: ResolvedPath = Path("uploads")
    max_running_jobs: Count = 100
    max_running_jobs_per_user: Count | None = None
    max_running_jobs_per_pipeline: Mapping[str, Count] = attrs.field(factory=dict)
    dry_run: bool = False
    submit_grace: GracePeriod = 300.0
    lost_grace: GracePeriod = 600.0
    cancel_window: Duration = 7 * 86400.0
    claim_batch: Count = 50
    step_timeout: PositiveDuration = 600.0
    default_destination: Text = "default"
    heartbeat: PositiveDuration = 300.0
    results_group: Text | None = None
    results_mode: FileMode | None = None


@attrs.frozen
class DestinationSettings:
    """One cluster or partition jobs can go to (``[destinations.<name>]``).

    Attributes:
        connector: The connector's entry point name in ``efi_job_manager.connectors``
            (``"slurm"``, ``"local"``…); ``efi-job-manager connectors`` lists them.
        settings: The connector's own table, passed to the connector untouched (treat it as
            read-only); the connector checks it when the manager starts.
        max_running_jobs: At most this many jobs running here (the running jobs whose job
            type is routed here now); not set: only the global limit.
        keep_job_files: How long what a job left where it ran (the Slurm connector's
            ``remote_dir/<id>`` with Nextflow's ``work/``; the local connector's records)
            stays after the job ended, for debugging. 0: removed as soon as its results are
            back; otherwise ``efi-job-manager clean`` removes it once this has passed.
    """

    connector: Text
    settings: FreeForm = attrs.field(factory=dict, repr=redacted_repr)
    max_running_jobs: Count | None = None
    keep_job_files: Duration = 0.0


@attrs.frozen
class EfiDbSettings:
    """Which EFI database a job uses, from its ``efi_db_version`` (``[pipelines.efi_db]``).

    Attributes:
        default: The database for rows without a version: its name (EST's ``--efi-db``) or
            the path of its SQLite file.
        template: The database of any other version, the version filled in:
            ``"efi_{efi_db_version}"`` gives ``efi_2025_04`` for ``2025_04``.
        versions: Version label → database name or path, checked before the template.
    """

    default: Text | None = None
    template: EfiDbTemplate | None = None
    versions: Mapping[str, Text] = attrs.field(factory=dict)


@attrs.frozen
class PipelineSettings:
    """How pipelines are run (``[pipelines]``).

    Attributes:
        nextflow: The Nextflow executable where jobs run.
        pipeline_dir: The EST repository's ``pipelines/`` directory.
        config_dir: The EST repository's ``conf/`` directory (the ``-c`` configs); not
            set: the command has no ``-c``.
        command: The command template as an argument list with ``{placeholders}``
            (``["nextflow", "-c", "{config}", "run", "{pipeline}", "-params-file",
            "params.json"]``); not set: EST's run template.
        params: Site values for EST's scripts and pipelines, keyed as in the params file
            (the old ``NEXTFLOW_PARAMS``); ``efi_config`` and ``fasta_db`` are required.
        overrides: Job type → overrides of the pipeline catalogue (``script``, ``config``,
            ``pipeline_name``, ``params``, ``results``, ``remove``), checked by it.
        efi_db: How a row's ``efi_db_version`` picks the EFI database (EST's
            ``--efi-db``). At least one of ``default``, ``template`` and ``versions`` is
            required: the manager refuses to start otherwise.
        predefined_taxonomy_filters: Names of EST's predefined taxonomy filters a row's
            ``taxSearchName`` may use; not set: the names EST ships.
        version_args: The arguments with which the command's program prints its version
            and exits 0; ``check`` runs it so, where each destination's jobs run, with their
            environment (a ``nextflow`` without Java fails there). Not set: ``-version``
            for EST's run template (Nextflow's), ``--version`` for a ``command``; ``[]``:
            not run.
    """

    nextflow: Text = "nextflow"
    pipeline_dir: ResolvedPath | None = None
    config_dir: ResolvedPath | None = None
    command: Command | None = None
    params: FreeForm = attrs.field(factory=dict, repr=redacted_repr)
    overrides: Mapping[str, FreeForm] = attrs.field(factory=dict, repr=redacted_repr)
    efi_db: EfiDbSettings = attrs.field(factory=EfiDbSettings)
    predefined_taxonomy_filters: CommaList | None = None
    version_args: tuple[str, ...] | None = None


@attrs.frozen
class EmailSettings:
    """Sending email on job transitions (``[notify.email]``).

    Attributes:
        smtp: The SMTP server as ``"host:port"``.
        sender: The ``From`` address.
        username: The SMTP login, if the server needs one.
        password: The SMTP password. Never printed.
        starttls: Upgrade the connection with STARTTLS.
        recipients: Addresses that receive every notification, besides the job's owner
            (whom only an embedding program's ``address_for`` can reach).
        timeout: Seconds to wait for the server, per SMTP operation.
    """

    smtp: SmtpServer
    sender: Text
    username: Text | None = None
    password: Secret | None = attrs.field(default=None, repr=False, metadata={"secret": True})
    starttls: bool = False
    recipients: CommaList = ()
    timeout: PositiveNumber = 10.0

    @property
    def host(self) -> str:
        """The SMTP server's host name (brackets of an IPv6 address removed)."""
        return self.smtp.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        """The SMTP server's port."""
        return int(self.smtp.rpartition(":")[2])


@attrs.frozen
class NotifySettings:
    """Notifications (``[notify]``).

    Attributes:
        email: Sending email on job transitions (``started``, ``finished``, ``failed``,
            ``cancelled``); not set: no email is sent.
    """

    email: EmailSettings | None = None


@attrs.frozen
class ResourceSettings:
    """What jobs ask for (``[resources.<name>]``); a key not set is not asked for here.

    A job gets, key by key, its job type's value, else its pipeline's, else ``default``'s;
    the larger time or memory a retry recorded wins over all three. A key set nowhere is
    left to the destination's connector (its own defaults, else the scheduler's).

    Attributes:
        time: The time limit in seconds: ``"2h"``, ``"1h30m"``, seconds, or a Slurm time
            (``"24:00:00"``, ``"1-12"``).
        memory: The memory in MiB: an integer, or ``"32G"``, ``"500M"``, ``"32GB"`` (units
            ``K``, ``M``, ``G``, ``T``; whole numbers).
        cpus: CPUs per task.
        queue: The partition (Slurm) or queue: a name or a comma list.
    """

    time: TimeLimit | None = None
    memory: MemorySize | None = None
    cpus: Count | None = None
    queue: QueueName | None = None

    @property
    def resources(self) -> Resources:
        """These settings as the contract's `Resources`."""
        return Resources(time=self.time, memory=self.memory, cpus=self.cpus, queue=self.queue)


@attrs.frozen
class ResourceProfiles:
    """The site's resource profiles by name, and the resources of a job from them.

    Attributes:
        profiles: ``default``, pipeline short names and job types → `Resources`.
    """

    profiles: Mapping[str, Resources] = attrs.field(factory=dict)

    @classmethod
    def from_settings(cls, section: Mapping[str, ResourceSettings]) -> ResourceProfiles:
        """The profiles of the ``[resources]`` section."""
        return cls({name: settings.resources for name, settings in section.items()})

    def for_job(self, pipeline: str, job_type: str) -> Resources:
        """What a job asks for: ``default`` < its pipeline's < its job type's profile."""
        resources = Resources()
        for name in dict.fromkeys(("default", pipeline, job_type)):
            if name:
                resources = resources.overlay(self.profiles.get(name))
        return resources


@attrs.frozen
class LogSettings:
    """Where and how the log is written (``[log]``); it always goes to standard error.

    Attributes:
        format: ``"text"`` or ``"json"`` (one JSON object per line); ``--log-format``
            overrides it.
        file: A log file written as well as standard error, rotated by size; not set: none.
            One file per manager process: two processes must not write the same file.
        max_size: Rotate the file when it reaches this size, in MiB or with a unit
            (``"50M"``, ``"1G"``).
        backups: How many rotated files to keep (``<file>.1`` … ``<file>.N``).
    """

    format: LogFormatName = "text"
    file: ResolvedPath | None = None
    max_size: MemorySize = 50
    backups: Count = 5


@attrs.frozen
class MetricsSettings:
    """The Prometheus endpoint of ``run`` (``[metrics]``): off unless ``port`` is set.

    The metrics and what to watch are in ``docs/monitoring.md``.

    Attributes:
        port: Serve ``/metrics`` on this TCP port while ``run`` runs; not set: no endpoint.
        address: The address the endpoint listens on; ``127.0.0.1`` keeps it on this host,
            ``0.0.0.0`` opens it to every network the host is on.
    """

    port: Port | None = None
    address: Text = "127.0.0.1"

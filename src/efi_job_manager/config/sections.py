"""The sections of the manager's file other than ``[database]``, each an attrs class.

``[resources]`` is read into `ResourceSettings` by name, and used as `ResourceProfiles`.

Each key is declared once, here: its type says how it is read and checked (see
`efi_job_manager.config.values`), its line in the class docstring what it means. The
operator's manual (``docs/operator.md``) has the same keys in tables.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import attrs

from efi_job_manager.config.masking import redacted_repr
from efi_job_manager.config.values import (
    CommaList,
    Command,
    Convert,
    Count,
    Duration,
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
    "ManagerSettings",
    "NotifySettings",
    "PipelineSettings",
    "ResourceProfiles",
    "ResourceSettings",
]

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
            ``<results_dir>/<job id>``.
        input_dir: Where uploaded input files are; nothing outside it is ever read.
        max_running_jobs: At most this many jobs running at once, over all destinations.
        max_running_jobs_per_user: At most this many running jobs per user (``None``: no
            limit).
        max_running_jobs_per_pipeline: Pipeline name → at most this many running jobs.
        dry_run: Log what would be done; submit nothing, change nothing.
        submit_grace: A running job with no scheduler id older than this is recovered.
        lost_grace: A job the scheduler no longer knows is declared lost after this.
        cancel_window: How long a cancellation keeps being sent to the scheduler.
        claim_batch: At most this many new jobs are claimed in one cycle.
        step_timeout: Seconds a step of a cycle may take up jobs before the rest wait.
        default_destination: The destination of job types not listed in ``[routing]``.
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


@attrs.frozen
class DestinationSettings:
    """One cluster or partition jobs can go to (``[destinations.<name>]``).

    Attributes:
        connector: The connector's entry point name in ``efi_job_manager.connectors``
            (``"slurm"``, ``"local"``…).
        settings: The connector's own table, passed through untouched; treat as read-only.
        max_running_jobs: At most this many jobs running here (``None``: only the global
            limit).
    """

    connector: Text
    settings: FreeForm = attrs.field(factory=dict, repr=redacted_repr)
    max_running_jobs: Count | None = None


@attrs.frozen
class EfiDbSettings:
    """Which EFI database a job uses, from its ``efi_db_version`` (``[pipelines.efi_db]``).

    Attributes:
        default: The database for rows without a version (EST's ``--efi-db``).
        template: A name built from the version: ``"efi_{efi_db_version}"``.
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
        config_dir: The EST repository's ``conf/`` directory.
        command: The command template as an argument list with ``{placeholders}``
            (``["nextflow", "-c", "{config}", "run", "{pipeline}", "-params-file",
            "params.json"]``); ``None`` for the built-in default.
        params: Site values for EST's scripts and pipelines (``efi_config``, ``fasta_db``…).
        overrides: Job type → catalogue overrides, validated by the pipeline catalogue.
        efi_db: How a row's ``efi_db_version`` picks the EFI database.
        predefined_taxonomy_filters: Names of EST's predefined taxonomy filters (None:
            the names EST ships).
    """

    nextflow: Text = "nextflow"
    pipeline_dir: ResolvedPath | None = None
    config_dir: ResolvedPath | None = None
    command: Command | None = None
    params: FreeForm = attrs.field(factory=dict, repr=redacted_repr)
    overrides: Mapping[str, FreeForm] = attrs.field(factory=dict, repr=redacted_repr)
    efi_db: EfiDbSettings = attrs.field(factory=EfiDbSettings)
    predefined_taxonomy_filters: CommaList | None = None


@attrs.frozen
class EmailSettings:
    """Sending email on job transitions (``[notify.email]``).

    Attributes:
        smtp: The SMTP server as ``"host:port"``.
        sender: The ``From`` address.
        username: The SMTP login, if the server needs one.
        password: The SMTP password. Never printed.
        starttls: Upgrade the connection with STARTTLS.
        recipients: Addresses that receive every notification, besides the job's owner.
        timeout: Seconds to wait for the server.
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
        email: Email settings; ``None`` sends no email.
    """

    email: EmailSettings | None = None


@attrs.frozen
class ResourceSettings:
    """What jobs ask for (``[resources.<name>]``); a key not set is not asked for here.

    ``<name>`` is ``default`` (every job), a pipeline short name (``est``, ``gnt``…) or a
    job type; see `ResourceProfiles` for the order.

    Attributes:
        time: The time limit in seconds: ``"2h"``, ``"1h30m"``, seconds, or a Slurm time
            (``"24:00:00"``, ``"1-12"``).
        memory: The memory in MiB: an integer, or ``"32G"``, ``"500M"``.
        cpus: CPUs per task.
        queue: The partition or queue (or a comma list).
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

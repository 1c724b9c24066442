"""The manager's Prometheus metrics: what each cycle, job and scheduler command did.

`ManagerMetrics` keeps them in a registry of its own (so several managers in one
process, as in tests, never collide) and serves them on ``/metrics`` when ``[metrics]
port`` is set (`ManagerMetrics.serve`). The names and what to watch: ``docs/monitoring.md``.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import time
from collections.abc import Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from efi_job_manager.discovery import package_version
from efi_job_manager.events import EventKind, JobEvent

__all__ = ["OPERATIONS", "FailureCause", "ManagerMetrics"]

log = logging.getLogger(__name__)

_PREFIX = "efi_job_manager"
#: Seconds: scheduler commands take milliseconds locally, seconds over SSH or when slow.
_COMMAND_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
#: Seconds a job waits from its row's creation to its submission: seconds to days.
_WAIT_BUCKETS = (1, 10, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 86400, 7 * 86400)
_CYCLE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0)


#: The connector calls timed, as the ``operation`` label names them.
OPERATIONS = ("prepare", "submit", "status", "retrieve", "cancel", "find", "check_site")


class FailureCause(enum.StrEnum):
    """Why a job failed, as a class an operator can count and alert on."""

    INPUT = "input"                # its parameters or upload refused before submission
    UNKNOWN_TYPE = "unknown_type"  # a job_type this manager does not run
    REFUSED = "refused"            # the scheduler refused the submission
    PIPELINE = "pipeline"          # the pipeline ended with an error
    TIME_LIMIT = "time_limit"      # the scheduler ended it at its time limit
    MEMORY = "memory"              # the scheduler ended it for its memory
    CANCELLED_ON_CLUSTER = "cancelled_on_cluster"  # someone cancelled it on the cluster
    LOST = "lost"                  # the scheduler no longer knew it
    RESULTS = "results"            # its results could not be read or stored
    INTERNAL = "internal"          # a bug of the manager or a connector


class ManagerMetrics:
    """The metrics of one manager, in a registry of its own.

    The job counts by status, pipeline and destination are set by the manager each cycle
    while the endpoint is served (`serving`); everything else is counted as it happens.
    """

    def __init__(self, version: str | None = None) -> None:
        """Make the metrics; ``version`` (the installed one by default) labels ``_info``."""
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        Gauge(f"{_PREFIX}_info", "efi-job-manager's version (always 1)", ["version"],
              registry=r).labels(version or package_version()).set(1)
        self.cycles = Counter(f"{_PREFIX}_cycles", "Cycles run", registry=r)
        self.cycle_duration = Histogram(f"{_PREFIX}_cycle_duration_seconds",
                                        "How long a cycle took", buckets=_CYCLE_BUCKETS,
                                        registry=r)
        self.cycle_errors = Counter(f"{_PREFIX}_cycle_errors",
                                    "Problems of the site met by cycles (not a job's fault)",
                                    registry=r)
        self.last_cycle = Gauge(f"{_PREFIX}_last_cycle_timestamp_seconds",
                                "Unix time the last cycle ended", registry=r)
        self.jobs = Gauge(f"{_PREFIX}_jobs", "Jobs in the Job table",
                          ["status", "pipeline", "destination"], registry=r)
        self.oldest_waiting = Gauge(f"{_PREFIX}_oldest_waiting_job_age_seconds",
                                    "Age of the oldest new job (0 if none)", registry=r)
        self.queue_wait = Histogram(f"{_PREFIX}_queue_wait_seconds",
                                    "From a job's timeCreated to its submission", ["pipeline"],
                                    buckets=_WAIT_BUCKETS, registry=r)
        self.submissions = Counter(f"{_PREFIX}_submissions", "Jobs submitted",
                                   ["destination", "pipeline"], registry=r)
        self.finished = Counter(f"{_PREFIX}_jobs_finished", "Jobs finished", ["pipeline"],
                                registry=r)
        self.failures = Counter(f"{_PREFIX}_job_failures", "Jobs failed, by cause",
                                ["pipeline", "cause"], registry=r)
        self.command_seconds = Histogram(f"{_PREFIX}_scheduler_command_seconds",
                                         "How long a connector's call took",
                                         ["destination", "operation"],
                                         buckets=_COMMAND_BUCKETS, registry=r)
        self.command_errors = Counter(f"{_PREFIX}_scheduler_command_errors",
                                      "Connector calls that raised",
                                      ["destination", "operation"], registry=r)
        self.paused = Gauge(f"{_PREFIX}_destination_paused",
                            "1 while a destination (or start) is paused by a site fault",
                            ["destination"], registry=r)
        self._server: object | None = None
        self._job_labels: set[tuple[str, str, str]] = set()

    def prepare(self, destinations: Sequence[str], pipelines: Sequence[str]) -> None:
        """Create every labelled series at 0 for these destinations and pipelines.

        So the first event of each is a rise ``rate`` and ``increase`` can see: a series
        born at 1 is not.
        """
        for pipeline in pipelines:
            self.finished.labels(pipeline)
            self.queue_wait.labels(pipeline)
            for cause in FailureCause:
                self.failures.labels(pipeline, cause.value)
        for destination in destinations:
            self.paused.labels(destination)
            for pipeline in pipelines:
                self.submissions.labels(destination, pipeline)
            for operation in OPERATIONS:
                self.command_seconds.labels(destination, operation)
                self.command_errors.labels(destination, operation)

    @property
    def serving(self) -> bool:
        """Whether the endpoint is served (so the job counts are worth a query each cycle)."""
        return self._server is not None

    def serve(self, address: str, port: int) -> None:
        """Serve ``/metrics`` on ``address:port`` in a thread until `close`.

        Raises:
            OSError: the port cannot be bound (in use, or not allowed).
        """
        try:
            server, _thread = start_http_server(port, addr=address, registry=self.registry)
        except OSError as exc:
            raise OSError(f"metrics: cannot serve on {address}:{port}: "
                          f"{exc.strerror or exc}") from None
        self._server = server
        log.info("metrics served on http://%s:%d/metrics", address, server.server_port)

    @property
    def port(self) -> int | None:
        """The port served on, if serving (the one bound when asked for port 0)."""
        return None if self._server is None else int(self._server.server_port)  # type: ignore[attr-defined]

    def close(self) -> None:
        """Stop serving; idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()  # type: ignore[attr-defined]
            server.server_close()  # type: ignore[attr-defined]

    def cycle_ended(self, seconds: float, errors: int) -> None:
        """Count one cycle, how long it took and the site's problems it met."""
        self.cycles.inc()
        self.cycle_duration.observe(seconds)
        if errors:
            self.cycle_errors.inc(errors)
        self.last_cycle.set(time.time())

    def set_job_counts(self, counts: Mapping[tuple[str, str, str], int]) -> None:
        """Set the job gauges from ``(status, pipeline, destination) → count``; others to 0."""
        for labels in self._job_labels - counts.keys():
            self.jobs.labels(*labels).set(0)
        for labels, n in counts.items():
            self.jobs.labels(*labels).set(n)
        self._job_labels |= set(counts)

    def set_paused(self, paused: Mapping[str, bool]) -> None:
        """Set each destination's (and ``start``'s) paused gauge."""
        for name, flag in paused.items():
            self.paused.labels(name).set(1 if flag else 0)

    @contextlib.contextmanager
    def command(self, destination: str, operation: str) -> Iterator[None]:
        """Time a connector call; count it as an error if it raises (and re-raise)."""
        started = time.monotonic()
        try:
            yield
        except BaseException:
            self.command_errors.labels(destination, operation).inc()
            raise
        finally:
            self.command_seconds.labels(destination, operation).observe(
                time.monotonic() - started)

    def submitted(self, destination: str, pipeline: str, waited: float | None) -> None:
        """Count a submission and how long its job waited since its row was created."""
        self.submissions.labels(destination, pipeline).inc()
        if waited is not None and waited >= 0:
            self.queue_wait.labels(pipeline).observe(waited)

    def on_event(self, event: JobEvent, pipeline: str) -> None:
        """Count a finished or failed job (an `EventBus` subscriber calls this)."""
        if event.kind is EventKind.FINISHED:
            self.finished.labels(pipeline).inc()
        elif event.kind is EventKind.FAILED:
            self.failures.labels(pipeline, event.cause or FailureCause.PIPELINE).inc()

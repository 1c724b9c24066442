"""What a failed Slurm command's message means: worth trying again, or accounting is off.

Also `error_text`, the short form of a failed command's output that the connector's error
messages and logs carry.
"""

from __future__ import annotations

from efi_job_manager.toolkit import CommandResult, HostKeyError, PermanentError, TransientError

__all__ = ["TRANSIENT_MARKERS", "accounting_unavailable", "classify_sbatch_error", "error_text"]

_MESSAGE = 500  # characters of a failed command's output kept in a message


def error_text(result: CommandResult) -> str:
    """A failed command's message on one line: stderr, else stdout, else its exit status.

    Whitespace runs become one space; only the last 500 characters are kept (after ``…``).
    """
    text = (result.stderr.strip() or result.stdout.strip()) or f"exit status {result.returncode}"
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE else "…" + text[-_MESSAGE:]


#: What an error message of Slurm's holds (lower case) when trying again later can succeed.
#: A reply lost on its way back (socket timeout) may hide a job that *was* created: find it
#: by name before submitting again.
TRANSIENT_MARKERS: tuple[str, ...] = tuple(
    s.lower()
    for s in (
        "temporarily unavailable",  # "Resource temporarily unavailable" and the like
        "temporarily unable",  # "Slurm temporarily unable to accept job, sleeping and retrying"
        "Socket timed out",
        "Unable to contact slurm controller",
        "connect failure",
        "Connection refused",
        "Connection timed out",
        "Connection reset",
        "Zero Bytes were transmitted or received",
        "Transport endpoint is not connected",
        "backup controller in standby mode",
        "Communication connection failure",
        "Slurm controller not responding",
        # QOSMaxSubmitJobPerUserLimit, AssocMaxSubmitJobLimit: frees up as jobs end. (Not the
        # generic "Job violates accounting/QOS policy (job submit limit, …)" line that follows
        # it: Slurm prints that one for size and time limits too.)
        "MaxSubmitJob",
    )
)


def classify_sbatch_error(
    returncode: int, stderr: str
) -> type[TransientError] | type[PermanentError]:
    """Tell whether a failed ``sbatch`` is worth trying again.

    Transient (retry later, nothing about the job changes): the controller is unreachable,
    busy or timed out (``Unable to contact slurm controller``, ``Socket timed out…``,
    ``Slurm temporarily unable to accept job``, ``Resource temporarily unavailable``,
    ``connect failure``…), a submit-count limit that frees up as jobs end
    (``QOSMaxSubmitJobPerUserLimit``), sbatch killed by a signal (negative return code), ssh
    failing to connect (255), or sbatch not found (126/127: the cluster's environment is
    broken, not the job). A lost reply may hide a job that was created: look it up by name
    before submitting again.

    Permanent (the job as written will never be accepted): ``Invalid partition``,
    ``Invalid account``, ``Invalid qos``, and any other ``Batch job submission failed: …``
    or unrecognised error.

    Args:
        returncode: sbatch's exit status (as `subprocess` reports it).
        stderr: What sbatch (or ssh) wrote to stderr.

    Returns:
        `TransientError` or `PermanentError` (the class, for the caller to raise).
    """
    text = stderr.lower()
    if any(marker in text for marker in TRANSIENT_MARKERS):
        return TransientError
    if returncode < 0 or returncode in (126, 127, 255):
        return TransientError
    return PermanentError


# What sacct prints when it cannot use accounting: AccountingStorageType=none, or slurmdbd
# unreachable ("Problem talking to the database: Connection refused").
_ACCOUNTING_UNAVAILABLE = (
    "accounting storage is disabled",
    "problem talking to the database",
    "slurm_persist_conn_open",
    "slurmdbd",
)


def accounting_unavailable(stderr: str) -> bool:
    """Whether sacct's error says that accounting is disabled or slurmdbd is unreachable."""
    text = stderr.lower()
    return any(marker in text for marker in _ACCOUNTING_UNAVAILABLE)


def host_key_wait(job_id: int, exc: HostKeyError) -> TransientError:
    """A changed host key, as the error of one job's call: the job waits, it is not its fault.

    The manager fails a job on a `PermanentError`, and every job would fail; the key is the
    operator's to check, and the cycle reports it each time until then.
    """
    return TransientError(f"job {job_id} waits: {exc}")

"""What a job leaves on the cluster side, and its removal (``BaseConnector.release_job``).

A job with a ``remote_dir`` runs in ``remote_dir/<id>``: its inputs, the batch script, the
scheduler's output files and the pipeline's own working files (Nextflow's ``work/``, often
the largest part, which never comes back). Once the job's results are back and its row is
final, the manager releases the job (at once, or after the destination's ``keep_job_files``
through ``efi-job-manager clean``): `release` removes that directory with one ``rm -rf``
through the transport (a link in its place is removed, never followed), one call per
``chunk_size`` jobs for a sweep. A job run in place
(no ``remote_dir``) left nothing but its own job directory, which is the manager's.

`leftovers` lists the job directories in ``remote_dir`` (names made only of digits), so
that ``clean`` finds what older versions or a crash left.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from efi_connector_slurm.commands import chunks
from efi_connector_slurm.config import SlurmSettings
from efi_connector_slurm.parsing import error_text
from efi_job_manager.toolkit import TransientError, Transport

__all__ = ["leftovers", "release"]


def release(transport: Transport, settings: SlurmSettings, job_ids: Sequence[int]) -> None:
    """Remove each job's ``remote_dir/<id>``: one ``rm`` per ``chunk_size`` jobs.

    Without a ``remote_dir`` there is nothing to remove.

    Raises:
        TransientError: a removal failed or the cluster could not be reached.
    """
    if settings.remote_dir is None:
        return
    remote_dir = settings.remote_dir
    for chunk in chunks(list(job_ids), settings.chunk_size):
        directories = [posixpath.join(remote_dir, str(int(job_id))) for job_id in chunk]
        result = transport.run(["rm", "-rf", "--", *directories],
                               timeout=settings.command_timeout)
        if not result.ok:
            raise TransientError(f"cannot remove {', '.join(directories)} on "
                                 f"{transport.description}: {error_text(result)}")


def leftovers(transport: Transport, settings: SlurmSettings) -> list[int]:
    """The job ids that have a directory in ``remote_dir`` (none without one), in order.

    Raises:
        TransientError: ``remote_dir`` could not be listed.
    """
    if settings.remote_dir is None:
        return []
    result = transport.run(["find", settings.remote_dir, "-mindepth", "1", "-maxdepth", "1",
                            "-name", "[0-9]*", "-printf", "%f\\n"],
                           timeout=settings.command_timeout)
    if not result.ok:
        if "No such file" in result.stderr:
            return []
        raise TransientError(f"cannot list {settings.remote_dir} on {transport.description}: "
                             f"{error_text(result)}")
    return sorted(int(name) for name in result.stdout.split() if name.isdigit())

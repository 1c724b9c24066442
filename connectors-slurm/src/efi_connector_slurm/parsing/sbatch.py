"""Reading what ``sbatch --parsable`` prints: the new job's id."""

from __future__ import annotations

import re

from efi_job_manager.toolkit import PermanentError

__all__ = ["parse_sbatch_output"]

_SBATCH_ID = re.compile(r"(\d+)(?:;\S+)?")


def parse_sbatch_output(stdout: str) -> str:
    """Return the job id printed by ``sbatch --parsable``.

    sbatch prints ``ID``, or ``ID;cluster`` on a federation or with ``--clusters``. The last
    non-empty line is read, so a login banner or a site profile's chatter before it does not
    matter.

    Raises:
        PermanentError: there is no id in the output (the text is in the message).
    """
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    match = _SBATCH_ID.fullmatch(lines[-1]) if lines else None
    if match is None:
        raise PermanentError(f"sbatch printed no job id: {stdout.strip()!r}")
    return match.group(1)

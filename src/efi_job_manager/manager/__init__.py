"""`JobManager`: one cycle (`JobManager.run_once`) and the daemon loop.

A cycle, in order:

1. propagate cancellations: jobs the web set to ``cancelled`` that still have a
   scheduler job are cancelled there once (recorded in the job's directory);
2. recover ``running`` jobs with no scheduler id past the grace period
   (DESIGN §4): take the job over with a compare-and-set, look it up by name,
   adopt the oldest submission and cancel the rest, or submit it again;
3. poll every ``running`` job with one batched status call per destination,
   and move the terminal ones to ``finished``/``failed`` with their results;
4. claim ``new`` jobs up to the capacity, oldest first, stage and submit them.

A failure that is the job's fault fails that job with a reason written to its
directory (``failure.json``) and to the log; the other jobs go on. A failure
that is not the job's fault fails no job (`efi_job_manager.faults`): a database,
scheduler or transport that does not answer skips the step and the loop backs
off; a results or input directory that is missing, unwritable or full, or a
pipeline command that cannot be run on a destination, sends the job back to
``new`` and holds new jobs back (from that destination) until it clears, said
once.
"""

from efi_job_manager.manager.core import JobManager
from efi_job_manager.manager.report import CycleReport, Destination, PlannedAction
from efi_job_manager.manager.starting import SITE_CHECK_EVERY

__all__ = ["SITE_CHECK_EVERY", "CycleReport", "Destination", "JobManager", "PlannedAction"]

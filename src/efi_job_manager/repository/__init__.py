"""`JobRepository`: every SQL statement of the product.

The manager never writes SQL; it asks the repository. Every status change is
one compare-and-set ``UPDATE … WHERE id = :id AND status = :from`` with its
column updates in the same transaction, and says whether it won: zero rows
means someone else (the web, an operator, another manager) moved the job
first, and the caller must re-read rather than overwrite.

Queries that run every cycle select by ``status`` (indexed: ``ix_Job_status``),
so a cycle's cost does not grow with the number of finished rows.

Rows whose ``job_type`` the model does not know are never loaded as objects
(SQLAlchemy would refuse them); `new_jobs_of_unknown_type` reports them so
the manager can fail them with a reason.

One class made of a part per module: `base` (the engine, the model, exact
comparisons), `reading` (the queries), `claiming` (count and claim under one
lock), `writing` (compare-and-set transitions, the scheduler id, results),
`core` (`JobRepository`); `engine` (`make_engine`) and `schedulerid` (what a
scheduler id may be) stand alone.
"""

from __future__ import annotations

from efi_job_manager.repository.claiming import CandidateJob, Gate, RunningCounts
from efi_job_manager.repository.core import JobRepository
from efi_job_manager.repository.engine import make_engine
from efi_job_manager.repository.reading import JobRef, JobRow, UnknownJobRow
from efi_job_manager.repository.reading import since as since
from efi_job_manager.repository.schedulerid import InvalidSchedulerId, column_value, is_stand_in
from efi_job_manager.repository.writing import Completion

__all__ = [
    "CandidateJob",
    "Completion",
    "Gate",
    "InvalidSchedulerId",
    "JobRef",
    "JobRepository",
    "JobRow",
    "RunningCounts",
    "UnknownJobRow",
    "column_value",
    "is_stand_in",
    "make_engine",
]

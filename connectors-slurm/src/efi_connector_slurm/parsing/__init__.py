"""Reading what Slurm's client commands print (pure: nothing here runs a program).

One module per command whose output is read: ``sacct``, ``squeue`` (also the jobs found by
name), ``scontrol``, ``sbatch``, ``sbatch_batch`` (the script that submits many jobs in one
call) and ``sinfo``. ``states`` reads the states, exit codes and
times they all print: `map_slurm_state` is the one place where a Slurm state becomes a
`SchedulerState` (the table of DESIGN.md §5). ``errors`` tells what a failed command's
message means.

Every parser works line by line (``lines``): a line it cannot read is logged and skipped, and
never costs the other jobs their status. The outputs these functions read are the ones asked
for by `efi_connector_slurm.commands`; ``tests/data`` holds what a real Slurm 22.05 printed
for each scenario. Every module logs as ``efi_connector_slurm.parsing``.
"""

from __future__ import annotations

from efi_connector_slurm.parsing.errors import (
    TRANSIENT_MARKERS,
    accounting_unavailable,
    classify_sbatch_error,
    error_text,
    host_key_wait,
)
from efi_connector_slurm.parsing.rest import (
    accounting_failure,
    parse_rest_accounting,
    parse_rest_jobs,
    parse_rest_submit,
    rest_cancel_error,
    rest_failure,
    rest_records,
)
from efi_connector_slurm.parsing.sacct import parse_sacct, parse_workdirs
from efi_connector_slurm.parsing.sbatch import parse_sbatch_output
from efi_connector_slurm.parsing.sbatch_batch import (
    SbatchBatch,
    SbatchRecord,
    classify_record,
    parse_sbatch_batch,
)
from efi_connector_slurm.parsing.scontrol import parse_scontrol_show_job, scontrol_fields
from efi_connector_slurm.parsing.sinfo import parse_partitions
from efi_connector_slurm.parsing.squeue import SqueueMemo, parse_find_job, parse_squeue
from efi_connector_slurm.parsing.states import (
    CANCELLED_STATES,
    FAILED_STATES,
    QUEUED_STATES,
    RUNNING_STATES,
    map_slurm_state,
    parse_exit_code,
    parse_slurm_time,
)

__all__ = [
    "CANCELLED_STATES",
    "FAILED_STATES",
    "QUEUED_STATES",
    "RUNNING_STATES",
    "TRANSIENT_MARKERS",
    "SbatchBatch",
    "SbatchRecord",
    "SqueueMemo",
    "accounting_failure",
    "accounting_unavailable",
    "classify_record",
    "classify_sbatch_error",
    "error_text",
    "host_key_wait",
    "map_slurm_state",
    "parse_exit_code",
    "parse_find_job",
    "parse_partitions",
    "parse_rest_accounting",
    "parse_rest_jobs",
    "parse_rest_submit",
    "parse_sacct",
    "parse_sbatch_batch",
    "parse_sbatch_output",
    "parse_scontrol_show_job",
    "parse_slurm_time",
    "parse_squeue",
    "parse_workdirs",
    "rest_cancel_error",
    "rest_failure",
    "rest_records",
    "scontrol_fields",
]

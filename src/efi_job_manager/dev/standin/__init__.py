"""A stand-in for EST's Nextflow pipelines, for machines without Nextflow or EST.

Run as ``python -m efi_job_manager.dev.standin <pipeline_name> <params_file>`` in the
job directory (`efi_job_manager.catalogue.STANDIN_COMMAND`). It checks the
parameters against what EST's pipeline can run (`SCHEMAS`, read from EST's
pipelines), refusing with ``ERROR ~`` lines and exit status 2 what EST would fail
on or silently ignore; otherwise it prints Nextflow-like progress and writes small
but real files with EST's names, and a ``stats.json`` with EST's keys, into
``final_output_dir``. ``1.out.parquet`` is a placeholder, not a readable Parquet file.

Environment:
    ``EFI_STANDIN_DELAY``: seconds to spend running (default 0). ``EFI_STANDIN_FAIL``:
    an exit status (1 to 255) to end with, writing no results, as a failed pipeline
    would. ``EFI_STANDIN_ALLOW_UNKNOWN=1``: an unknown key is a warning, not an error
    (Nextflow itself ignores it).
"""

from efi_job_manager.dev.standin.checks import SCHEMAS, Schema, validate
from efi_job_manager.dev.standin.command import EXIT_INVALID, EXIT_RUNTIME, main
from efi_job_manager.dev.standin.outputs import StandinError
from efi_job_manager.dev.standin.pipelines import RUNS

__all__ = ["EXIT_INVALID", "EXIT_RUNTIME", "RUNS", "SCHEMAS", "Schema", "StandinError", "main",
           "validate"]

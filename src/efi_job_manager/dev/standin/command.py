"""The stand-in's command: check a params file, pretend to run, write EST's outputs.

Exit status 2 when the parameters are refused (``ERROR ~`` lines on stderr, as
Nextflow prints), 1 when the run fails, 0 otherwise.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from efi_job_manager.dev.standin.checks import SCHEMAS, Schema, validate
from efi_job_manager.dev.standin.outputs import StandinError, seed, write
from efi_job_manager.dev.standin.pipelines import RUNS, Run

__all__ = ["EXIT_INVALID", "EXIT_RUNTIME", "main"]

EXIT_INVALID: Final = 2
EXIT_RUNTIME: Final = 1


def _env_number(name: str, kind: Callable[[str], float]) -> float | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}={raw!r} must be a finite number of 0 or more")
    return value


def _say(line: str) -> None:
    print(line, flush=True)


def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the stand-in; return the exit status (0, 1 for a failed run, 2 for rejected input)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        _err("usage: python -m efi_job_manager.dev.standin <pipeline_name> <params_file>")
        _err(f"pipelines: {', '.join(sorted(SCHEMAS))}")
        return EXIT_INVALID
    name, params_path = args
    schema = SCHEMAS.get(name)
    if schema is None:
        _err(f"ERROR ~ unknown pipeline {name!r} (known: {', '.join(sorted(SCHEMAS))})")
        return EXIT_INVALID
    try:
        delay = _env_number("EFI_STANDIN_DELAY", float) or 0.0
        fail = _env_number("EFI_STANDIN_FAIL", int)
        if fail is not None and not 0 <= fail <= 255:
            raise ValueError("EFI_STANDIN_FAIL must be an exit status from 0 to 255")
    except ValueError as exc:
        _err(f"ERROR ~ {exc}")
        return EXIT_INVALID
    try:
        params = json.loads(Path(params_path).read_text(encoding="utf-8"))
    except OSError as exc:
        _err(f"ERROR ~ cannot read the params file {params_path!r}: {exc.strerror or exc}")
        return EXIT_INVALID
    except ValueError as exc:
        _err(f"ERROR ~ the params file {params_path!r} is not valid JSON: {exc}")
        return EXIT_INVALID
    if not isinstance(params, dict):
        _err(f"ERROR ~ the params file {params_path!r} must hold a JSON object")
        return EXIT_INVALID
    allow_unknown = os.environ.get("EFI_STANDIN_ALLOW_UNKNOWN", "") in {"1", "true", "yes"}
    errors, warnings = validate(schema, params, allow_unknown=allow_unknown)
    for warning in warnings:
        _err(f"WARN: {warning}")
    if errors:
        for error in errors:
            _err(f"ERROR ~ {error}")
        return EXIT_INVALID

    return _execute(schema, RUNS[name], params, delay=delay, fail=int(fail or 0))


def _execute(schema: Schema, run: Run, params: Mapping[str, Any], *, delay: float,
             fail: int) -> int:
    run_name = f"standin-{seed(schema.name, params.get('job_id')) % 16**6:06x}"
    _say("N E X T F L O W  ~  version 24.10.0 (efi-job-manager stand-in)")
    _say(f"Launching `{schema.workflow}` [{run_name}] DSL2 - revision: stand-in")
    started = time.monotonic()
    step = delay / max(1, len(run.processes))
    for i, process in enumerate(run.processes):
        digest = f"{seed(run_name, process) % 256:02x}/{seed(process) % 16**6:06x}"
        _say(f"[{digest}] Submitted process > {process} ({i + 1})")
        if step:
            time.sleep(step)
    if fail:
        last = run.processes[-1]
        _err(f"ERROR ~ Error executing process > '{last}'")
        _err("")
        _err("Caused by:")
        _err(f"  Process `{last}` terminated with an error exit status ({fail}) "
             f"(EFI_STANDIN_FAIL)")
        return fail
    out = Path(params["final_output_dir"])
    try:
        stats = run.write(params, out)
    except StandinError as exc:
        _err(f"ERROR ~ {exc}")
        return EXIT_RUNTIME
    write(out / "stats.json", json.dumps(stats, indent=2, sort_keys=True) + "\n")
    elapsed = time.monotonic() - started
    _say(f"Completed at: {datetime.now(UTC).strftime('%d-%b-%Y %H:%M:%S')}")
    _say(f"Duration    : {elapsed:.1f}s")
    _say(f"Succeeded   : {len(run.processes)}")
    return 0

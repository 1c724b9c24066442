"""Run EST's own parameter scripts for every golden case and record what they write.

    uv run --frozen python scripts/est_reference.py --est /path/to/EST [--check]

``--est`` is a checkout (or copy) of EnzymeFunctionInitiative/EST with its ``bin/``
(the scripts need only Python; ``jinja2`` is stubbed when missing, since no run
script is written). For each case of ``tests/golden/params/golden_cases.py`` the product
prepares the row, and EST's script is run with the exact arguments of
`PreparedJob.est_call` (paths moved into a scratch tree whose files exist, as EST's
``check_args`` demands). EST's output, with paths put back, becomes
``tests/golden/params/<case>.json``; the calls and the scripts' SHA-256 go to
``est-reference.json``. ``--check`` compares instead of writing and exits 1 on any
difference. The fidelity tests compare the product against these files.

Two of EST's scripts cannot run as published; the run works around each the least
it can, and ``tests/golden/params/README.md`` says so: ``create_cgfpquantify`` reads
``args.metagenome_db``, which its parser never defines (set to ``--metagenome-db-dir``
for ``check_args`` and removed before rendering), and ``create_taxonomy``'s
``render_params`` needs ``fasta_db``, for which its parser has no option (passed to
``render_params`` directly, as `EstCall.extras`).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from efi_job_manager import models
from efi_job_manager.catalogue import Catalogue, EfiDatabases
from efi_job_manager.catalogue.estscripts import EstCall

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "golden" / "params"
MANIFEST = GOLDEN / "est-reference.json"

#: Runs one EST script in a child process: its parser, ``check_args`` and ``render_params``.
RUNNER = r"""
import importlib, json, sys, types
est_bin, script, inputs, argv = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4:]
sys.path.insert(0, est_bin)
try:
    import jinja2
except ImportError:
    stub = types.ModuleType("jinja2")
    stub.Environment = stub.FileSystemLoader = stub.select_autoescape = None
    sys.modules["jinja2"] = stub
module = importlib.import_module(script[:-3])
args = module.create_parser().parse_args(argv)
quantify = script == "create_cgfpquantify_nextflow_params.py"
if quantify:
    args.metagenome_db = args.metagenome_db_dir
args = module.check_args(args)
if quantify:
    del args.metagenome_db
module.render_params(**vars(args), **inputs)
"""

DIRECTORIES = frozenset({"--identify-dir", "--metagenome-db-dir", "--shortbred-src"})
DATABASES = frozenset({"--fasta-db", "--ref-fasta-db"})  # EST globs "<path>.*"


def load_cases() -> ModuleType:
    """Import ``tests/golden/params/golden_cases.py``."""
    sys.path.insert(0, str(GOLDEN))
    return importlib.import_module("golden_cases")


def catalogue(cases: ModuleType) -> Catalogue:
    """Return the catalogue of the golden site."""
    return Catalogue.from_settings(
        pipeline_dir=Path(cases.PIPELINE_DIR), config_dir=Path(cases.CONFIG_DIR), command=None,
        params=cases.SITE_PARAMS, overrides={}, efi_db=EfiDatabases(**cases.EFI_DB))


def prepared_calls(cases: ModuleType, root: Path) -> dict[str, EstCall]:
    """Return each case's EST call as the product makes it."""
    input_dir, results_dir = cases.make_site(root)
    cat = catalogue(cases)
    calls: dict[str, EstCall] = {}
    for name, (job_type, row) in cases.CASES.items():
        job = models.JOB_CLASSES[job_type](uuid=f"golden-{name}", status="new", isPublic=False,
                                           **row)
        prepared = cat.prepare(job, job_dir=Path(cases.job_dir(name)), input_dir=input_dir,
                               results_dir=results_dir)
        if prepared.est_call is None:
            raise SystemExit(f"{name}: {job_type} runs no EST script")
        calls[name] = prepared.est_call
    return calls


def _move(value: str, scratch: Path) -> str:
    if value.startswith("/"):
        return str(scratch / value.lstrip("/"))
    key, sep, rest = value.partition("=")
    if sep and rest.startswith("/"):
        return f"{key}={scratch / rest.lstrip('/')}"
    return value


def _touch(path: Path, *, directory: bool = False) -> None:
    if directory:
        path.mkdir(parents=True, exist_ok=True)
        (path / "placeholder").touch()
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def run_est(est: Path, name: str, call: EstCall, job_dir: str, work: Path) -> dict[str, Any]:
    """Run EST's script for one call; return its params with this product's paths."""
    scratch = work / "root"
    out = work / "out" / name
    argv = [call.subcommand] if call.subcommand else []
    for flag, value in call.args:
        argv.append(flag)
        if value is None:
            continue
        if flag == "--output-dir":
            argv.append(str(out))
            continue
        moved = _move(value, scratch)
        argv.append(moved)
        if moved != value and flag != "--filter":
            if flag in DATABASES:
                _touch(Path(moved + ".pal"))
            else:
                _touch(Path(moved), directory=flag in DIRECTORIES)
    inputs = {k: _move(v, scratch) for k, v in call.extras.items()}
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, str(est / "bin"), call.script.name, json.dumps(inputs),
         *argv], cwd=est, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{name}: EST's {call.script.name} failed ({result.returncode}):\n"
                         f"{result.stdout}{result.stderr}")
    params = json.loads((out / "params.yml").read_text(encoding="utf-8"))

    def back(value: Any) -> Any:
        if isinstance(value, str):
            for old, new in ((str(out), "{job_dir}"), (str(scratch / job_dir.lstrip("/")),
                                                       "{job_dir}"), (str(scratch), ""),
                             (str(est), "{est}")):
                value = value.replace(old, new)
            return value
        if isinstance(value, list):
            return [back(v) for v in value]
        return value

    return {k: back(v) for k, v in params.items()}


def normalized_argv(call: EstCall, job_dir: str) -> list[str]:
    """Return a call's arguments with its job directory written ``{job_dir}``."""
    return [a.replace(job_dir, "{job_dir}") for a in call.argv()]


def main() -> int:
    """Regenerate (or ``--check``) the goldens from EST's own scripts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--est", type=Path, required=True, help="an EST checkout with bin/")
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    options = parser.parse_args()
    est = options.est.resolve()
    cases = load_cases()
    differ = 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        calls = prepared_calls(cases, work / "site")
        manifest: dict[str, Any] = {"scripts": {}, "cases": {}}
        for name, call in calls.items():
            job_dir = cases.job_dir(name)
            params = run_est(est, name, call, job_dir, work)
            for script in (call.script.name, "shared_args.py"):
                digest = hashlib.sha256((est / "bin" / script).read_bytes()).hexdigest()
                manifest["scripts"][script] = {"sha256": digest}
            manifest["cases"][name] = {
                "job_type": cases.CASES[name][0], "script": call.script.name,
                "argv": normalized_argv(call, job_dir),
                "render_inputs": dict(call.extras)}
            text = json.dumps(params, indent=2, sort_keys=True) + "\n"
            target = GOLDEN / f"{name}.json"
            if options.check:
                if not target.is_file() or target.read_text() != text:
                    print(f"differs: {target.name}")
                    differ += 1
            else:
                target.write_text(text)
        manifest["scripts"] = dict(sorted(manifest["scripts"].items()))
        text = json.dumps(manifest, indent=2) + "\n"
        if options.check:
            if not MANIFEST.is_file() or MANIFEST.read_text() != text:
                print(f"differs: {MANIFEST.name}")
                differ += 1
        else:
            MANIFEST.write_text(text)
    print(f"{len(calls)} cases, {differ} differing" if options.check
          else f"{len(calls)} goldens written from {est}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())

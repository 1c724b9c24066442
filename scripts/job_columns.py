"""Write docs/job-columns.md: each job type's columns, derived by running the catalogue.

Nothing here restates the mapping. For every job type, the golden rows
(``tests/golden/params/golden_cases.py``: the rows EST's own scripts were run for) are
prepared with the real `Catalogue` at the golden site, recording every column the
catalogue reads (`RowReader.raw`). Then each column read is varied, one row and one
column at a time: removed, and set to each other value a golden row holds for it (the
parent column also to a copy of the parent job's results under another id).

- A column is **required** when removing it makes `Catalogue.prepare` raise
  `JobInputError` naming it (in every row of the job type; in some rows only: required
  there, the error says when).
- What it **becomes** is everything that differs between the row's `PreparedJob` and the
  varied row's: the EST script's arguments (``--flag``; ``--filter key=…`` per kind of
  filter entry), values passed to ``render_params``, files written into the job
  directory, params.json keys added beyond EST's script, and staged files. An argument
  whose value another column sets, and which this column only switches on (or off), is
  listed as what the column enables (or replaces).
- A column that stops (or starts) being read when another is varied is shown as read
  only with (not read with) that column.

    uv run --frozen python scripts/job_columns.py          # rewrite docs/job-columns.md
    uv run --frozen python scripts/job_columns.py --check  # exit 1 when the page differs
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from efi_job_manager import models
from efi_job_manager.catalogue import Catalogue, EfiDatabases, PreparedJob
from efi_job_manager.catalogue.estcalls import EstCall
from efi_job_manager.catalogue.jobtypes import JOB_TYPES, JobType
from efi_job_manager.catalogue.rowvalues import JobInputError, RowReader, is_empty

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "params"
PAGE = ROOT / "docs" / "job-columns.md"
REGENERATE = "uv run --frozen python scripts/job_columns.py"

#: Rows for job types without a golden case (they run no EST script).
EXTRA_ROWS: dict[str, tuple[str, dict[str, Any]]] = {
    "gnt_view_diagram-minimal": ("gnt_view_diagram", {
        "id": 200, "efi_db_version": "2025_04", "jobFilename": "diagram.sqlite"}),
}
#: Added to a parent job's id for the copy of its results a varied row points at.
PARENT_COPY_OFFSET = 1000

#: An effect of a row: ``key → [(what is compared, what is shown)]``.
Effects = dict[str, list[tuple[str, str]]]


def load_cases() -> ModuleType:
    """Import ``tests/golden/params/golden_cases.py``."""
    if str(GOLDEN) not in sys.path:
        sys.path.insert(0, str(GOLDEN))
    return importlib.import_module("golden_cases")


@contextmanager
def recorded_reads() -> Iterator[list[str]]:
    """Record, in order, every column any `RowReader` reads while the block runs."""
    reads: list[str] = []
    real = RowReader.raw

    def raw(self: RowReader, column: str) -> Any:
        reads.append(column)
        return real(self, column)

    RowReader.raw = raw  # type: ignore[method-assign]
    try:
        yield reads
    finally:
        RowReader.raw = real  # type: ignore[method-assign]


@dataclass
class Column:
    """What varying one column of one job type showed.

    Attributes:
        name: The column.
        set_in: The rows (case names) that set it.
        required_in: The rows whose preparation fails, naming it, without it.
        why: The error's reason.
        changes_value: Keys whose value changed when the column changed.
        switches: Keys that appeared or went: True when present with the column set,
            False when present with it empty, None when seen only between two values.
        tried: A value of a varied row that set it, and what that row handed on.

    """

    name: str
    set_in: list[str] = field(default_factory=list)
    required_in: list[str] = field(default_factory=list)
    why: str = ""
    changes_value: dict[str, None] = field(default_factory=dict)
    switches: dict[str, bool | None] = field(default_factory=dict)
    tried: tuple[Any, Effects] | None = None


@dataclass
class JobColumns:
    """One job type: its rows, the columns read (in the order read) and each row's effects."""

    job_type: JobType
    cases: list[str]
    call: str = ""
    columns: dict[str, Column] = field(default_factory=dict)
    rows: dict[str, tuple[dict[str, Any], Effects]] = field(default_factory=dict)
    #: ``column → {other column: read only with it set (True) or only without it (False)}``
    read_with: dict[str, dict[str, bool]] = field(default_factory=dict)


class Runner:
    """Prepares golden rows (and varied ones) at the golden site, recording the columns read."""

    def __init__(self, cases: ModuleType, root: Path, reads: list[str]) -> None:
        """Write the golden site under ``root``, with copies of the parent jobs' results."""
        self.rows: dict[str, tuple[str, dict[str, Any]]] = {**cases.CASES, **EXTRA_ROWS}
        self.reads = reads
        self.input_dir, self.results_dir = cases.make_site(root)
        for _, row in self.rows.values():
            if (parent := row.get("parentJob_id")) is not None:
                copy = self.results_dir / str(parent + PARENT_COPY_OFFSET)
                if not copy.exists():
                    shutil.copytree(self.results_dir / str(parent), copy)
        self.catalogue = Catalogue.from_settings(
            pipeline_dir=Path(cases.PIPELINE_DIR), config_dir=Path(cases.CONFIG_DIR),
            command=None, params=cases.SITE_PARAMS, overrides={},
            efi_db=EfiDatabases(**cases.EFI_DB))

    def prepare(self, job_type: str, row: Mapping[str, Any], job_dir: str
                ) -> tuple[PreparedJob, list[str]]:
        """Prepare one row; return it and the columns read, in order."""
        job = models.JOB_CLASSES[job_type](uuid="job-columns", status="new", isPublic=False,
                                           **row)
        self.reads.clear()
        prepared = self.catalogue.prepare(job, job_dir=Path(job_dir), input_dir=self.input_dir,
                                          results_dir=self.results_dir)
        return prepared, list(dict.fromkeys(self.reads))

    def values(self, column: str) -> list[Any]:
        """Return the values a column is varied to: removed, then each golden value."""
        out: list[Any] = [None]
        for _, row in self.rows.values():
            value = row.get(column)
            if not is_empty(value) and not any(_same(value, v) for v in out):
                out.append(value)
            if column == "parentJob_id" and value is not None:
                out.append(value + PARENT_COPY_OFFSET)
        return out


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def effects(prepared: PreparedJob, job_dir: str) -> Effects:
    """Return everything a prepared row hands on, keyed as the page names it."""
    out: Effects = {}

    def put(key: str, compared: str, shown: str) -> None:
        out.setdefault(key, []).append((compared, shown.replace(job_dir, "{job_dir}")))

    call = prepared.est_call
    if call is not None:
        for flag, value in call.args:
            put(*_arg(call, flag, value))
        for name, value in call.extras.items():
            put(f"`render_params` input `{name}`", value, f"render_params {name}: {value}")
    for name, text in prepared.extra_files.items():
        put(f"file `{name}`", text, "")
    for key in sorted(set(prepared.params) - set(prepared.est_params)):
        text = json.dumps(prepared.params[key])
        put(f"params.json `{key}`", text, f"params.json {key}: {text}")
    for rel, source in prepared.inputs.items():
        put(f"staged `{rel.split('/')[0]}/…`", f"{rel} <- {source}", rel)
    return out


def _arg(call: EstCall, flag: str, value: str | None) -> tuple[str, str, str]:
    negated = flag.startswith("--no-")
    option = call.script.option("--" + flag[5:] if negated else flag, call.subcommand)
    if option.kind == "bool":
        return f"`--[no-]{option.flag[2:]}`", flag, flag
    if value is None:
        return f"`{flag}`", flag, flag
    if option.kind == "append":
        kind = value.split("=", 1)[0] + "=…" if "=" in value else value
        return f"`{flag} {kind}`", value, f"{flag} {value}"
    return f"`{flag}`", value, f"{flag} {value}"


def derive(runner: Runner) -> dict[str, JobColumns]:
    """Run every job type's rows, and each column varied; return what they showed."""
    found: dict[str, JobColumns] = {}
    for job_type, jt in JOB_TYPES.items():
        names = [n for n, (t, _) in runner.rows.items() if t == job_type]
        if not names:
            raise SystemExit(f"{job_type}: no golden row (add one to golden_cases.py or "
                             f"EXTRA_ROWS in {Path(__file__).name})")
        jc = found[job_type] = JobColumns(jt, names)
        for name in names:
            _vary_row(runner, jc, name)
    return found


def _vary_row(runner: Runner, jc: JobColumns, name: str) -> None:
    job_type, row = runner.rows[name]
    job_dir = f"/jobs/{row['id']}"  # the case's job directory, whatever the varied row's id
    base, base_reads = runner.prepare(job_type, row, job_dir)
    base_fx = effects(base, job_dir)
    jc.rows[name] = (row, base_fx)
    if base.est_call is not None:
        jc.call = f"{base.est_call.script.name} {base.est_call.subcommand or ''}".strip()
    for column in base_reads:
        col = jc.columns.setdefault(column, Column(column))
        before = row.get(column)
        if not is_empty(before):
            col.set_in.append(name)
        for after in runner.values(column):
            if _same(after, before):
                continue
            try:
                varied, reads = runner.prepare(job_type, {**row, column: after}, job_dir)
            except JobInputError as exc:
                if after is None and exc.column == column:
                    col.required_in.append(name)
                    col.why = col.why or str(exc).removeprefix(
                        f"{column} is required for {job_type}: ").removeprefix(f"{column} = None: ")
                continue
            varied_fx = effects(varied, job_dir)
            if col.tried is None and not is_empty(after):
                col.tried = (after, varied_fx)
            # True: the variation sets the column; False: it empties it; None: another value
            turned_on = None if is_empty(before) == is_empty(after) else not is_empty(after)
            _compare(col, turned_on, base_fx, varied_fx)
            _gates(jc, column, turned_on, base_reads, reads)


def _compare(col: Column, turned_on: bool | None, base: Effects, varied: Effects) -> None:
    """Record which keys changed value, and which appeared or went, between two rows."""
    for key in (*base, *(k for k in varied if k not in base)):
        if key in base and key in varied:
            if [c for c, _ in base[key]] != [c for c, _ in varied[key]]:
                col.changes_value[key] = None
        elif col.switches.get(key) is None:
            col.switches[key] = None if turned_on is None else \
                key in (varied if turned_on else base)
    for key in [k for k in col.switches if k in col.changes_value]:
        del col.switches[key]


def _gates(jc: JobColumns, column: str, turned_on: bool | None, base: list[str],
           varied: list[str]) -> None:
    """Record columns read only with (or only without) ``column``, from one variation."""
    for other in (c for c in base if c not in varied):
        jc.read_with.setdefault(other, {}).setdefault(column, turned_on is not True)
    for other in (c for c in varied if c not in base):
        jc.read_with.setdefault(other, {}).setdefault(column, turned_on is not False)


# -- the page ---------------------------------------------------------------------------


def sources(jc: JobColumns, col: Column) -> dict[str, str]:
    """Return, for each key ``col`` only switches, the column that sets it instead."""
    setters = {k: c.name for c in jc.columns.values() if c is not col for k in c.changes_value}
    gated = {k: c.name for c in jc.columns.values()
             if jc.read_with.get(c.name, {}).get(col.name) for k in c.switches}
    return {k: src for k in col.switches if (src := setters.get(k) or gated.get(k))}


def own_keys(jc: JobColumns, col: Column) -> list[str]:
    """Return the keys a column sets: those whose value it changes, or that only it switches."""
    switched_for = sources(jc, col)
    return [*col.changes_value, *(k for k in col.switches if k not in switched_for)]


def becomes(jc: JobColumns, col: Column) -> str:
    """Return what a column becomes: the keys it sets, then those it only switches."""
    own = own_keys(jc, col)
    parts = [", ".join(own)] if own else []
    switched: dict[str, list[str]] = {}
    for key, src in sources(jc, col).items():
        how = {True: "with it", False: "instead of it", None: "switches"}[col.switches[key]]
        switched.setdefault(how, []).append(f"{key} (from `{src}`)")
    parts += [f"{how}: {', '.join(keys)}" for how, keys in switched.items()]
    if parts:
        return "; ".join(parts)
    return "— (no change seen)" if col.set_in or col.tried else "— (no golden row sets it)"


def required(jc: JobColumns, col: Column) -> str:
    """Return whether a column is required (with the error's reason), and when it is read."""
    if not col.required_in:
        text = "optional"
    elif col.required_in == jc.cases:
        text = f"**required**: {col.why}"
    else:
        text = f"required in {', '.join(f'`{c}`' for c in col.required_in)}: {col.why}"
    gates = jc.read_with.get(col.name, {})
    only = [f"`{c}`" for c, on in gates.items() if on]
    never = [f"`{c}`" for c, on in gates.items() if not on]
    notes = ([f"read only with {', '.join(only)}"] if only else []) + \
        ([f"not read with {', '.join(never)}"] if never else [])
    return "; ".join([text, *notes])


def example(jc: JobColumns, col: Column) -> str:
    """Return the first golden value of a column and what it became (a varied row's if none)."""
    keys = own_keys(jc, col)
    found = [(jc.rows[n][0][col.name], jc.rows[n][1], "") for n in col.set_in]
    if col.tried is not None:
        found.append((*col.tried, " (a varied row)"))
    for value, fx, note in found:
        shown = [s for key in keys for _, s in fx.get(key, ()) if s and len(s) <= 70]
        if shown:
            text = f'"{value}"' if isinstance(value, str) else json.dumps(value)
            text = text if len(text) <= 30 else text[:29] + "…"
            return f"`{text}` → {'; '.join(f'`{s}`' for s in shown)}{note}"
    return ""


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def section(jc: JobColumns) -> list[str]:
    """Return the Markdown section of one job type."""
    jt = jc.job_type
    script = (f"EST script: `{jc.call}`, workflow `{jt.workflow}`" if jc.call
              else "No EST script: no pipeline runs")
    lines = [f"## `{jt.job_type}`", "",
             f"{script}. Rows run: {', '.join(f'`{c}`' for c in jc.cases)}.", ""]
    if jt.upload is not None:
        lines.append(f"- Upload: `{jt.upload.column}` "
                     f"({'required' if jt.upload.required else 'optional'}), staged as "
                     f"`input/<name>`.")
    if jt.parent is not None:
        files = ", ".join(f"`{n}`" + ("" if req else " (if present)")
                          for n, req in jt.parent.files)
        lines.append(f"- Parent job: `{jt.parent.column}`; from its results {files}, staged "
                     f"as `parent/<name>`.")
    if jt.upload is not None or jt.parent is not None:
        lines.append("")
    lines += ["| column | required | becomes | e.g. |", "|---|---|---|---|"]
    lines += [f"| `{c.name}` | {_md(required(jc, c))} | {_md(becomes(jc, c))} | "
              f"{_md(example(jc, c))} |" for c in jc.columns.values()]
    lines.append("")
    claimed = {k for c in jc.columns.values() for k in (*c.changes_value, *c.switches)}
    first: Effects = {}
    for _, fx in jc.rows.values():
        for key, entries in fx.items():
            first.setdefault(key, entries)
    rest = [f"`{entries[0][1]}`" if entries[0][1] else key
            for key, entries in first.items() if key not in claimed]
    if rest:
        lines += [f"From the job directory and the site, not a column: {_md(', '.join(rest))}.",
                  ""]
    if jt.unused:
        lines.append("Not read (`JobType.unused`):")
        lines += [f"- `{column}`: {why}" for column, why in jt.unused.items()]
        lines.append("")
    return lines


def render(found: Mapping[str, JobColumns]) -> str:
    """Return the whole page."""
    lines = [
        "# The Job table's columns, per job type",
        "",
        "<!-- Generated by scripts/job_columns.py; do not edit. Regenerate with:",
        f"     {REGENERATE} -->",
        "",
        "Which columns of EFI-Web's `Job` row each job type reads, which it requires, and what",
        "each becomes in the call of EST's `bin/create_*_nextflow_params.py` (the call whose",
        "params file the job runs with: [est-params.md](est-params.md)). This page is generated",
        "by running the catalogue, not written by hand: each job type's golden rows",
        "(`tests/golden/params/golden_cases.py`, the rows EST's own scripts were run for) are",
        "prepared at the golden site while every column read is recorded; then each column read",
        "is removed, and set to each other value a golden row holds, one at a time.",
        "`tests/test_docs_job_columns.py` fails when the page and the code differ.",
        "",
        "- **required**: removing the column fails the job with an error naming it (the reason",
        "  shown is the error's), at the golden site: a site without a default EFI database",
        "  (`[pipelines.efi_db] default`) requires `efi_db_version` too.",
        "- **becomes**: what changes with the column: arguments of EST's script (`--flag`;",
        "  `--filter key=…` for each kind of filter entry), files written into the job directory,",
        "  params.json keys added beyond EST's script, files staged. *with it* / *instead of it*:",
        "  an argument whose value another column gives, which this column switches on / off.",
        "  *read only with* / *not read with*: another column decides whether this one is read.",
        "- **e.g.**: the column's value in the first golden row that sets it (or in a varied",
        "  row) and what EST's script is given for it (`{job_dir}`: the job's directory).",
        "",
        "How values are read and checked (e-values, families, taxonomy filters…) and what each",
        "pipeline takes: [est-params.md](est-params.md).",
        "",
    ]
    for jc in found.values():
        lines += section(jc)
    return "\n".join(lines).rstrip("\n") + "\n"


def generate() -> str:
    """Derive every job type's columns at a scratch golden site; return the page."""
    with tempfile.TemporaryDirectory() as tmp, recorded_reads() as reads:
        return render(derive(Runner(load_cases(), Path(tmp), reads)))


def main() -> int:
    """Rewrite ``docs/job-columns.md``, or with ``--check`` compare it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    options = parser.parse_args()
    text = generate()
    if options.check:
        if not PAGE.is_file() or PAGE.read_text(encoding="utf-8") != text:
            print(f"{PAGE.relative_to(ROOT)} differs from the code; run: {REGENERATE}")
            return 1
        print(f"{PAGE.relative_to(ROOT)} is up to date")
        return 0
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Many batch scripts submitted in one remote call: a POSIX sh script of our own (pure).

`sbatch_batch_command` returns ``sh -c SCRIPT sh <parallelism> <script>...``: the script text
is a constant, the batch scripts' paths reach it only as arguments. It runs ``sbatch
--parsable <script>`` for each path in ``<parallelism>`` workers (subshells started once, each
taking every ``<parallelism>``-th path in turn), each job's record written into its own file
of a ``mktemp -d`` directory (removed on exit); then it prints the records in the order of
the paths and an end line, as read by `efi_connector_slurm.parsing.parse_sbatch_batch`.
Per job it starts no program but sbatch, as a plain loop of sbatch does.

The stop rule: once an sbatch has failed transiently (a return code above 125, or stderr
holding one of `TRANSIENT_MARKERS`), the jobs not yet started do not run sbatch and report
``skipped``: nothing was tried for them.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Sequence

from efi_connector_slurm.commands import sbatch_command
from efi_connector_slurm.parsing import TRANSIENT_MARKERS
from efi_connector_slurm.parsing.sbatch_batch import (
    END_TAG,
    RECORD_TAG,
    SKIPPED,
    STDERR_TAG,
    STDOUT_TAG,
)

__all__ = ["SBATCH_BATCH_SCRIPT", "sbatch_batch_command", "sbatch_batch_timeout"]

_MARKERS = " ".join(f"-e {shlex.quote(marker)}" for marker in TRANSIENT_MARKERS)

# One batch script: $1 the index, $2 the script's path (the records' directory is $d). The
# only program a quiet successful sbatch costs is sbatch itself, as in a plain loop: its
# output goes to files that the shell reads back (read is built in); stderr is made one
# line (tr) only when there is some, and searched for the transient markers (grep) only
# after a failure.
_ONE = f"""one() {{
  r=$d/$1
  if [ -e "$d/stop" ]; then
    printf '{RECORD_TAG} %s {SKIPPED}\\n{STDOUT_TAG}\\n{STDERR_TAG}\\n' "$1" >"$r.rec"
    return 0
  fi
  sbatch --parsable "$2" >"$r.out" 2>"$r.err"
  rc=$?
  out=
  while IFS= read -r line || [ -n "$line" ]; do
    out="$out $line"
  done <"$r.out"
  err=
  if [ -s "$r.err" ]; then
    err=$(tr '\\n\\r' '  ' <"$r.err")
  fi
  if [ "$rc" -gt 125 ] || {{ [ "$rc" -ne 0 ] && grep -qiF {_MARKERS} -- "$r.err"; }}; then
    : >"$d/stop"
  fi
  set -f
  set -- "$1" "$rc" $out
  at=$1
  shift 2
  printf '{RECORD_TAG} %s %s\\n{STDOUT_TAG} %s\\n{STDERR_TAG} %s\\n' "$at" "$rc" "$*" "$err" \\
    >"$r.rec"
  set +f
}}
"""

#: The remote script: ``$1`` the parallelism, then the batch scripts' paths. ``$1`` workers
#: (subshells, started once) each submit every ``$1``-th script in turn.
SBATCH_BATCH_SCRIPT = f"""n=$1
shift
d=$(mktemp -d) || exit 1
trap 'rm -rf -- "$d"' EXIT
trap 'exit 1' HUP INT TERM
{_ONE}k=0
while [ "$k" -lt "$n" ]; do
  (
    i=0
    for p do
      if [ $((i % n)) -eq "$k" ]; then
        one "$i" "$p"
      fi
      i=$((i + 1))
    done
  ) &
  k=$((k + 1))
done
wait
i=0
for p do
  set -- "$@" "$d/$i.rec"
  shift
  i=$((i + 1))
done
cat -- "$@" 2>/dev/null
echo "{END_TAG} $#"
"""


def sbatch_batch_command(scripts: Sequence[str], parallel: int) -> list[str]:
    """Return the argv that submits every batch script of ``scripts`` in one call.

    Raises:
        ValueError: no scripts, a script path `sbatch_command` refuses, or ``parallel`` < 1.
    """
    if not scripts:
        raise ValueError("no batch scripts given")
    if parallel < 1:
        raise ValueError(f"parallelism must be at least 1, not {parallel}")
    for script in scripts:
        sbatch_command(script)
    return ["sh", "-c", SBATCH_BATCH_SCRIPT, "sh", str(parallel), *scripts]


def sbatch_batch_timeout(count: int, parallel: int, command_timeout: float) -> float:
    """Seconds the call may take: ``command_timeout`` for each round of ``parallel`` sbatch.

    Generous on purpose: a timeout leaves every job of the call unanswered (maybe submitted).
    """
    return command_timeout * max(1, math.ceil(count / max(1, parallel)))

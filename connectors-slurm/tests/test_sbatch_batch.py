"""Batches without Slurm: the batch submission script's output parser, the script itself run
here with a fake ``sbatch`` on ``PATH``, and `SlurmConnector.prepare_jobs`/``submit_jobs``
with the local transport (a ``remote_dir`` in a temporary directory, fake Slurm commands).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pytest

from efi_connector_slurm import SlurmConnector
from efi_connector_slurm.connector import ATTEMPT_FILE
from efi_connector_slurm.parsing import (
    TRANSIENT_MARKERS,
    SbatchRecord,
    classify_record,
    parse_sbatch_batch,
)
from efi_connector_slurm.sbatch_batch import (
    SBATCH_BATCH_SCRIPT,
    sbatch_batch_command,
    sbatch_batch_timeout,
)
from efi_job_manager import retry
from efi_job_manager.connector import JobSpec, PermanentError, TransientError
from efi_job_manager.transport import CommandResult, CommandTimeout

if TYPE_CHECKING:
    from conftest import Recording

REFUSED = "sbatch: error: Batch job submission failed: Invalid partition name specified"
DOWN = ("sbatch: error: Batch job submission failed: Unable to contact slurm controller "
        "(connect failure)")
LOST = "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation"

# A stand-in for ``sbatch --parsable SCRIPT``: notes SCRIPT (NUL-terminated) in
# $FAKE_SBATCH_LOG and answers by the name of the script's directory: "refused" and "down"
# fail as Slurm does, "lost" fails as a lost reply, "killed" dies of SIGKILL; any other
# prints 1000 + the directory's number (the last digits of its name).
FAKE_SBATCH = f"""#!/bin/sh
[ "$1" = --parsable ] && [ "$#" -eq 2 ] || exit 2
printf '%s\\000' "$2" >>"$FAKE_SBATCH_LOG"
d=${{2%/*}}
case "${{d##*/}}" in
  *refused*) echo '{REFUSED}' >&2; exit 1 ;;
  *down*) echo '{DOWN}' >&2; exit 1 ;;
  *lost*) echo '{LOST}' >&2; exit 1 ;;
  *killed*) kill -9 $$ ;;
esac
n=$(printf '%s' "${{d##*/}}" | tr -cd 0-9)
echo "$((1000 + n))"
"""
# squeue prints $FAKE_SQUEUE_OUT (a file) if it exists; sacct and scancel print nothing.
FAKE_SQUEUE = """#!/bin/sh
[ -f "$FAKE_SQUEUE_OUT" ] && cat -- "$FAKE_SQUEUE_OUT"
exit 0
"""


class FakeSlurm:
    """The fake commands' directory (first on ``PATH``) and what sbatch was given."""

    def __init__(self, root: Path) -> None:
        self.bin = root / "bin"
        self.log = root / "sbatch.log"
        self.squeue_out = root / "squeue.out"
        self.bin.mkdir(parents=True)
        for name, text in [("sbatch", FAKE_SBATCH), ("squeue", FAKE_SQUEUE),
                           ("sacct", "#!/bin/sh\nexit 0\n"), ("scancel", "#!/bin/sh\nexit 0\n")]:
            (self.bin / name).write_text(text)
            (self.bin / name).chmod(0o755)
        self.log.write_text("")

    @property
    def scripts(self) -> list[str]:
        """Every script path sbatch was given, in the order of the calls."""
        return [path for path in self.log.read_text().split("\0") if path]

    def env(self) -> dict[str, str]:
        return {**os.environ, "PATH": f"{self.bin}:{os.environ['PATH']}",
                "FAKE_SBATCH_LOG": str(self.log), "FAKE_SQUEUE_OUT": str(self.squeue_out)}


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeSlurm:
    """Fake Slurm commands, on the ``PATH`` of this process (and so of the local transport)."""
    slurm = FakeSlurm(tmp_path / "fake")
    for key, value in slurm.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))  # where the script's mktemp -d goes
    (tmp_path / "tmp").mkdir()
    return slurm


def run_script(scripts: list[str], parallel: int) -> subprocess.CompletedProcess[str]:
    """The batch submission script run here (the fake commands are on PATH)."""
    return subprocess.run(sbatch_batch_command(scripts, parallel), capture_output=True,
                          text=True, timeout=60, check=False)


# -- the parser -----------------------------------------------------------------------------


def test_records_are_read_in_order_after_any_chatter() -> None:
    """A talking env_setup before the records does not matter; each field lands in its place."""
    text = ("module loaded\n"
            "efi-sbatch 0 0\nefi-sbatch-out 1001 \nefi-sbatch-err \n"
            "efi-sbatch 1 1\nefi-sbatch-out\nefi-sbatch-err " + REFUSED + " \n"
            "efi-sbatch 2 skipped\nefi-sbatch-out\nefi-sbatch-err\n"
            "efi-sbatch-end 3\n")
    reply = parse_sbatch_batch(text, 3)
    assert reply.complete
    assert reply.records == {
        0: SbatchRecord(0, 0, "1001", ""),
        1: SbatchRecord(1, 1, "", REFUSED),
        2: SbatchRecord(2, None, "", ""),
    }
    assert reply.records[0].ok
    assert reply.records[2].skipped


@pytest.mark.parametrize("text", [
    "efi-sbatch 0 0\nefi-sbatch-out 1\nefi-sbatch-err\n",  # no end line
    "efi-sbatch 0 0\nefi-sbatch-out 1\nefi-sbatch-err\nefi-sbatch-end 2\n",  # another count
    "",
])
def test_an_answer_without_its_end_line_is_incomplete(text: str) -> None:
    assert not parse_sbatch_batch(text, 1).complete


@pytest.mark.parametrize("text", [
    "efi-sbatch 5 0\nefi-sbatch-out 1\nefi-sbatch-err\n",  # index out of range
    "efi-sbatch 0 x\nefi-sbatch-out 1\nefi-sbatch-err\n",  # return code unreadable
    "efi-sbatch 0 0\nefi-sbatch-err\nefi-sbatch-out 1\n",  # lines swapped
    "efi-sbatch 0 0\nefi-sbatch-out 1\n",  # cut short
    "efi-sbatch -1 0\nefi-sbatch-out 1\nefi-sbatch-err\n",
])
def test_an_unreadable_record_is_left_out(text: str, caplog: pytest.LogCaptureFixture) -> None:
    """Its job then counts as unanswered (maybe submitted), never as refused or skipped."""
    reply = parse_sbatch_batch(text + "efi-sbatch-end 2\n", 2)
    assert reply.records == {}
    assert "unreadable sbatch batch record" in caplog.text


def test_a_repeated_record_keeps_the_first() -> None:
    text = ("efi-sbatch 0 0\nefi-sbatch-out 7\nefi-sbatch-err\n"
            "efi-sbatch 0 0\nefi-sbatch-out 8\nefi-sbatch-err\nefi-sbatch-end 1\n")
    assert parse_sbatch_batch(text, 1).records[0].stdout == "7"


@pytest.mark.parametrize(("returncode", "stderr", "error"), [
    (1, REFUSED, PermanentError),
    (1, DOWN, TransientError),
    (1, "sbatch: error: QOSMaxSubmitJobPerUserLimit", TransientError),
    (137, "", TransientError),  # killed by SIGKILL, as a shell reports it
    (127, "sh: sbatch: not found", TransientError),
    (1, "sbatch: error: something new", PermanentError),
])
def test_a_failed_sbatch_of_the_batch_is_classified_as_a_lone_one(
        returncode: int, stderr: str, error: type[Exception]) -> None:
    assert classify_record(SbatchRecord(0, returncode, "", stderr)) is error


# -- the script, run here with a fake sbatch ----------------------------------------------------


def test_the_script_is_constant_and_job_data_are_arguments() -> None:
    argv = sbatch_batch_command(["/w/a b/1/efi-job.sbatch", "/w/$(x)/2/efi-job.sbatch"], 3)
    assert argv[:6] == ["sh", "-c", SBATCH_BATCH_SCRIPT, "sh", "3", "/w/a b/1/efi-job.sbatch"]
    for marker in TRANSIENT_MARKERS:
        assert marker in SBATCH_BATCH_SCRIPT
    with pytest.raises(ValueError, match="batch script"):
        sbatch_batch_command(["-x"], 2)
    with pytest.raises(ValueError, match="no batch scripts"):
        sbatch_batch_command([], 2)
    assert sbatch_batch_timeout(20, 4, 60.0) == 300.0
    assert sbatch_batch_timeout(1, 4, 60.0) == 60.0


def test_ids_come_back_in_order_and_odd_paths_reach_sbatch_unchanged(
        fake: FakeSlurm, tmp_path: Path) -> None:
    """Spaces, quotes, $(...), backquotes, a newline and a glob in paths are data."""
    odd = ["a b", "it's", '"q"', "$(touch pwned)", "`id`", "new\nline", "*", "semi;colon"]
    scripts = [f"/w/{name}/{k}/efi-job.sbatch" for k, name in enumerate(odd * 2)]
    done = run_script(scripts, 4)
    assert done.returncode == 0, done.stderr
    reply = parse_sbatch_batch(done.stdout, len(scripts))
    assert reply.complete
    assert [reply.records[k].stdout for k in range(len(scripts))] == [
        str(1000 + k) for k in range(len(scripts))]
    assert sorted(fake.scripts) == sorted(scripts)
    assert not (tmp_path / "pwned").exists()
    assert not any((tmp_path / "tmp").iterdir())  # the records' directory is removed


def test_a_permanent_refusal_fails_only_its_job(fake: FakeSlurm) -> None:
    scripts = [f"/w/{name}/efi-job.sbatch" for name in ("j0", "j1", "refused-2", "j3", "j4")]
    reply = parse_sbatch_batch(run_script(scripts, 2).stdout, len(scripts))
    assert reply.complete
    assert [reply.records[k].returncode for k in range(5)] == [0, 0, 1, 0, 0]
    assert reply.records[2].stderr == REFUSED
    assert classify_record(reply.records[2]) is PermanentError
    assert len(fake.scripts) == 5


@pytest.mark.parametrize("failing", ["down-2", "killed-2"])
def test_after_a_transient_failure_the_scripts_not_started_are_skipped(
        fake: FakeSlurm, failing: str) -> None:
    """The stop rule: one sbatch at a time, the third fails transiently; the rest never run."""
    names = ["j0", "j1", failing, "j3", "j4", "j5"]
    scripts = [f"/w/{name}/efi-job.sbatch" for name in names]
    reply = parse_sbatch_batch(run_script(scripts, 1).stdout, len(scripts))
    assert reply.complete
    assert [reply.records[k].ok for k in range(2)] == [True, True]
    assert classify_record(reply.records[2]) is TransientError
    assert [reply.records[k].skipped for k in range(3, 6)] == [True, True, True]
    assert fake.scripts == scripts[:3]


# -- the connector: prepare_jobs and submit_jobs with the local transport -------------------


def make_spec(results: Path, job_id: int, name: str = "") -> JobSpec:
    """A staged job whose directory is ``results/<name or id>`` (the fake sbatch reads it)."""
    job_dir = results / (name or str(job_id))
    (job_dir / "input").mkdir(parents=True)
    (job_dir / "input" / "seqs.fasta").write_text(">a\nMA\n")
    params = {"final_output_dir": str(job_dir), "fasta_file": f"{job_dir}/input/seqs.fasta"}
    (job_dir / "params.json").write_text(json.dumps(params))
    return JobSpec(job_id, "est_generate_fasta", job_dir, ("run", "params.json"), params, "est",
                   input_files={"input/seqs.fasta": job_dir / "input" / "seqs.fasta"},
                   claim="c1")


def test_prepare_jobs_stages_a_batch_in_one_transfer(
        tmp_path: Path, recorded: Callable[[SlurmConnector], Recording]) -> None:
    """One put for every job (remote_dir keeps its mode; inputs hard-linked, then the staging
    tree removed); a job without params.json or with an empty command fails alone."""
    results = tmp_path / "results"
    remote = tmp_path / "scratch"
    remote.mkdir()
    remote.chmod(0o2775)
    connector = SlurmConnector({"remote_dir": str(remote)})
    linked: list[bool] = []
    put = connector.transport.put

    def looking(local: Path, target: str, **kwargs: Any) -> None:
        assert local.parent.parent == results  # the staging tree is next to the job dirs
        linked.extend(
            (local / str(spec.job_id) / "input" / "seqs.fasta").stat().st_ino
            == (spec.job_dir / "input" / "seqs.fasta").stat().st_ino for spec in specs)
        put(local, target, **kwargs)

    connector.transport.put = looking  # type: ignore[method-assign]
    recording = recorded(connector)
    specs = [make_spec(results, job_id) for job_id in (11, 12, 13)]
    no_params = make_spec(results, 14)
    (no_params.job_dir / "params.json").unlink()
    empty = JobSpec(15, "est_generate_fasta", make_spec(results, 15).job_dir, ())
    outcomes = connector.prepare_jobs([specs[0], no_params, specs[1], empty, specs[2]])
    assert [o.job_id for o in outcomes] == [11, 14, 12, 15, 13]
    assert [o.value for o in outcomes] == [
        str(remote / "11" / "params.json"), None, str(remote / "12" / "params.json"), None,
        str(remote / "13" / "params.json")]
    assert isinstance(outcomes[1].error, PermanentError)
    assert isinstance(outcomes[3].error, PermanentError)
    assert recording.calls == [("put", recording.calls[0][1], str(remote))]
    assert linked == [True, True, True]
    assert stat.S_IMODE(remote.stat().st_mode) == 0o2775
    assert sorted(p.name for p in remote.iterdir()) == ["11", "12", "13"]
    for spec in specs:
        there = remote / str(spec.job_id)
        params = json.loads((there / "params.json").read_text())
        assert params["fasta_file"] == f"{there}/input/seqs.fasta"
        assert (there / "efi-job.sbatch").read_text() == connector.render_job(spec)
        assert (there / "input" / "seqs.fasta").read_text() == ">a\nMA\n"
        note = json.loads((spec.job_dir / ATTEMPT_FILE).read_text())
        assert note["cluster_dir"] == str(there)
    assert not [p for p in results.iterdir() if p.name.startswith(".efi-slurm-staging-")]
    again = connector.prepare_jobs(specs)  # idempotent
    assert [o.value for o in again] == [outcomes[0].value, outcomes[2].value, outcomes[4].value]


def test_staging_never_follows_a_link_in_a_job_directory(tmp_path: Path) -> None:
    """A link the parameters name (a file or a directory) is staged as the link itself."""
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key").write_text("not for the cluster")
    spec = make_spec(tmp_path / "results", 41)
    (spec.job_dir / "file-link").symlink_to(secret / "key")
    (spec.job_dir / "dir-link").symlink_to(secret)
    (spec.job_dir / "input" / "inner-link").symlink_to(secret / "key")
    params = {**spec.params, "a": f"{spec.job_dir}/file-link", "b": f"{spec.job_dir}/dir-link"}
    (spec.job_dir / "params.json").write_text(json.dumps(params))
    remote = tmp_path / "scratch"
    SlurmConnector({"remote_dir": str(remote)}).prepare_job_environment(spec)
    there = remote / "41"
    for name in ("file-link", "dir-link", "input/inner-link"):
        assert (there / name).is_symlink(), name
    assert not (there / "dir-link").resolve().is_relative_to(there)


def test_a_failed_transfer_is_transient_for_every_job_it_carried(tmp_path: Path) -> None:
    """A remote_dir that is a file cannot take the jobs: nobody fails, everybody waits."""
    remote = tmp_path / "scratch"
    remote.write_text("not a directory")
    connector = SlurmConnector({"remote_dir": str(remote)})
    specs = [make_spec(tmp_path / "results", job_id) for job_id in (21, 22)]
    outcomes = connector.prepare_jobs(specs)
    assert all(isinstance(o.error, TransientError) and o.attempted for o in outcomes)
    with pytest.raises(TransientError, match="cannot stage it"):
        connector.prepare_job_environment(specs[0])


def test_prepare_in_place_writes_each_script_and_copies_nothing(
        tmp_path: Path, recorded: Callable[[SlurmConnector], Recording]) -> None:
    connector = SlurmConnector({})
    recording = recorded(connector)
    specs = [make_spec(tmp_path / "results", job_id) for job_id in (31, 32)]
    outcomes = connector.prepare_jobs(specs)
    assert [o.value for o in outcomes] == [str(s.job_dir / "params.json") for s in specs]
    assert [call[0] for call in recording.calls] == ["write_text", "write_text"]
    assert all((s.job_dir / "efi-job.sbatch").is_file() for s in specs)


def faked(**settings: object) -> SlurmConnector:
    """A connector whose Slurm commands see the fake's variables (``env_passthrough``)."""
    return SlurmConnector({"env_passthrough": ["FAKE_*"], **settings})


def prepared(connector: SlurmConnector, specs: list[JobSpec]) -> list[tuple[JobSpec, str]]:
    outcomes = connector.prepare_jobs(specs)
    assert all(o.value is not None for o in outcomes), outcomes
    return [(spec, str(o.value)) for spec, o in zip(specs, outcomes, strict=True)]


def test_submit_jobs_is_one_call_and_each_job_its_own_outcome(
        fake: FakeSlurm, tmp_path: Path, recorded: Callable[[SlurmConnector], Recording]) -> None:
    """Ids in order and noted in each job's attempt note; a refusal fails its job alone."""
    connector = faked(submit_parallel=3)
    recording = recorded(connector)
    names = ["job-1", "job-2", "refused-3", "job-4", "job-5"]
    specs = [make_spec(tmp_path / "results", k + 1, name) for k, name in enumerate(names)]
    jobs = prepared(connector, specs)
    recording.calls.clear()
    outcomes = connector.submit_jobs(jobs)
    assert [o.value for o in outcomes] == ["1001", "1002", None, "1004", "1005"]
    assert isinstance(outcomes[2].error, PermanentError)
    assert str(outcomes[2].error) == (f"sbatch refused job 3 ({specs[2].name}) on local: "
                                      f"{REFUSED}")
    assert recording.count("sbatch-batch") == 1
    assert len(recording.calls) == 1
    for spec, outcome in zip(specs, outcomes, strict=True):
        note = json.loads((spec.job_dir / ATTEMPT_FILE).read_text())
        assert note["submitted"] == ([outcome.value] if outcome.value else [])


def test_more_jobs_than_chunk_size_take_several_calls(
        fake: FakeSlurm, tmp_path: Path, recorded: Callable[[SlurmConnector], Recording]) -> None:
    connector = faked(chunk_size=2)
    recording = recorded(connector)
    specs = [make_spec(tmp_path / "results", k, f"job-{k}") for k in range(1, 6)]
    outcomes = connector.submit_jobs(prepared(connector, specs))
    assert [o.value for o in outcomes] == ["1001", "1002", "1003", "1004", "1005"]
    assert recording.count("sbatch-batch") == 2  # 2 + 2, and the fifth on its own
    assert recording.count("sbatch") == 1


def test_a_transient_failure_looks_the_job_up_first_and_the_rest_go_back(
        fake: FakeSlurm, tmp_path: Path) -> None:
    """The lost reply's job exists: found by name, not submitted again; the jobs whose sbatch
    never ran are not attempted; the controller answered, so no hold starts."""
    connector = faked(submit_parallel=1)
    names = ["job-1", "lost-2", "job-3", "job-4"]
    specs = [make_spec(tmp_path / "results", k + 1, name) for k, name in enumerate(names)]
    fake.squeue_out.write_text(f"555|{specs[1].name}|PENDING|None\n")
    with retry.testing():
        outcomes = connector.submit_jobs(prepared(connector, specs))
    assert [o.value for o in outcomes[:2]] == ["1001", "555"]
    assert [o.attempted for o in outcomes[2:]] == [False, False]
    assert fake.scripts == [str(s.job_dir / "efi-job.sbatch") for s in specs[:2]]
    note = json.loads((specs[1].job_dir / ATTEMPT_FILE).read_text())
    assert note["submitted"] == ["555"]
    assert connector.submit_jobs([(specs[2], "params.json")])[0].value == "1003"


def test_a_controller_that_stays_down_starts_the_outage_hold(
        fake: FakeSlurm, tmp_path: Path, recorded: Callable[[SlurmConnector], Recording]) -> None:
    """The failed job stays 'maybe submitted'; while the hold lasts nothing is tried."""
    connector = faked(submit_parallel=1)
    names = ["down-1", "job-2", "job-3"]
    specs = [make_spec(tmp_path / "results", k + 1, name) for k, name in enumerate(names)]
    jobs = prepared(connector, specs)
    with retry.testing():
        outcomes = connector.submit_jobs(jobs)
    assert isinstance(outcomes[0].error, TransientError)
    assert outcomes[0].attempted
    assert [o.attempted for o in outcomes[1:]] == [False, False]
    recording = recorded(connector)
    later = connector.submit_jobs(jobs[1:])
    assert [o.attempted for o in later] == [False, False]
    assert recording.calls == []
    with pytest.raises(TransientError, match="sbatch failed"):
        connector.submit_job(*jobs[1])


def test_a_batch_call_that_times_out_leaves_every_job_maybe_submitted(
        fake: FakeSlurm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    connector = faked()
    specs = [make_spec(tmp_path / "results", k, f"job-{k}") for k in (1, 2)]
    jobs = prepared(connector, specs)

    def timeout(argv: list[str], **kwargs: object) -> None:
        raise CommandTimeout(argv, 1.0, "local")

    monkeypatch.setattr(connector.transport, "run", timeout)
    outcomes = connector.submit_jobs(jobs)
    assert all(isinstance(o.error, TransientError) and o.attempted for o in outcomes)
    assert "may have been submitted" in str(outcomes[0].error)
    assert connector.submit_jobs(jobs)[0].attempted is False  # the hold


def test_a_batch_answer_cut_short_leaves_the_unanswered_maybe_submitted(
        fake: FakeSlurm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The answer lost its end (the connection dropped): the job reported keeps its id, the
    others may exist (attempted), and the hold starts."""
    connector = faked()
    specs = [make_spec(tmp_path / "results", k, f"job-{k}") for k in (1, 2)]
    jobs = prepared(connector, specs)
    run = connector.transport.run

    def cut(argv: list[str], **kwargs: Any) -> CommandResult:
        done = run(argv, **kwargs)
        return attrs.evolve(done, stdout="".join(done.stdout.splitlines(keepends=True)[:3]))

    monkeypatch.setattr(connector.transport, "run", cut)
    outcomes = connector.submit_jobs(jobs)
    assert outcomes[0].value == "1001"
    assert isinstance(outcomes[1].error, TransientError)
    assert outcomes[1].attempted
    assert "did not finish" in str(outcomes[1].error)
    assert connector.submit_jobs(jobs)[0].attempted is False  # the hold

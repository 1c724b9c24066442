"""Staging over SSH as one archive (`efi_connector_slurm.archive`): built here, unpacked on the
lab by one command, with the files the staging tree and put would have written; a payload above
the limit takes the tree, and a failed unpack makes every job of it wait.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from efi_connector_slurm import SlurmConnector, archive
from efi_connector_slurm.archive import UNPACK_SCRIPT, Archive, TooBig
from efi_job_manager.connector import JobSpec, PermanentError, TransientError
from efi_job_manager.transport import (
    CommandResult,
    CommandTimeout,
    ConnectionFailed,
    HostKeyError,
    Transport,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from conftest import Recording, Slurm

SH = "/bin/sh"
BINARY = bytes(range(256)) * 3


def with_inputs(slurm: Slurm) -> JobSpec:
    """A lab job whose parameters name a directory of inputs (a private file, an executable
    in a subdirectory, an empty file), a binary file, and a link to a file outside."""
    spec = slurm.spec((SH, "-c", "true"))
    job_dir = spec.job_dir
    (job_dir / "input" / "bin").mkdir(parents=True)
    (job_dir / "input" / "seqs.fasta").write_text(">a\nMKV\n")
    (job_dir / "input" / "seqs.fasta").chmod(0o600)
    (job_dir / "input" / "bin" / "run.sh").write_text("#!/bin/sh\necho ünïcode\n")
    (job_dir / "input" / "bin" / "run.sh").chmod(0o755)
    (job_dir / "input" / "empty").touch()
    (job_dir / "blob.bin").write_bytes(BINARY)
    (job_dir / "passwd").symlink_to("/etc/passwd")
    params = {**spec.params, "fasta_file": f"{job_dir}/input/seqs.fasta",
              "blob": f"{job_dir}/blob.bin", "users": f"{job_dir}/passwd", "note": "é"}
    (job_dir / "params.json").write_text(json.dumps(params))
    return spec


def snapshot(root: Path) -> dict[str, tuple[str, bytes | str, int]]:
    """Every entry under ``root`` (the lab's scratch is on this machine), links not followed:
    kind, contents or link target, and the permission bits a umask of 022 or 002 leaves."""
    seen: dict[str, tuple[str, bytes | str, int]] = {}
    for directory, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(directory, name)
            mode = stat.S_IMODE(path.lstat().st_mode) & 0o755
            key = str(path.relative_to(root))
            if path.is_symlink():
                seen[key] = ("link", os.readlink(path), 0)
            elif path.is_dir():
                seen[key] = ("dir", "", mode)
            else:
                seen[key] = ("file", path.read_bytes(), mode)
    return seen


def test_a_small_batch_is_one_unpack_with_the_files_the_put_path_writes(
        slurm: Slurm, recorded: Callable[[SlurmConnector], Recording],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Three jobs: one ``sh -c UNPACK_SCRIPT`` and no put; params.json relocated, the script
    and the inputs (modes kept, the link as a link) byte for byte as the staging tree and
    put write them; staging again over them (idempotent) changes nothing."""
    connector = slurm.connector("ssh")
    remote = Path(str(connector.settings.remote_dir))
    recording = recorded(connector)
    specs = [with_inputs(slurm) for _ in range(3)]

    outcomes = connector.prepare_jobs(specs)
    assert [o.value for o in outcomes] == [f"{remote}/{s.job_id}/params.json" for s in specs]
    assert recording.calls == [("run", "sh", "-c", UNPACK_SCRIPT, "sh", str(remote))]
    by_archive = snapshot(remote)
    for spec in specs:
        there = remote / str(spec.job_id)
        params = json.loads((there / "params.json").read_text())
        assert params["fasta_file"] == f"{there}/input/seqs.fasta"
        assert (there / "efi-job.sbatch").read_text() == connector.render_job(spec)
        assert by_archive[f"{spec.job_id}/blob.bin"] == ("file", BINARY, 0o644)
        assert by_archive[f"{spec.job_id}/input/bin/run.sh"][2] == 0o755
        assert by_archive[f"{spec.job_id}/input/seqs.fasta"][2] == 0o600
        assert by_archive[f"{spec.job_id}/passwd"] == ("link", "/etc/passwd", 0)
    assert connector.prepare_jobs(specs) == outcomes
    assert snapshot(remote) == by_archive

    shutil.rmtree(remote)
    monkeypatch.setattr(archive, "ARCHIVE_LIMIT", 0)
    recording.calls.clear()
    assert connector.prepare_jobs(specs) == outcomes
    assert recording.count("put") == 1
    assert recording.count("unpack") == 0
    assert snapshot(remote) == by_archive


def test_a_link_is_staged_as_the_link_never_followed(slurm: Slurm) -> None:
    """Links the parameters name, to a file and to a directory outside the job directory,
    and one inside an input directory, reach the cluster as links: nothing of their
    targets is read or sent."""
    secret = slurm.root / "secret"
    secret.mkdir(parents=True)
    (secret / "key").write_text("not for the cluster")
    spec = slurm.spec((SH, "-c", "true"))
    (spec.job_dir / "input").mkdir()
    (spec.job_dir / "file-link").symlink_to(secret / "key")
    (spec.job_dir / "dir-link").symlink_to(secret)
    (spec.job_dir / "input" / "inner-link").symlink_to(secret / "key")
    params = {**spec.params, "a": f"{spec.job_dir}/file-link",
              "b": f"{spec.job_dir}/dir-link", "c": f"{spec.job_dir}/input"}
    (spec.job_dir / "params.json").write_text(json.dumps(params))
    connector = slurm.connector("ssh")
    connector.prepare_job_environment(spec)
    there = Path(str(connector.settings.remote_dir), str(spec.job_id))
    for name in ("file-link", "dir-link", "input/inner-link"):
        assert (there / name).is_symlink(), name
    assert os.readlink(there / "dir-link") == str(secret)
    assert not any(b"not for the cluster" in entry[1] for entry in snapshot(there).values()
                   if isinstance(entry[1], bytes))


def test_an_input_that_is_no_file_directory_or_link_fails_its_job_alone(
        slurm: Slurm, recorded: Callable[[SlurmConnector], Recording]) -> None:
    """A FIFO the parameters name is refused (never opened for a writer): that job fails
    permanently, the others are staged by the same unpack."""
    specs = [slurm.spec((SH, "-c", "true")) for _ in range(3)]
    odd = specs[1]
    os.mkfifo(odd.job_dir / "pipe")
    params = {**odd.params, "input": f"{odd.job_dir}/pipe"}
    (odd.job_dir / "params.json").write_text(json.dumps(params))
    connector = slurm.connector("ssh")
    recording = recorded(connector)
    outcomes = connector.prepare_jobs(specs)
    assert isinstance(outcomes[1].error, PermanentError)
    assert "pipe is not a regular file, a directory or a link" in str(outcomes[1].error)
    assert outcomes[0].value is not None
    assert outcomes[2].value is not None
    assert recording.count("unpack") == 1
    assert not Path(str(connector.settings.remote_dir), str(odd.job_id)).exists()


def test_a_payload_above_the_limit_takes_the_staging_tree(
        slurm: Slurm, recorded: Callable[[SlurmConnector], Recording],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With `ARCHIVE_LIMIT` below the batch's payload, the batch goes by tree and one put."""
    monkeypatch.setattr(archive, "ARCHIVE_LIMIT", 2000)
    connector = slurm.connector("ssh")
    recording = recorded(connector)
    specs = [with_inputs(slurm) for _ in range(3)]  # each carries more than 768 bytes
    outcomes = connector.prepare_jobs(specs)
    assert all(o.value is not None for o in outcomes), outcomes
    assert recording.count("unpack") == 0
    assert recording.count("put") == 1
    blob = Path(str(connector.settings.remote_dir), str(specs[2].job_id), "blob.bin")
    assert blob.read_bytes() == BINARY


@pytest.mark.parametrize(("layout", "message"), [
    ("under-a-file", "Not a directory"),
    ("read-only", "Permission denied"),
])
def test_a_failed_unpack_makes_every_job_of_it_wait(
        slurm: Slurm, recorded: Callable[[SlurmConnector], Recording],
        layout: str, message: str) -> None:
    """``remote_dir`` under a file (mkdir fails) or read-only (tar fails): each job of the
    transfer gets a `TransientError` with the command's stderr; nothing was put."""
    base = Path(str(slurm.settings("ssh")["remote_dir"]))
    remote = base / "file" / "jobs" if layout == "under-a-file" else base
    connector = slurm.connector("ssh", remote_dir=str(remote))
    prepare = ('mkdir -p "$1" && : > "$1/file"' if layout == "under-a-file"
               else 'mkdir -p "$1" && chmod 555 "$1"')
    connector.transport.run(["sh", "-c", prepare, "sh", str(base)], check=True)
    recording = recorded(connector)
    specs = [slurm.spec((SH, "-c", "true")) for _ in range(3)]
    try:
        outcomes = connector.prepare_jobs(specs)
    finally:
        shutil.rmtree(base)
    assert all(isinstance(o.error, TransientError) and o.attempted for o in outcomes), outcomes
    for spec, outcome in zip(specs, outcomes, strict=True):
        assert f"job {spec.job_id}: cannot stage it in {remote}/{spec.job_id}: " in str(
            outcome.error)
        assert message in str(outcome.error)
    assert recording.count("unpack") == 1
    assert recording.count("put") == 0


# -- without the lab: the archive itself, and the transport's failures ---------------------


class Failing(Transport):
    """A transport whose ``run`` raises ``error``; nothing else may be called."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.inputs: list[str | None] = []

    @property
    def description(self) -> str:
        return "ssh://nowhere"

    def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        self.inputs.append(kwargs.get("input"))
        raise self.error

    def put(self, local: Path, remote: str, **kwargs: Any) -> None:
        raise AssertionError("put")

    def get(self, remote: str, local: Path, **kwargs: Any) -> None:
        raise AssertionError("get")

    def write_text(self, remote: str, text: str, **kwargs: Any) -> None:
        raise AssertionError("write_text")


def local_spec(root: Path, job_id: int) -> JobSpec:
    job_dir = root / str(job_id)
    job_dir.mkdir(parents=True)
    (job_dir / "data.txt").write_text("x" * 100)
    params = {"final_output_dir": str(job_dir), "data": f"{job_dir}/data.txt"}
    (job_dir / "params.json").write_text(json.dumps(params))
    return JobSpec(job_id, "est_generate_fasta", job_dir, ("run", "params.json"), params, "est")


@pytest.mark.parametrize("error", [
    ConnectionFailed("ssh://nowhere", "Connection refused"),
    CommandTimeout(["sh"], 60.0, "ssh://nowhere"),
    HostKeyError("ssh://nowhere", None, "REMOTE HOST IDENTIFICATION HAS CHANGED"),
], ids=["connection", "timeout", "host-key"])
def test_a_transport_failure_makes_every_job_of_the_unpack_wait(
        tmp_path: Path, error: Exception) -> None:
    """The connection fails, the command times out, or the host key changed: each job of
    the transfer waits (`TransientError`, the transport's message); the archive was sent
    once, on standard input."""
    connector = SlurmConnector({"transport": "ssh", "host": "nowhere",
                                "remote_dir": "/scratch/jobs"})
    failing = Failing(error)
    connector.transport = failing
    specs = [local_spec(tmp_path, job_id) for job_id in (51, 52)]
    outcomes = connector.prepare_jobs(specs)
    assert all(isinstance(o.error, TransientError) for o in outcomes)
    assert all(str(error) in str(o.error) for o in outcomes)
    [text] = failing.inputs
    assert text is not None
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(text))) as tar:
        assert tar.getnames() == ["51", "51/params.json", "51/efi-job.sbatch", "51/data.txt",
                                  "52", "52/params.json", "52/efi-job.sbatch", "52/data.txt"]
        data_mode = stat.S_IMODE((specs[0].job_dir / "data.txt").stat().st_mode)
        assert [m.mode for m in tar.getmembers()[:4]] == [0o775, 0o664, 0o664, data_mode]


def test_a_job_past_the_limit_leaves_the_archive_unchanged(tmp_path: Path) -> None:
    """`Archive.add_job` is all or nothing: the job that would pass the limit adds nothing."""
    first, second = local_spec(tmp_path, 1), local_spec(tmp_path, 2)
    (second.job_dir / "data.txt").write_text("y" * 300)
    packed = Archive(limit=400)
    packed.add_job("1", {"a": "12345"}, first.job_dir, ["data.txt"])
    before = packed.encoded()
    with pytest.raises(TooBig):
        packed.add_job("2", {"a": "12345"}, second.job_dir, ["data.txt"])
    assert packed.payload == 105
    assert "2" not in packed
    assert packed.encoded() == before

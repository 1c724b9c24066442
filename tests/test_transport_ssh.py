"""`SshTransport` against the lab's real sshd on 127.0.0.1 (``tests/slurm/cluster.sh up``).

The lab is found through ``$EFI_SLURM_LAB/env.sh`` (default ``/tmp/efi-slurm-lab``), whose
``EFI_SLURM_SSH_*`` values the environment may override. A lab that is not reachable fails
these tests: they are never skipped.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from efi_job_manager.connector import PermanentError, TransientError
from efi_job_manager.transport import (
    CommandFailed,
    CommandTimeout,
    ConnectionFailed,
    HostKeyError,
    SshTransport,
)

DEFAULT_LAB = "/tmp/efi-slurm-lab"
UP_HINT = "run tests/slurm/cluster.sh up"


@attrs.frozen
class SshLab:
    """How to reach the lab's sshd."""

    directory: Path
    config: str  # ssh client config with the host alias
    host: str  # the alias (slurm-lab)
    port: int
    user: str
    scratch: str  # a world-writable directory on the "remote" side

    @property
    def identity_file(self) -> str:
        return str(self.directory / "ssh" / "id_ed25519")

    @property
    def known_hosts(self) -> str:
        return str(self.directory / "ssh" / "known_hosts")

    def transport(self, **kwargs: object) -> SshTransport:
        """A transport through the lab's ssh config (host alias)."""
        return SshTransport(self.host, config_file=self.config, **kwargs)  # type: ignore[arg-type]

    def direct(self, **kwargs: object) -> SshTransport:
        """A transport with explicit settings and no ssh config file."""
        settings: dict[str, object] = {
            "user": self.user,
            "port": self.port,
            "identity_file": self.identity_file,
            "known_hosts": self.known_hosts,
            "extra_options": ["-o", "IdentitiesOnly=yes", "-o", "GlobalKnownHostsFile=/dev/null"],
        }
        settings.update(kwargs)
        return SshTransport("127.0.0.1", **settings)  # type: ignore[arg-type]


def _read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text().splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, _, value = words[1].partition("=")
            values[key] = value
    return values


@pytest.fixture(scope="session")
def ssh_lab() -> SshLab:
    """The lab's sshd, checked with one login; fails (never skips) when it is not up."""
    directory = Path(os.environ.get("EFI_SLURM_LAB", DEFAULT_LAB))
    values = _read_env_file(directory / "env.sh")
    for key in ("EFI_SLURM_SSH_CONFIG", "EFI_SLURM_SSH_HOST", "EFI_SLURM_SSH_PORT",
                "EFI_SLURM_SSH_USER", "EFI_SLURM_SCRATCH"):  # fmt: skip
        if os.environ.get(key):
            values[key] = os.environ[key]
    missing = [key for key in ("EFI_SLURM_SSH_CONFIG", "EFI_SLURM_SSH_HOST") if key not in values]
    if missing:
        pytest.fail(
            f"the SSH lab is not set up ({directory / 'env.sh'} missing, no {missing} in the "
            f"environment): {UP_HINT}"
        )
    lab = SshLab(
        directory=directory,
        config=values["EFI_SLURM_SSH_CONFIG"],
        host=values["EFI_SLURM_SSH_HOST"],
        port=int(values.get("EFI_SLURM_SSH_PORT", "2222")),
        user=values.get("EFI_SLURM_SSH_USER", "efijm"),
        scratch=values.get("EFI_SLURM_SCRATCH", str(directory / "scratch")),
    )
    probe = ["ssh", "-F", lab.config, "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", lab.host]
    try:
        result = subprocess.run(
            [*probe, "true"], capture_output=True, text=True, timeout=30, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the lab's sshd ({lab.host}, port {lab.port}) does not answer: {UP_HINT}")
    if result.returncode != 0:
        pytest.fail(
            f"cannot log in to the lab's sshd ({lab.host}, port {lab.port}): "
            f"{result.stderr.strip()}; {UP_HINT}"
        )
    return lab


@pytest.fixture
def transport(ssh_lab: SshLab) -> Iterator[SshTransport]:
    with ssh_lab.transport() as transport:
        yield transport


@pytest.fixture
def remote_dir(ssh_lab: SshLab, transport: SshTransport) -> Iterator[str]:
    """A fresh directory on the remote side, removed afterwards."""
    path = f"{ssh_lab.scratch}/transport-{uuid.uuid4().hex[:12]}"
    transport.run(["mkdir", "-p", path], check=True)
    yield path
    transport.run(["rm", "-rf", path])


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- commands ---------------------------------------------------------------------------------


def test_run_a_command_remotely(ssh_lab: SshLab, transport: SshTransport) -> None:
    result = transport.run(["id", "-un"], check=True)
    assert result.stdout.strip() == ssh_lab.user == "efijm"
    assert result.argv == ("id", "-un")
    assert transport.run(["sh", "-c", "echo err >&2; exit 3"]).returncode == 3
    assert transport.run(["sh", "-c", "echo err >&2; exit 3"]).stderr == "err\n"
    assert "ssh://slurm-lab" in transport.description


def test_metacharacters_reach_the_remote_program_unchanged(
    transport: SshTransport, remote_dir: str
) -> None:
    marker = f"{remote_dir}/x"
    arguments = [
        f"; touch {marker} #",
        "$(id)",
        f"`touch {marker}`",
        "a  b",
        "*",
        'it\'s "quoted"',
        "$HOME",
        "back\\slash",
        "",
        "new\nline",
    ]
    result = transport.run(["printf", r"%s\n", *arguments], check=True)
    assert result.stdout == "".join(f"{argument}\n" for argument in arguments)
    assert transport.run(["test", "-e", marker]).returncode == 1  # nothing ran in a shell


def test_input_cwd_and_check(transport: SshTransport, remote_dir: str) -> None:
    assert transport.run(["cat"], input="hello $USER\n", check=True).stdout == "hello $USER\n"
    assert transport.run(["pwd"], cwd=remote_dir, check=True).stdout.strip() == remote_dir
    assert transport.run(["cat"], timeout=10).stdout == ""  # stdin is at end-of-file
    with pytest.raises(CommandFailed) as caught:
        transport.run(["ls", f"{remote_dir}/missing"], check=True)
    assert isinstance(caught.value, PermanentError)
    assert caught.value.result.returncode == 2
    assert "ls exited with status 2 on ssh://slurm-lab" in str(caught.value)
    assert transport.run(["efi-no-such-program"]).returncode == 127


def test_control_master_is_reused(ssh_lab: SshLab, transport: SshTransport) -> None:
    start = time.monotonic()
    transport.run(["true"], check=True)
    first = time.monotonic() - start
    assert transport.is_master_running()
    # ssh itself agrees that a master listens on the socket
    check = subprocess.run(
        [*transport._ssh_command("-O", "check")], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stderr
    assert "Master running" in check.stderr
    later = []
    for _ in range(5):
        start = time.monotonic()
        transport.run(["true"], check=True)
        later.append(time.monotonic() - start)
    assert min(later) < first  # no handshake: typically ~10 ms against ~230 ms


def test_env_setup_runs_before_the_command(ssh_lab: SshLab, remote_dir: str) -> None:
    with ssh_lab.transport(env_setup="export FOO=bar  # site setup") as transport:
        assert transport.run(["printenv", "FOO"], check=True).stdout == "bar\n"
        assert transport.run(["printf", "%s", "$FOO"], check=True).stdout == "$FOO"
    marker = f"{remote_dir}/ran"
    with ssh_lab.transport(env_setup="false") as failing:
        assert failing.run(["touch", marker]).returncode == 1
        assert failing.run(["test", "-e", marker]).returncode == 1  # the command never ran


def test_timeout_raises_transient_error_and_kills_ssh(transport: SshTransport) -> None:
    transport.run(["true"], check=True)
    start = time.monotonic()
    with pytest.raises(CommandTimeout) as caught:
        transport.run(["sleep", "30"], timeout=1)
    assert time.monotonic() - start < 10
    assert isinstance(caught.value, TransientError)
    pattern = f"ssh .*{transport._ensure_control_dir()}.* -- sleep 30"
    assert re.search(pattern, " ".join([*transport._ssh_command(), "--", "sleep 30"]))
    mine = subprocess.run(
        ["pgrep", "-f", pattern],
        capture_output=True,
        text=True,
        check=False,
    )
    assert mine.stdout == ""  # our ssh client is gone
    assert transport.run(["echo", "still usable"], check=True).stdout == "still usable\n"


def test_write_text_remotely(transport: SshTransport, remote_dir: str) -> None:
    target = f"{remote_dir}/new dir/job.sh"
    text = "#!/bin/bash\n#SBATCH --job-name=efi-1\necho \"$(hostname)\" '$x'\n"
    transport.write_text(target, text)
    assert transport.run(["cat", target], check=True).stdout == text
    transport.write_text(target, "second\n")
    assert transport.run(["cat", target], check=True).stdout == "second\n"
    listing = transport.run(["ls", "-A", f"{remote_dir}/new dir"], check=True).stdout
    assert listing.split() == ["job.sh"]  # no temporary file left behind
    with pytest.raises(CommandFailed):
        transport.write_text("/proc/efi-cannot-write/x", "x")


# -- copies -----------------------------------------------------------------------------------


def _make_tree(root: Path) -> Path:
    (root / "sub" / "work").mkdir(parents=True)
    (root / "work" / "deep").mkdir(parents=True)
    (root / "a.txt").write_text("A")
    (root / "odd name $(id).txt").write_text("odd")
    (root / "sub" / "b.txt").write_text("B")
    (root / "sub" / "work" / "c.txt").write_text("C")
    (root / "work" / "deep" / "big.bin").write_bytes(b"\0" * 4096)
    return root


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("transfer", ["rsync", "scp"])
def test_put_a_directory_and_get_it_back_without_work(
    ssh_lab: SshLab,
    remote_dir: str,
    tmp_path: Path,
    transfer: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = _make_tree(tmp_path / "job")
    with ssh_lab.transport(transfer=transfer) as transport:
        staged = f"{remote_dir}/jobs/42 x"  # parents are created; a space is fine
        transport.put(source, staged)
        found = transport.run(["find", staged, "-type", "f"], check=True).stdout.split("\n")
        assert {p[len(staged) + 1 :] for p in found if p} == _files(source)

        transport.put(source / "a.txt", f"{remote_dir}/single/dir/a-copy.txt")
        copied = transport.run(["cat", f"{remote_dir}/single/dir/a-copy.txt"], check=True)
        assert copied.stdout == "A"

        back = tmp_path / "results" / "42"
        transport.get(staged, back, exclude=["work/"])
        assert _files(back) == {"a.txt", "odd name $(id).txt", "sub/b.txt"}
        assert (back / "sub" / "b.txt").read_text() == "B"

        transport.get(f"{remote_dir}/single/dir/a-copy.txt", tmp_path / "one" / "a.txt")
        assert (tmp_path / "one" / "a.txt").read_text() == "A"

        with pytest.raises(FileNotFoundError):
            transport.get(f"{remote_dir}/missing", tmp_path / "nothing")
    if transfer == "scp":
        assert "cannot exclude work/" in caplog.text


@pytest.mark.parametrize("transfer", ["rsync", "scp"])
def test_put_a_directory_leaves_the_remote_directorys_mode(
    ssh_lab: SshLab, remote_dir: str, tmp_path: Path, transfer: str
) -> None:
    """A private local directory (0700) put into a remote one copies its entries; the remote
    directory keeps its own mode."""
    source = _make_tree(tmp_path / "staging")
    source.chmod(0o700)
    target = f"{remote_dir}/shared"
    with ssh_lab.transport(transfer=transfer) as transport:
        transport.run(["mkdir", target], check=True)
        transport.run(["chmod", "2775", target], check=True)
        transport.put(source, target)
        mode = transport.run(["stat", "-c", "%a", target], check=True).stdout.strip()
        assert mode == "2775"
        found = transport.run(["find", target, "-type", "f"], check=True).stdout.split("\n")
        assert {p[len(target) + 1 :] for p in found if p} == _files(source)


# -- failures ---------------------------------------------------------------------------------


def test_a_closed_port_is_a_quick_transient_error(ssh_lab: SshLab) -> None:
    port = _closed_port()
    with ssh_lab.direct(port=port) as transport:
        start = time.monotonic()
        with pytest.raises(ConnectionFailed) as caught:
            transport.run(["true"])
        assert time.monotonic() - start < 5
    assert isinstance(caught.value, TransientError)
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert "Connection refused" in str(caught.value)


def test_the_direct_settings_work(ssh_lab: SshLab) -> None:
    with ssh_lab.direct() as transport:
        assert transport.run(["id", "-un"], check=True).stdout.strip() == ssh_lab.user


def test_a_wrong_host_key_is_a_permanent_error_naming_known_hosts(
    ssh_lab: SshLab, tmp_path: Path
) -> None:
    key = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    known_hosts = tmp_path / "known_hosts"
    other = " ".join(key.with_suffix(".pub").read_text().split()[:2])
    known_hosts.write_text(f"[127.0.0.1]:{ssh_lab.port} {other}\n")
    with ssh_lab.direct(known_hosts=str(known_hosts)) as transport:
        with pytest.raises(HostKeyError) as caught:
            transport.run(["true"])
        assert isinstance(caught.value, PermanentError)
        assert not isinstance(caught.value, TransientError)
        assert "known_hosts" in str(caught.value)
        assert str(known_hosts) in str(caught.value)
        with pytest.raises(HostKeyError):  # copies too
            transport.put(known_hosts, f"{ssh_lab.scratch}/never")


def test_an_unknown_host_key_is_a_permanent_error(ssh_lab: SshLab, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with ssh_lab.direct(known_hosts=str(empty)) as transport, pytest.raises(HostKeyError):
        transport.run(["true"])


def test_close_twice_and_reuse(ssh_lab: SshLab) -> None:
    transport = ssh_lab.transport()
    transport.close()  # never connected: nothing to do
    transport.run(["true"], check=True)
    directory = transport._ensure_control_dir()
    assert transport.is_master_running()
    transport.close()
    transport.close()
    assert not directory.exists()
    assert not transport.is_master_running()
    assert transport.run(["echo", "again"], check=True).stdout == "again\n"  # a new master
    assert transport.is_master_running()
    transport.close()

"""`LocalTransport`, the errors, and how `SshTransport` builds its commands (no server needed).

The tests against a real sshd are in ``test_transport_ssh.py``.
"""

from __future__ import annotations

import os
import pickle
import shlex
import shutil
import stat
import sys
import time
from pathlib import Path

import pytest

from efi_job_manager.connector import PermanentError, TransientError
from efi_job_manager.transport import (
    CommandFailed,
    CommandResult,
    CommandTimeout,
    ConnectionFailed,
    HostKeyError,
    LocalTransport,
    SshTransport,
    Transport,
)
from efi_job_manager.transport.trees import _excluded

HAVE_RSYNC = shutil.which("rsync") is not None


def _alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie (PID 1 here may not reap orphans)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] not in ("Z", "X")


def _make_tree(root: Path) -> Path:
    (root / "sub" / "work").mkdir(parents=True)
    (root / "work" / "deep").mkdir(parents=True)
    (root / "a.txt").write_text("A")
    (root / "stats.json").write_text('{"n": 1}')
    (root / "sub" / "b.txt").write_text("B")
    (root / "sub" / "work" / "c.txt").write_text("C")
    (root / "work" / "deep" / "big.bin").write_bytes(b"\0" * 1000)
    (root / "run.tmp").write_text("temporary")
    return root


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


# -- LocalTransport.run -----------------------------------------------------------------------


def test_run_returns_code_stdout_stderr_and_duration() -> None:
    transport = LocalTransport()
    code = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"
    result = transport.run([sys.executable, "-c", code])
    assert result.argv == (sys.executable, "-c", code)
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert not result.ok
    assert 0 < result.duration < 30


def test_run_passes_shell_metacharacters_verbatim(tmp_path: Path) -> None:
    transport = LocalTransport()
    argument = "$(id); touch X"
    result = transport.run(["echo", argument], cwd=str(tmp_path), check=True)
    assert result.stdout == argument + "\n"
    tricky = ["`id`", "a b", "*", "'\"", "; rm -rf /tmp/nothing #", "$HOME", "\\n", ""]
    result = transport.run(["printf", r"%s\n", *tricky], cwd=str(tmp_path), check=True)
    assert result.stdout.split("\n")[:-1] == tricky
    assert list(tmp_path.iterdir()) == []  # nothing was created by a shell


def test_run_with_input_and_cwd(tmp_path: Path) -> None:
    transport = LocalTransport()
    assert transport.run(["cat"], input="hello $x\n").stdout == "hello $x\n"
    assert transport.run(["pwd"], cwd=str(tmp_path)).stdout.strip() == str(tmp_path)
    # Without input the program reads end-of-file at once instead of waiting.
    assert transport.run(["cat"], timeout=10).stdout == ""


def test_run_check_raises_command_failed_with_the_result() -> None:
    transport = LocalTransport()
    with pytest.raises(CommandFailed) as caught:
        transport.run([sys.executable, "-c", "import sys; sys.exit('boom')"], check=True)
    error = caught.value
    assert isinstance(error, PermanentError)
    assert error.result.returncode == 1
    assert "boom" in error.result.stderr
    assert "exited with status 1 on local: boom" in str(error)
    assert transport.run(["true"], check=True).ok


def test_missing_program_is_status_127_not_an_exception() -> None:
    result = LocalTransport().run(["efi-no-such-program-xyz"])
    assert result.returncode == 127
    assert "efi-no-such-program-xyz" in result.stderr


def test_run_rejects_a_string_or_an_empty_argv() -> None:
    transport = LocalTransport()
    with pytest.raises(TypeError, match="not one string"):
        transport.run("echo hi")
    with pytest.raises(ValueError, match="empty"):
        transport.run([])
    with pytest.raises(TypeError, match="must be a str"):
        transport.run(["echo", 3])  # type: ignore[list-item]


def test_timeout_raises_transient_error_and_kills_the_whole_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = f'sleep 60 & echo "$$ $!" > {shlex.quote(str(pids))}; wait'
    start = time.monotonic()
    with pytest.raises(CommandTimeout) as caught:
        LocalTransport().run(["sh", "-c", script], timeout=1)
    assert time.monotonic() - start < 10
    assert isinstance(caught.value, TransientError)
    assert caught.value.timeout == 1
    assert "did not finish within 1 s on local" in str(caught.value)
    shell, sleeper = (int(pid) for pid in pids.read_text().split())
    deadline = time.monotonic() + 5
    while (_alive(shell) or _alive(sleeper)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(shell)
    assert not _alive(sleeper)  # the grandchild too, not only the direct child


def test_env_and_env_setup() -> None:
    transport = LocalTransport(env={"EFI_TRANSPORT_TEST": "from-env"})
    assert transport.run(["printenv", "EFI_TRANSPORT_TEST"]).stdout == "from-env\n"
    assert "EFI_TRANSPORT_TEST" not in os.environ

    setup = LocalTransport(env_setup="export FOO='bar baz'  # a comment")
    result = setup.run(["printf", r"%s\n", "$FOO", "x"], check=True)
    assert result.stdout == "$FOO\nx\n"  # the arguments are not re-parsed by the shell
    assert setup.run(["printenv", "FOO"]).stdout == "bar baz\n"
    assert LocalTransport(env_setup="false").run(["echo", "never"]).stdout == ""


def test_transport_is_a_context_manager() -> None:
    with LocalTransport() as transport:
        assert isinstance(transport, Transport)
        assert transport.description == "local"
        assert "local" in repr(transport)
    transport.close()  # a no-op, any number of times


# -- LocalTransport copies --------------------------------------------------------------------


@pytest.mark.parametrize(
    "use_rsync",
    [
        pytest.param(True, marks=pytest.mark.skipif(not HAVE_RSYNC, reason="rsync missing")),
        False,
    ],
    ids=["rsync", "shutil"],
)
def test_put_and_get_a_directory_with_exclude(tmp_path: Path, use_rsync: bool) -> None:
    transport = LocalTransport(use_rsync=use_rsync)
    source = _make_tree(tmp_path / "src")
    staged = tmp_path / "remote" / "jobs" / "42"
    transport.put(source, str(staged))
    assert _files(staged) == _files(source)
    assert (staged / "sub" / "b.txt").read_text() == "B"

    back = tmp_path / "results" / "42"
    transport.get(str(staged), back, exclude=["work/", "*.tmp"])
    assert _files(back) == {"a.txt", "stats.json", "sub/b.txt"}

    # A second get merges into what is there.
    (staged / "late.txt").write_text("late")
    transport.get(str(staged), back, exclude=["work/"])
    assert "late.txt" in _files(back)


@pytest.mark.parametrize(
    "use_rsync",
    [
        pytest.param(True, marks=pytest.mark.skipif(not HAVE_RSYNC, reason="rsync missing")),
        False,
    ],
    ids=["rsync", "shutil"],
)
def test_put_a_directory_copies_its_entries_and_leaves_the_targets_mode(
        tmp_path: Path, use_rsync: bool) -> None:
    """A private staging directory (0700) put into a shared one leaves the shared one's mode;
    its entries (their own modes, links as links) land inside, merged with what is there."""
    transport = LocalTransport(use_rsync=use_rsync)
    source = _make_tree(tmp_path / "staging")
    (source / "link").symlink_to("a.txt")
    source.chmod(0o700)
    (source / "sub").chmod(0o751)
    target = tmp_path / "shared"
    target.mkdir()
    target.chmod(0o2775)
    (target / "kept.txt").write_text("kept")
    transport.put(source, str(target))
    assert stat.S_IMODE(target.stat().st_mode) == 0o2775
    assert stat.S_IMODE((target / "sub").stat().st_mode) == 0o751
    assert _files(target) == _files(source) | {"kept.txt"}
    assert (target / "link").is_symlink()
    assert os.readlink(target / "link") == "a.txt"
    (source / "a.txt").write_text("A again")
    transport.put(source, str(target))  # a second put replaces what it copied
    assert (target / "a.txt").read_text() == "A again"
    assert os.readlink(target / "link") == "a.txt"


def test_put_a_file_creates_parents(tmp_path: Path) -> None:
    transport = LocalTransport()
    (tmp_path / "f.txt").write_text("F")
    target = tmp_path / "x" / "y" / "g.txt"
    transport.put(tmp_path / "f.txt", str(target))
    assert target.read_text() == "F"


def test_copy_to_the_same_path_is_a_no_op(tmp_path: Path) -> None:
    transport = LocalTransport()
    tree = _make_tree(tmp_path / "job")
    before = _files(tree)
    transport.put(tree, str(tree))
    transport.get(str(tree) + "/", tree)
    transport.put(tree / "a.txt", str(tree / "a.txt"))
    assert _files(tree) == before
    assert (tree / "a.txt").read_text() == "A"


def test_copy_errors(tmp_path: Path) -> None:
    transport = LocalTransport()
    with pytest.raises(FileNotFoundError):
        transport.get(str(tmp_path / "missing"), tmp_path / "out")
    tree = _make_tree(tmp_path / "job")
    with pytest.raises(ValueError, match="into itself"):
        transport.put(tree, str(tree / "sub" / "copy"))


def test_write_text_is_atomic(tmp_path: Path) -> None:
    transport = LocalTransport()
    target = tmp_path / "new" / "dir" / "params.json"
    transport.write_text(str(target), '{"a": "$(id)"}\n')
    assert target.read_text() == '{"a": "$(id)"}\n'
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask

    inode = target.stat().st_ino
    transport.write_text(str(target), "second")
    assert target.read_text() == "second"
    assert target.stat().st_ino != inode  # a new file renamed over the old one, not rewritten

    with pytest.raises(UnicodeEncodeError):
        transport.write_text(str(target), "half \ud800 written")
    assert target.read_text() == "second"  # a failed write leaves the old file
    assert [p.name for p in target.parent.iterdir()] == ["params.json"]  # and no temporary


# -- exclude patterns (the copies rsync does not make) ----------------------------------------


@pytest.mark.parametrize(
    ("path", "is_dir", "patterns", "expected"),
    [
        ("work", True, ["work/"], True),
        ("sub/work", True, ["work/"], True),
        ("work", False, ["work/"], False),  # a file named work: "work/" is for directories
        ("work", False, ["work"], True),
        ("a/b.tmp", False, ["*.tmp"], True),
        ("a/b.txt", False, ["*.tmp"], False),
        ("x/sub/b.txt", False, ["sub/b.txt"], True),
        ("sub/b.txt", False, ["/sub/b.txt"], True),
        ("x/sub/b.txt", False, ["/sub/b.txt"], False),
        ("sub", True, ["/sub/"], True),
        ("anything", False, [], False),
    ],
)
def test_excluded(path: str, is_dir: bool, patterns: list[str], expected: bool) -> None:
    assert _excluded(path, is_dir, patterns) is expected


# -- results and errors -----------------------------------------------------------------------


def test_command_result_check() -> None:
    ok = CommandResult(("true",), 0, "", "", 0.1)
    assert ok.check() is ok
    bad = CommandResult(("sbatch", "--secret-arg"), 1, "", "sbatch: error: invalid partition", 0.1)
    with pytest.raises(CommandFailed, match="sbatch exited with status 1 on here: sbatch: error"):
        bad.check("here")
    assert "--secret-arg" not in str(CommandFailed(bad))  # arguments stay out of messages


def test_errors_pickle_and_keep_their_attributes() -> None:
    result = CommandResult(("x",), 2, "o", "e", 0.5)
    errors = [
        CommandFailed(result, "local"),
        ConnectionFailed("ssh://h", "Connection refused"),
        HostKeyError("ssh://h", "/kh", "changed"),
        CommandTimeout(["sleep", "9"], 1.5, "local"),
    ]
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
        assert type(copy) is type(error)
        assert str(copy) == str(error)
    assert isinstance(errors[1], TransientError)
    assert isinstance(errors[2], PermanentError)
    assert "known_hosts file /kh" in str(errors[2])


# -- SshTransport: building commands (no connection is made) ----------------------------------


def test_remote_command_quotes_every_argument() -> None:
    transport = SshTransport("login.example.org")
    argv = ["printf", r"%s\n", "; touch /tmp/x #", "$(id)", "a b", "it's"]
    command = transport.remote_command(argv)
    assert shlex.split(command) == argv
    assert command == shlex.join(argv)
    assert transport.remote_command(["ls"], cwd="/scratch/my jobs") == "cd '/scratch/my jobs' && ls"


def test_remote_command_with_env_setup() -> None:
    transport = SshTransport("h", env_setup="module load slurm # site setup")
    assert transport.remote_command(["sbatch", "a b"]) == (
        "{ module load slurm # site setup\n} && sbatch 'a b'"
    )
    assert transport.remote_command(["mkdir", "-p", "d"], env_setup=False) == "mkdir -p d"
    assert SshTransport("h", env_setup="   ").env_setup is None


def test_ssh_options_and_description(tmp_path: Path) -> None:
    control = Path("/tmp/efijm-test-ctl")  # short: a socket path must fit in ~104 bytes
    transport = SshTransport(
        "login.example.org",
        user="efi",
        port=2222,
        identity_file="/keys/id_%h",
        known_hosts="/etc/efi/known_hosts",
        config_file="/etc/efi/ssh_config",
        control_dir=control,
        control_persist="5m",
        connect_timeout=7,
        extra_options=["-o", "ProxyJump=bastion"],
    )
    try:
        assert transport.description == "ssh://efi@login.example.org:2222"
        assert "keys" not in transport.description
        command = transport._ssh_command()
        assert command[0] == "ssh"
        assert command[-1] == "efi@login.example.org"
        joined = " ".join(command)
        for expected in (
            "-o BatchMode=yes",
            "-o StrictHostKeyChecking=yes",
            "-o ConnectTimeout=7",
            "-o ControlMaster=auto",
            f"-o ControlPath={control}/%C",
            "-o ControlPersist=5m",
            "-F /etc/efi/ssh_config",
            "-i /keys/id_%%h",  # a literal % in a path is escaped for ssh's token expansion
            "-p 2222",
            "-o UserKnownHostsFile=/etc/efi/known_hosts",
            "-o ProxyJump=bastion",
        ):
            assert expected in joined
        assert "-P 2222" in " ".join(transport._options(scp=True))
        assert stat.S_IMODE(control.stat().st_mode) == 0o700
        # rsync splits the -e string itself: every option survives as one word.
        rsync = transport._rsync_command(["work/"])
        assert shlex.split(rsync[rsync.index("-e") + 1]) == ["ssh", *transport._options()]
        assert "--exclude=work/" in rsync
        assert transport._remote_spec("/a b") == "efi@login.example.org:/a b"
    finally:
        transport.close()
        transport.close()
        shutil.rmtree(control, ignore_errors=True)
    assert SshTransport("::1", strict_host_key_checking=False)._remote_spec("p") == "[::1]:p"
    no = SshTransport("h", strict_host_key_checking="accept-new")
    assert "StrictHostKeyChecking=accept-new" in no._options()
    no.close()


def test_default_control_dir_is_private_short_and_removed_by_close() -> None:
    transport = SshTransport("h")
    directory = transport._ensure_control_dir()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert len(str(directory)) <= 45
    transport.close()
    assert not directory.exists()
    transport.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"host": "-oProxyCommand=evil"}, "host"),
        ({"host": "a b"}, "host"),
        ({"host": "h", "user": "-l"}, "user"),
        ({"host": "h", "user": "a@b"}, "@"),
        ({"host": "h", "port": 0}, "port"),
        ({"host": "h", "connect_timeout": 0}, "connect_timeout"),
        ({"host": "h", "strict_host_key_checking": "maybe"}, "strict_host_key_checking"),
        ({"host": "h", "known_hosts": "/a b"}, "known_hosts"),
        ({"host": "h", "control_dir": Path("/tmp") / ("x" * 60)}, "too long"),
        ({"host": "h", "transfer": "ftp"}, "transfer"),
    ],
)
def test_ssh_transport_rejects_bad_settings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SshTransport(**kwargs)  # type: ignore[arg-type]

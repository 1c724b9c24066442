"""EmailNotifier against a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, cast

import attrs
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from efi_job_manager.config import EmailSettings
from efi_job_manager.events import EventBus, EventKind, JobEvent
from efi_job_manager.notify import EmailNotifier, subject_for
from efi_job_manager.repository import JobRepository

SENDER = "efi@example.org"
OPS = "ops@example.org"
USER = "user7@example.org"
LOGIN = "efi-mailer"
PASSWORD = "s3cr3t-Pa55word"
WAIT = 10.0

LOGGER = "efi_job_manager.notify"


# --------------------------------------------------------------------------- the server


@attrs.define
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes
    login: bytes | None


class Collector:
    """An aiosmtpd handler that keeps every message (and checks logins, when asked)."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.logins: list[tuple[bytes, bytes]] = []

    async def handle_DATA(self, server: SMTPServer, session: Session,
                          envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = message_from_bytes(raw, policy=policy.default)
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        self.messages.append(Received(envelope.mail_from or "", list(envelope.rcpt_tos),
                                      message, raw, login))
        return "250 OK"

    def authenticate(self, server: SMTPServer, session: Session, envelope: Envelope,
                     mechanism: str, auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        self.logins.append((auth_data.login, auth_data.password))
        ok = auth_data.login == LOGIN.encode() and auth_data.password == PASSWORD.encode()
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


@attrs.define
class Server:
    port: int
    collector: Collector

    @property
    def messages(self) -> list[Received]:
        return self.collector.messages

    def settings(self, **changes: Any) -> EmailSettings:
        values: dict[str, Any] = {"smtp": f"127.0.0.1:{self.port}", "sender": SENDER,
                                  "recipients": (OPS,), "timeout": 5.0}
        values.update(changes)
        return EmailSettings(**values)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(**smtp_kwargs: Any) -> Iterator[Server]:
    collector = Collector()
    if smtp_kwargs.pop("auth", False):
        smtp_kwargs.update(authenticator=collector.authenticate, auth_require_tls=False)
    controller = Controller(collector, hostname="127.0.0.1", port=free_port(), **smtp_kwargs)
    controller.start()
    try:
        yield Server(controller.port, collector)
    finally:
        controller.stop()


@pytest.fixture
def server() -> Iterator[Server]:
    yield from _serve()


@pytest.fixture
def auth_server() -> Iterator[Server]:
    yield from _serve(auth=True)


@pytest.fixture
def notifiers() -> Iterator[list[EmailNotifier]]:
    """Notifiers to close after the test, so no thread outlives it."""
    made: list[EmailNotifier] = []
    yield made
    for notifier in made:
        notifier.close(WAIT)


@pytest.fixture
def make_notifier(notifiers: list[EmailNotifier]) -> Any:
    def make(settings: EmailSettings, *args: Any, **kwargs: Any) -> EmailNotifier:
        notifier = EmailNotifier(settings, *args, **kwargs)
        notifiers.append(notifier)
        return notifier

    return make


def event(kind: EventKind = EventKind.FINISHED, **changes: Any) -> JobEvent:
    values: dict[str, Any] = {
        "kind": kind, "job_id": 42, "job_type": "est_generate_blast", "user_id": 7,
        "time": datetime(2024, 5, 1, 12, 30, 5), "destination": "default",
        "scheduler_id": "123456", "job_name": "My BLAST job",
    }
    values.update(changes)
    return JobEvent(**values)


def subject(received: Received) -> str:
    """The subject as a reader sees it (a long one is folded onto a continuation line)."""
    return " ".join(str(received.message["Subject"]).split())


def body(received: Received) -> str:
    part = received.message.get_body(("plain",))
    assert part is not None
    return cast(str, part.get_content())


def address_of_user_7(ev: JobEvent) -> str | None:
    return USER if ev.user_id == 7 else None


# --------------------------------------------------------------------------- delivery


def test_a_finished_event_sends_one_mail_to_the_recipients(server: Server,
                                                           make_notifier: Any) -> None:
    notifier = make_notifier(server.settings(recipients=(OPS, "admin@example.org")))

    notifier(event())

    assert notifier.flush(WAIT)
    assert len(server.messages) == 1
    mail = server.messages[0]
    assert mail.mail_from == SENDER
    assert mail.rcpt_tos == [OPS, "admin@example.org"]
    assert subject(mail) == "[EFI] job 42 (est_generate_blast) finished"
    assert mail.message["From"] == SENDER
    assert mail.message["To"] == f"{OPS}, admin@example.org"
    assert mail.message["Auto-Submitted"] == "auto-generated"
    assert mail.message.get_content_type() == "text/plain"
    text = body(mail)
    for expected in ("42", "est_generate_blast", "My BLAST job", "default", "123456",
                     "2024-05-01 12:30:05 UTC", "finished"):
        assert expected in text


def test_a_failed_event_shows_its_reason(server: Server, make_notifier: Any) -> None:
    notifier = make_notifier(server.settings())
    reason = "nextflow exited with status 1\nProcess `blast` terminated: out of memory"

    notifier(event(EventKind.FAILED, reason=reason))

    assert notifier.flush(WAIT)
    [mail] = server.messages
    assert subject(mail) == (
        "[EFI] job 42 (est_generate_blast) failed: nextflow exited with status 1")
    text = body(mail)
    assert "nextflow exited with status 1" in text
    assert "Process `blast` terminated: out of memory" in text


def test_a_long_reason_is_truncated_in_the_subject(server: Server, make_notifier: Any) -> None:
    notifier = make_notifier(server.settings())

    notifier(event(EventKind.FAILED, reason="x" * 1000))

    assert notifier.flush(WAIT)
    [mail] = server.messages
    text = subject(mail)
    assert text.startswith("[EFI] job 42 (est_generate_blast) failed: xxx")
    assert text.endswith("…")
    assert len(text) <= 200


def test_address_for_adds_the_owner(server: Server, make_notifier: Any) -> None:
    notifier = make_notifier(server.settings(), address_for=address_of_user_7)

    notifier(event())
    notifier(event(user_id=8))

    assert notifier.flush(WAIT)
    first, second = server.messages
    assert first.rcpt_tos == [USER, OPS]
    assert first.message["To"] == USER          # the operators are blind copies
    assert OPS.encode() not in first.raw
    assert second.rcpt_tos == [OPS]
    assert second.message["To"] == OPS


def test_address_for_alone_is_enough(server: Server, make_notifier: Any) -> None:
    notifier = make_notifier(server.settings(recipients=()), address_for=address_of_user_7)

    notifier(event())

    assert notifier.flush(WAIT)
    [mail] = server.messages
    assert mail.rcpt_tos == [USER]


def test_a_failing_address_for_still_mails_the_recipients(
        server: Server, make_notifier: Any, caplog: pytest.LogCaptureFixture) -> None:
    def broken(ev: JobEvent) -> str | None:
        raise LookupError("no such user")

    notifier = make_notifier(server.settings(), address_for=broken)

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        notifier(event())
        assert notifier.flush(WAIT)

    [mail] = server.messages
    assert mail.rcpt_tos == [OPS]
    assert "no such user" in caplog.text


@pytest.mark.parametrize("bad", ["user@example.org\r\nBcc: evil@example.org", "not-an-address"])
def test_an_unusable_owner_address_is_ignored(server: Server, make_notifier: Any,
                                              caplog: pytest.LogCaptureFixture,
                                              bad: str) -> None:
    notifier = make_notifier(server.settings(), address_for=lambda ev: bad)

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        notifier(event())
        assert notifier.flush(WAIT)

    [mail] = server.messages
    assert mail.rcpt_tos == [OPS]
    assert mail.message["Bcc"] is None
    assert "unusable address" in caplog.text


@pytest.mark.parametrize("field", ["reason", "job_name", "job_type", "destination"])
def test_newlines_in_user_data_add_no_header_nor_recipient(server: Server, make_notifier: Any,
                                                           field: str) -> None:
    notifier = make_notifier(server.settings())
    evil = "boom\r\nBcc: evil@example.org\r\nX-Evil: 1"

    notifier(event(EventKind.FAILED, **{field: evil}))
    notifier(event(EventKind.FAILED, reason="\r\nBcc: evil@example.org\nTo: evil@example.org"))

    assert notifier.flush(WAIT)
    assert len(server.messages) == 2
    for mail in server.messages:
        assert mail.rcpt_tos == [OPS]
        assert mail.message["Bcc"] is None
        assert mail.message["X-Evil"] is None
        assert mail.message.get_all("To") == [OPS]
        assert "\n" not in mail.message["Subject"]
        assert "\r" not in mail.message["Subject"]
        assert len(mail.message.get_all("Subject") or []) == 1
        headers = mail.raw.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in mail.raw else (
            mail.raw.split(b"\n\n", 1)[0])
        assert not any(line.lower().startswith((b"bcc:", b"x-evil:"))
                       for line in headers.splitlines())
    assert "Bcc: evil@example.org" in subject(server.messages[1])


def test_the_kinds_filter(server: Server, make_notifier: Any) -> None:
    notifier = make_notifier(server.settings(), kinds=frozenset({EventKind.FAILED}))

    notifier(event(EventKind.STARTED))
    notifier(event(EventKind.FINISHED))
    notifier(event(EventKind.FAILED, reason="bad input", job_id=43))

    assert notifier.flush(WAIT)
    [mail] = server.messages
    assert subject(mail) == "[EFI] job 43 (est_generate_blast) failed: bad input"


def test_an_event_bus_delivers_on_emit(server: Server, make_notifier: Any) -> None:
    bus = EventBus()
    notifier = make_notifier(server.settings())
    bus.subscribe(notifier)

    bus.emit(event(EventKind.CANCELLED, reason="cancelled by the user"))

    assert notifier.flush(WAIT)
    [mail] = server.messages
    assert subject(mail) == (
        "[EFI] job 42 (est_generate_blast) cancelled: cancelled by the user")


def test_without_recipients_nothing_is_sent(make_notifier: Any,
                                            caplog: pytest.LogCaptureFixture) -> None:
    # Nothing listens on this port: a connection attempt would log a warning.
    settings = EmailSettings(smtp=f"127.0.0.1:{free_port()}", sender=SENDER)
    notifier = make_notifier(settings)

    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        notifier(event())
        assert notifier.flush(WAIT)

    assert "no recipients" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_repository_fills_a_missing_name_and_user(server: Server,
                                                      make_notifier: Any) -> None:
    class Rows:
        def get_raw(self, job_id: int) -> dict[str, Any] | None:
            return {"id": job_id, "jobName": "From the row", "user_id": 7}

    repository = cast(JobRepository, Rows())
    notifier = make_notifier(server.settings(), repository, address_for=address_of_user_7)

    notifier(event(user_id=None, job_name=None))

    assert notifier.flush(WAIT)
    [mail] = server.messages
    assert mail.rcpt_tos == [USER, OPS]
    assert "From the row" in body(mail)


def test_a_failing_repository_does_not_stop_the_mail(server: Server,
                                                     make_notifier: Any) -> None:
    class Broken:
        def get_raw(self, job_id: int) -> dict[str, Any] | None:
            raise RuntimeError("database is down")

    notifier = make_notifier(server.settings(), cast(JobRepository, Broken()))

    notifier(event(job_name=None))

    assert notifier.flush(WAIT)
    assert len(server.messages) == 1


def test_synchronous_mode_sends_during_the_call(server: Server) -> None:
    notifier = EmailNotifier(server.settings(), background=False)

    notifier(event())

    assert len(server.messages) == 1
    assert notifier.send(event(job_id=43)) is True
    assert len(server.messages) == 2


# --------------------------------------------------------------------------- authentication


def test_username_and_password_are_used(auth_server: Server, make_notifier: Any,
                                        caplog: pytest.LogCaptureFixture) -> None:
    notifier = make_notifier(auth_server.settings(username=LOGIN, password=PASSWORD))

    with caplog.at_level(logging.DEBUG):
        notifier(event())
        assert notifier.flush(WAIT)

    [mail] = auth_server.messages
    assert mail.login == LOGIN.encode()
    assert auth_server.collector.logins == [(LOGIN.encode(), PASSWORD.encode())]
    assert PASSWORD not in caplog.text
    assert PASSWORD.encode() not in mail.raw
    assert PASSWORD not in repr(notifier)


def test_a_wrong_password_is_one_warning_without_the_password(
        auth_server: Server, make_notifier: Any, caplog: pytest.LogCaptureFixture) -> None:
    wrong = "wr0ng-Pa55word"
    notifier = make_notifier(auth_server.settings(username=LOGIN, password=wrong))

    with caplog.at_level(logging.DEBUG):
        notifier(event())
        assert notifier.flush(WAIT)

    assert auth_server.messages == []
    warnings = [r for r in caplog.records
                if r.levelno == logging.WARNING and r.name == LOGGER]
    assert len(warnings) == 1
    assert f"127.0.0.1:{auth_server.port}" in warnings[0].getMessage()
    assert "535" in warnings[0].getMessage()
    assert warnings[0].exc_info is None
    assert wrong not in caplog.text


def test_starttls_refused_by_the_server_sends_nothing(server: Server, make_notifier: Any,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    notifier = make_notifier(server.settings(starttls=True))

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        notifier(event())
        assert notifier.flush(WAIT)

    assert server.messages == []
    assert "SMTPNotSupportedError" in caplog.text
    assert f"127.0.0.1:{server.port}" in caplog.text


# --------------------------------------------------------------------------- failures


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.WARNING and r.name == LOGGER]


@pytest.mark.parametrize("background", [True, False])
def test_a_server_that_is_down_is_one_warning(make_notifier: Any,
                                              caplog: pytest.LogCaptureFixture,
                                              background: bool) -> None:
    port = free_port()   # closed: nothing listens
    settings = EmailSettings(smtp=f"127.0.0.1:{port}", sender=SENDER, recipients=(OPS,),
                             timeout=2.0)
    notifier = make_notifier(settings, background=background)

    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        start = time.monotonic()
        notifier(event())
        assert notifier.flush(WAIT)
        elapsed = time.monotonic() - start

    assert elapsed < settings.timeout
    [warning] = _warnings(caplog)
    assert f"127.0.0.1:{port}" in warning.getMessage()
    assert "ConnectionRefusedError" in warning.getMessage()
    assert warning.exc_info is None


def test_a_silent_server_is_bounded_by_the_timeout(make_notifier: Any,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)    # accepts connections (backlog) but never greets
        port = listener.getsockname()[1]
        settings = EmailSettings(smtp=f"127.0.0.1:{port}", sender=SENDER, recipients=(OPS,),
                                 timeout=0.5)
        notifier = make_notifier(settings)

        with caplog.at_level(logging.WARNING, logger=LOGGER):
            start = time.monotonic()
            notifier(event())
            returned = time.monotonic() - start
            assert notifier.flush(WAIT)
            elapsed = time.monotonic() - start

    assert returned < 0.2          # the cycle does not wait for the server
    assert 0.4 < elapsed < 3.0
    [warning] = _warnings(caplog)
    assert f"127.0.0.1:{port}" in warning.getMessage()
    assert "no answer within 0.5s" in warning.getMessage()


def test_a_full_queue_drops_with_a_warning(server: Server, make_notifier: Any,
                                           caplog: pytest.LogCaptureFixture) -> None:
    entered = threading.Event()
    release = threading.Event()

    def slow(ev: JobEvent) -> str | None:
        if ev.job_id == 1:
            entered.set()
            release.wait(WAIT)
        return None

    notifier = make_notifier(server.settings(), address_for=slow, queue_size=1)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        notifier(event(job_id=1))
        assert entered.wait(WAIT)          # the worker holds job 1
        notifier(event(job_id=2))          # queued
        notifier(event(job_id=3))          # dropped
        assert not notifier.flush(0.05)
        release.set()
        assert notifier.flush(WAIT)

    assert sorted(subject(m).split()[2] for m in server.messages) == ["1", "2"]
    [warning] = _warnings(caplog)
    assert "dropped the mail for job 3" in warning.getMessage()


def test_close_delivers_what_is_queued_then_ignores_events(server: Server) -> None:
    notifier = EmailNotifier(server.settings())
    assert notifier.flush(0)               # nothing queued, no thread yet
    assert notifier.close(0) is True       # closing an unused notifier is immediate

    notifier = EmailNotifier(server.settings())
    for job_id in range(5):
        notifier(event(job_id=job_id))
    assert notifier.close(WAIT) is True
    assert len(server.messages) == 5

    notifier(event(job_id=99))
    assert notifier.close(WAIT) is True    # idempotent
    assert len(server.messages) == 5


# --------------------------------------------------------------------------- the subject


def test_subject_for_replaces_control_characters() -> None:
    subject = subject_for(event(EventKind.FAILED, job_type="a\x00b\u2028c",
                                reason="\n\n  first\tline\x1b[31m  \nsecond"))
    assert subject == "[EFI] job 42 (a b c) failed: first line [31m"


def test_subject_for_without_a_reason() -> None:
    assert subject_for(event(EventKind.FAILED)) == "[EFI] job 42 (est_generate_blast) failed"
    assert subject_for(event(EventKind.STARTED, reason="ignored")) == (
        "[EFI] job 42 (est_generate_blast) started")

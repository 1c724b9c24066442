"""Email on job transitions: an `EventBus` subscriber that sends one plain-text mail per event.

`EmailNotifier` is subscribed by `JobManager.from_settings` when ``[notify.email]`` is set::

    notifier = EmailNotifier(settings.notify.email, repository)
    manager.events.subscribe(notifier)
    ...
    notifier.close(timeout=10)      # at shutdown: deliver what is queued, then stop

Calling the notifier only queues the event (a bounded queue); one background thread
builds and sends the mails, so a slow or unreachable SMTP server never slows a cycle.
Each delivery attempt is bounded by ``timeout`` (per SMTP operation); a failure is one
WARNING line naming ``host:port`` and the error, never an exception or a traceback. A
full queue drops the event with a warning. Use `flush` to wait for delivery (tests) and
`close` to stop the thread (shutdown). The SMTP password never appears in a log line or
a message.

Who receives a mail: every address of ``recipients``, plus the address that the site's
``address_for`` hook returns for the event (EFI-Web's user table is not public, so
mapping ``user_id`` to an address is the site's business). The ``To`` header shows the
job owner's address when there is one, else the configured recipients; when the owner
gets the mail the configured recipients receive it as blind copies (envelope only), so
the operators' addresses are not shown to users.

Job names and reasons come from user data and cluster output: control characters
(CR/LF included) are replaced in the subject, so they can never add a header.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import re
import smtplib
import ssl
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING, Final

import attrs

from efi_job_manager.events import EventKind, JobEvent

if TYPE_CHECKING:
    from efi_job_manager.config import EmailSettings
    from efi_job_manager.repository import JobRepository

__all__ = ["DEFAULT_QUEUE_SIZE", "EmailNotifier", "build_message", "check_smtp", "subject_for"]

log = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE: Final = 100
"""Most events waiting for delivery; more are dropped with a warning."""

_REASON_MAX: Final = 120
_SUBJECT_MAX: Final = 200
_FIELD_MAX: Final = 500
_SPACES_RE: Final = re.compile(r"\s+")


def _one_line(text: str, limit: int) -> str:
    """``text`` on one line, without control characters, at most ``limit`` characters.

    Control and line-separator characters become spaces, runs of white space one space,
    and a longer result is cut (ending in ``…``).
    """
    cleaned = "".join(
        " " if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") else char for char in text
    )
    cleaned = _SPACES_RE.sub(" ", cleaned).strip()
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1].rstrip() + "…"
    return cleaned


def _first_line(text: str) -> str:
    """The first non-blank line of ``text``, or an empty string."""
    return next((line for line in text.splitlines() if line.strip()), "")


def subject_for(event: JobEvent) -> str:
    """The subject of the mail about ``event``, on one line and without control characters.

    ``[EFI] job 42 (est_generate_blast) finished``, or for a failure or a cancellation with
    a reason ``[EFI] job 42 (est_generate_blast) failed: <first line of the reason>``.
    """
    subject = f"[EFI] job {event.job_id} ({_one_line(event.job_type, 64)}) {event.kind.value}"
    if event.reason and event.kind in (EventKind.FAILED, EventKind.CANCELLED):
        reason = _one_line(_first_line(event.reason), _REASON_MAX)
        if reason:
            subject = f"{subject}: {reason}"
    return _one_line(subject, _SUBJECT_MAX)


def _format_time(moment: datetime) -> str:
    text = moment.isoformat(sep=" ", timespec="seconds")
    return f"{text} UTC" if moment.tzinfo is None else text


def _body(event: JobEvent) -> str:
    def field(value: object) -> str:
        return "-" if value is None or value == "" else _one_line(str(value), _FIELD_MAX)

    lines = [
        f"Job {event.job_id} {event.kind.value}.",
        "",
        f"Job id:       {event.job_id}",
        f"Type:         {field(event.job_type)}",
        f"Name:         {field(event.job_name)}",
        f"Status:       {event.kind.value}",
        f"Destination:  {field(event.destination)}",
        f"Scheduler id: {field(event.scheduler_id)}",
        f"Time:         {_format_time(event.time)}",
    ]
    if event.reason:
        reason_lines = [
            _one_line(line, _FIELD_MAX) for line in event.reason.splitlines() if line.strip()
        ]
        lines.append("Reason:       " + (reason_lines[0] if reason_lines else "-"))
        lines.extend(f"              {line}" for line in reason_lines[1:50])
        if len(reason_lines) > 50:
            lines.append(f"              ({len(reason_lines) - 50} more lines)")
    lines += ["", "-- ", "Sent by the EFI job manager."]
    return "\n".join(lines) + "\n"


def build_message(event: JobEvent, sender: str, to: Iterable[str]) -> EmailMessage:
    """The plain-text mail about ``event`` from ``sender``, with ``to`` in its ``To`` header.

    Raises:
        ValueError: An address is not usable in a header.
    """
    domain = sender.rpartition("@")[2].strip(" >") or "efi-job-manager.invalid"
    message = EmailMessage()
    message["Subject"] = subject_for(event)
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid("efi-job", domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(_body(event))
    return message


def _clean_address(value: object) -> str | None:
    """A usable address from the site's hook, or None (with a warning) if it is not one."""
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or "@" not in value
        or any(unicodedata.category(char) in ("Cc", "Zl", "Zp") for char in value)
    ):
        log.warning("notify: address_for returned an unusable address %r; ignored",
                    _one_line(repr(value), 100))
        return None
    return value.strip()


class EmailNotifier:
    """Sends one plain-text mail per job event; an `EventBus` subscriber.

    Args:
        settings: The ``[notify.email]`` settings (server, sender, login, recipients,
            timeout).
        repository: Used, when given, to fill an event's missing ``job_name`` and
            ``user_id`` from the job's row (on the delivery thread; a failing lookup is
            ignored).
        address_for: The site's hook mapping an event (its ``user_id``) to the job owner's
            address, or None. Called on the delivery thread; an exception is logged as a
            warning and the mail still goes to ``recipients``.
        kinds: The event kinds that send mail; others are ignored.
        queue_size: Most events waiting for delivery; when full, new events are dropped
            with a warning.
        background: Send on a background thread (the default). If False, calling the
            notifier sends at once (still never raising).
    """

    def __init__(
        self,
        settings: EmailSettings,
        repository: JobRepository | None = None,
        *,
        address_for: Callable[[JobEvent], str | None] | None = None,
        kinds: frozenset[EventKind] = frozenset(EventKind),
        queue_size: int = DEFAULT_QUEUE_SIZE,
        background: bool = True,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.settings = settings
        self.repository = repository
        self.address_for = address_for
        self.kinds = frozenset(kinds)
        self.queue_size = queue_size
        self.background = background
        self._pending: collections.deque[JobEvent] = collections.deque()
        self._busy = False
        self._closed = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        """Name the server and sender only (never the login or the password)."""
        return f"<EmailNotifier smtp={self.settings.smtp} sender={self.settings.sender!r}>"

    # -- the subscriber ------------------------------------------------------------------

    def __call__(self, event: JobEvent) -> None:
        """Queue (or, without a background thread, send) the mail about ``event``."""
        if event.kind not in self.kinds:
            return
        if not self.background:
            self._deliver_guarded(event)
            return
        with self._cond:
            if self._closed:
                log.debug("notify: closed; no mail for job %s %s", event.job_id,
                          event.kind.value)
                return
            if len(self._pending) >= self.queue_size:
                log.warning("notify: %d mails waiting for %s; dropped the mail for job %s %s",
                            len(self._pending), self.settings.smtp, event.job_id,
                            event.kind.value)
                return
            self._pending.append(event)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="efi-email-notifier", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued mail was sent or given up on.

        Returns:
            True if nothing is left to send, False if ``timeout`` seconds passed first.
        """
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Stop accepting events, deliver those already queued, then stop the thread.

        Idempotent. Each queued mail takes at most about the SMTP timeout per server step,
        so pass ``timeout`` to bound a shutdown; mails still queued after it are left to
        the (daemon) thread and lost if the process exits, with a warning.

        Returns:
            True if everything queued was handled, False if ``timeout`` passed first.
        """
        with self._cond:
            self._closed = True
            thread = self._thread
            self._cond.notify_all()
        if thread is None:
            return True
        thread.join(timeout)
        if thread.is_alive():
            with self._cond:
                left = len(self._pending) + (1 if self._busy else 0)
            log.warning("notify: %d mail(s) to %s not sent before shutdown", left,
                        self.settings.smtp)
            return False
        return True

    # -- delivery ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
                event = self._pending.popleft()
                self._busy = True
            try:
                self._deliver_guarded(event)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _deliver_guarded(self, event: JobEvent) -> None:
        try:
            self.send(event)
        except Exception as exc:  # the thread must survive anything
            log.warning("notify: mail for job %s %s not sent: %s", event.job_id,
                        event.kind.value, _describe(self.settings, exc))

    def send(self, event: JobEvent) -> bool:
        """Send the mail about ``event`` now, on the calling thread.

        Returns:
            True if the server accepted it for at least one recipient; False if there is
            nobody to send to or the server failed (logged as one warning).
        """
        event = self._complete(event)
        owner = self._owner_address(event)
        recipients = _unique([*([owner] if owner else []), *self.settings.recipients])
        if not recipients:
            log.debug("notify: no recipients for job %s %s", event.job_id, event.kind.value)
            return False
        try:
            message = build_message(event, self.settings.sender,
                                    [owner] if owner else self.settings.recipients)
        except Exception as exc:
            log.warning("notify: cannot build the mail for job %s %s: %s", event.job_id,
                        event.kind.value, _describe(self.settings, exc))
            return False
        return self._transmit(event, message, recipients)

    def _complete(self, event: JobEvent) -> JobEvent:
        """Fill a missing job name and user id from the job's row, if a repository is set."""
        if self.repository is None or (event.job_name is not None and event.user_id is not None):
            return event
        try:
            row = self.repository.get_raw(event.job_id)
        except Exception as exc:
            log.debug("notify: cannot read job %s: %s", event.job_id, exc)
            return event
        if row is None:
            return event
        job_name = event.job_name if event.job_name is not None else row.get("jobName")
        user_id = event.user_id if event.user_id is not None else row.get("user_id")
        return attrs.evolve(
            event,
            job_name=job_name if isinstance(job_name, str) else None,
            user_id=user_id if isinstance(user_id, int) else None,
        )

    def _owner_address(self, event: JobEvent) -> str | None:
        if self.address_for is None:
            return None
        try:
            return _clean_address(self.address_for(event))
        except Exception as exc:
            log.warning("notify: address_for failed for job %s: %s: %s", event.job_id,
                        type(exc).__name__, self._scrub(str(exc)))
            return None

    def _transmit(self, event: JobEvent, message: EmailMessage, recipients: list[str]) -> bool:
        s = self.settings
        try:
            with _session(s) as smtp:
                refused = smtp.send_message(message, from_addr=s.sender, to_addrs=recipients)
        except (OSError, smtplib.SMTPException, ValueError) as exc:
            log.warning("notify: mail for job %s %s not sent via %s: %s", event.job_id,
                        event.kind.value, s.smtp, _describe(s, exc))
            return False
        if refused:
            log.warning("notify: %s refused %d of %d recipient(s) of the mail for job %s %s",
                        s.smtp, len(refused), len(recipients), event.job_id, event.kind.value)
        log.info("notify: sent the mail for job %s %s to %d recipient(s)", event.job_id,
                 event.kind.value, len(recipients) - len(refused))
        return True

    def _scrub(self, text: str) -> str:
        return _scrub(self.settings, text)


@contextlib.contextmanager
def _session(settings: EmailSettings) -> Iterator[smtplib.SMTP]:
    """A connection to the server, upgraded and logged in as the settings say."""
    with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout) as smtp:
        if settings.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.username:
            smtp.login(settings.username, settings.password or "")
        yield smtp


def check_smtp(settings: EmailSettings) -> str | None:
    """Connect, upgrade and log in as a mail would, and send nothing: the problem, or None."""
    try:
        with _session(settings) as smtp:
            code, answer = smtp.noop()
    except (OSError, smtplib.SMTPException, ValueError) as exc:
        return f"{settings.smtp}: {_describe(settings, exc)}"
    if code != 250:
        text = _scrub(settings, answer.decode(errors="replace"))
        return f"{settings.smtp}: NOOP answered {code} {_one_line(text, 200)}"
    return None


def _describe(settings: EmailSettings, exc: BaseException) -> str:
    text = str(exc) or "no details"
    if isinstance(exc, TimeoutError) or (
            isinstance(exc, smtplib.SMTPServerDisconnected) and "timed out" in text):
        text = f"no answer within {settings.timeout:g}s"
    return f"{type(exc).__name__}: {_scrub(settings, _one_line(text, 300))}"


def _scrub(settings: EmailSettings, text: str) -> str:
    password = settings.password
    return text.replace(password, "***") if password else text


def _unique(addresses: Iterable[str]) -> list[str]:
    """``addresses`` without duplicates (ignoring case), in order."""
    seen: set[str] = set()
    out: list[str] = []
    for address in addresses:
        key = address.strip().lower()
        if key and key not in seen:
            seen.add(key)
            out.append(address.strip())
    return out

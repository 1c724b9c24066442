"""Retrying what fails for a while: the one module that uses tenacity.

A call to a scheduler, a database or an SSH connection can fail for a moment and work a
second later. `retry_call` (or the `retrying` decorator) calls it again, under a named
`RetryPolicy`, on the exception types the caller names transient, waiting longer each
time (exponential backoff with jitter, capped), logging each retry at ``WARNING``, and
re-raising the last exception when the attempts are used up::

    job_id = retry_call(SCHEDULER, run_sbatch, script, on=(TransientError,), name="sbatch")

Tests make retries instant with `testing` / `set_testing` (no waiting, optionally fewer
attempts) and can record the waits a policy asks for with `set_sleep`.

`Backoff` is for the daemon loop: how long to wait after consecutive failed cycles.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from typing import Any, Final, ParamSpec, TypeVar

import attrs
import tenacity

__all__ = [
    "DATABASE",
    "SCHEDULER",
    "TRANSPORT",
    "Backoff",
    "RetryPolicy",
    "is_testing",
    "retry_call",
    "retrying",
    "set_sleep",
    "set_testing",
    "testing",
]

P = ParamSpec("P")
T = TypeVar("T")
ExceptionTypes = type[BaseException] | tuple[type[BaseException], ...]
"""One exception type, or a tuple of them, to retry on."""
SleepFunction = Callable[[float], object]
"""A function that waits the given number of seconds (`time.sleep`)."""

log = logging.getLogger(__name__)


def _non_negative(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{attribute.name} must be a finite number >= 0, not {value!r}")


@attrs.frozen
class RetryPolicy:
    """How often and how patiently to retry.

    The wait before retry ``n`` (``n = 1`` after the first failure) is
    ``initial_wait * multiplier ** (n - 1)``, lengthened by a random fraction of up to
    ``jitter`` so that many callers do not retry in step, and never more than ``max_wait``.

    Attributes:
        attempts: Calls in all, the first one included (``1``: no retry).
        initial_wait: Seconds before the first retry.
        max_wait: The longest wait between two attempts, in seconds.
        multiplier: Each wait is this many times the previous one.
        jitter: Up to this fraction of a wait is added at random (``0.1``: up to 10 %).
    """

    attempts: int = attrs.field(validator=attrs.validators.ge(1))
    initial_wait: float = attrs.field(validator=_non_negative)
    max_wait: float = attrs.field(validator=_non_negative)
    multiplier: float = attrs.field(default=2.0, validator=attrs.validators.ge(1.0))
    jitter: float = attrs.field(
        default=0.1, validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)]
    )

    def base_wait(self, retry: int) -> float:
        """The wait before a retry, without jitter.

        Args:
            retry: Which retry: ``1`` after the first failed attempt.

        Returns:
            ``min(max_wait, initial_wait * multiplier ** (retry - 1))`` seconds.
        """
        try:
            wait = self.initial_wait * self.multiplier ** max(retry - 1, 0)
        except OverflowError:
            return self.max_wait
        return min(self.max_wait, wait)


SCHEDULER: Final = RetryPolicy(attempts=4, initial_wait=1.0, max_wait=30.0)
"""For scheduler commands (``sbatch``, ``sacct``, ``scancel``): 4 attempts, 1 s → 30 s."""

DATABASE: Final = RetryPolicy(attempts=5, initial_wait=0.5, max_wait=20.0)
"""For database statements on a lost connection: 5 attempts, 0.5 s → 20 s."""

TRANSPORT: Final = RetryPolicy(attempts=4, initial_wait=1.0, max_wait=30.0)
"""For SSH connections and file copies: 4 attempts, 1 s → 30 s."""


@attrs.define
class _Config:
    testing: bool = False
    testing_attempts: int | None = None
    sleep: SleepFunction = time.sleep


_CONFIG: Final = _Config()


def set_testing(enabled: bool, *, attempts: int | None = None) -> None:
    """Switch testing mode on or off for the whole process.

    In testing mode retries happen without waiting.

    Args:
        enabled: Whether testing mode is on.
        attempts: In testing mode, the number of attempts every policy makes instead of
            its own (``1``: no retries); ``None`` keeps each policy's.

    Raises:
        ValueError: ``attempts`` is less than 1.
    """
    if attempts is not None and attempts < 1:
        raise ValueError(f"attempts must be >= 1, not {attempts}")
    _CONFIG.testing = enabled
    _CONFIG.testing_attempts = attempts


def is_testing() -> bool:
    """Whether testing mode is on.

    Returns:
        ``True`` in testing mode.
    """
    return _CONFIG.testing


@contextlib.contextmanager
def testing(enabled: bool = True, *, attempts: int | None = None) -> Iterator[None]:  # noqa: PT028
    """Testing mode for the duration of a ``with`` block, restoring the previous mode after.

    Args:
        enabled: Whether testing mode is on inside the block.
        attempts: As for `set_testing`.

    Yields:
        Nothing.

    Raises:
        ValueError: ``attempts`` is less than 1.
    """
    previous = (_CONFIG.testing, _CONFIG.testing_attempts)
    set_testing(enabled, attempts=attempts)
    try:
        yield
    finally:
        _CONFIG.testing, _CONFIG.testing_attempts = previous


def set_sleep(sleep: SleepFunction | None) -> SleepFunction:
    """Replace the function that waits between attempts, e.g. to record the waits in a test.

    Args:
        sleep: Called with the number of seconds to wait; ``None`` restores `time.sleep`.

    Returns:
        The function used until now, to restore it afterwards.
    """
    previous = _CONFIG.sleep
    _CONFIG.sleep = time.sleep if sleep is None else sleep
    return previous


def _sleep(seconds: float) -> None:
    if seconds > 0:
        _CONFIG.sleep(seconds)


def _wait(policy: RetryPolicy) -> Callable[[tenacity.RetryCallState], float]:
    def wait(state: tenacity.RetryCallState) -> float:
        if _CONFIG.testing:
            return 0.0
        base = policy.base_wait(state.attempt_number)
        jitter = random.uniform(0.0, policy.jitter)  # noqa: S311 - spreading retries, not security
        return min(policy.max_wait, base * (1.0 + jitter))

    return wait


def _log_retry(name: str, attempts: int) -> Callable[[tenacity.RetryCallState], None]:
    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "%s failed (attempt %d of %d): %s: %s; retrying in %.2fs",
            name,
            state.attempt_number,
            attempts,
            type(error).__name__,
            error,
            wait,
            extra={"retry_name": name, "retry_attempt": state.attempt_number, "retry_wait": wait},
        )

    return before_sleep


def _retrying(policy: RetryPolicy, on: ExceptionTypes, name: str) -> tenacity.Retrying:
    if isinstance(on, tuple) and not on:
        raise ValueError("on must name at least one exception type")
    attempts = policy.attempts
    if _CONFIG.testing and _CONFIG.testing_attempts is not None:
        attempts = _CONFIG.testing_attempts
    return tenacity.Retrying(
        sleep=_sleep,
        stop=tenacity.stop_after_attempt(attempts),
        wait=_wait(policy),
        retry=tenacity.retry_if_exception_type(on),
        before_sleep=_log_retry(name, attempts),
        reraise=True,
    )


def _name_of(fn: Callable[..., object]) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def retry_call(
    policy: RetryPolicy,
    fn: Callable[..., T],
    /,
    *args: Any,
    on: ExceptionTypes,
    name: str | None = None,
    **kwargs: Any,
) -> T:
    """Call ``fn(*args, **kwargs)``, retrying under ``policy`` while it raises ``on``.

    Each retry is logged at ``WARNING`` with ``name``, the attempt number, the exception
    and the wait. Exceptions not in ``on`` propagate at once.

    Args:
        policy: How often and how long to wait (`SCHEDULER`, `DATABASE`, `TRANSPORT`…).
        fn: What to call. It may not take keyword arguments named ``on`` or ``name``.
        *args: Positional arguments for ``fn``.
        on: The exception type(s) meaning "try again later".
        name: What the log calls the operation (``"sbatch"``); default ``fn``'s name.
        **kwargs: Keyword arguments for ``fn``.

    Returns:
        What ``fn`` returned.

    Raises:
        BaseException: The last exception of type ``on`` when the attempts are used up,
            or any other exception ``fn`` raised, unchanged.
        ValueError: ``on`` is an empty tuple.
    """
    retrier = _retrying(policy, on, name or _name_of(fn))
    return retrier(fn, *args, **kwargs)


def retrying(
    policy: RetryPolicy,
    *,
    on: ExceptionTypes,
    name: str | None = None,
) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Decorate a function so that every call goes through `retry_call`.

    Args:
        policy: As for `retry_call`.
        on: As for `retry_call`.
        name: As for `retry_call`; default the decorated function's name.

    Returns:
        The decorator.
    """

    def decorate(fn: Callable[P, T]) -> Callable[P, T]:
        label = name or _name_of(fn)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            retrier = _retrying(policy, on, label)
            return retrier(fn, *args, **kwargs)

        return wrapper

    return decorate


@attrs.define
class Backoff:
    """How long the daemon loop waits after consecutive failed cycles.

    Pure bookkeeping: it never sleeps and is not affected by testing mode. The first
    failure gives ``initial`` seconds, each further one ``multiplier`` times more, capped
    at ``maximum``; a success starts over.

    Attributes:
        initial: The delay after the first failure, in seconds (> 0).
        maximum: The longest delay, in seconds (>= ``initial``).
        multiplier: The growth from one failure to the next (>= 1).
    """

    initial: float = attrs.field(validator=attrs.validators.gt(0.0))
    maximum: float = attrs.field()
    multiplier: float = attrs.field(default=2.0, validator=attrs.validators.ge(1.0))
    _failures: int = attrs.field(default=0, init=False)
    _next: float = attrs.field(default=0.0, init=False)

    @maximum.validator
    def _check_maximum(self, _attribute: attrs.Attribute[float], value: float) -> None:
        if value < self.initial:
            raise ValueError(f"maximum ({value}) must be >= initial ({self.initial})")

    def __attrs_post_init__(self) -> None:
        """Start with no failure."""
        self._next = self.initial

    @property
    def failures(self) -> int:
        """Consecutive failures since the last success."""
        return self._failures

    def failure(self) -> float:
        """Record a failed cycle.

        Returns:
            Seconds to wait before the next cycle.
        """
        delay = self._next
        self._failures += 1
        self._next = min(self.maximum, self._next * self.multiplier)
        return delay

    def success(self) -> None:
        """Record a successful cycle: the next failure waits ``initial`` again."""
        self._failures = 0
        self._next = self.initial

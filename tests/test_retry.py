"""Tests of `efi_job_manager.retry`: policies, the logging hook, testing mode, Backoff."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest

from efi_job_manager import retry
from efi_job_manager.retry import Backoff, RetryPolicy, retry_call, retrying


class Flaky(Exception):
    """A failure worth retrying."""


class Broken(Exception):
    """A failure not worth retrying."""


@pytest.fixture(autouse=True)
def _restore_retry_state() -> Iterator[None]:
    """Every test starts out of testing mode with the real sleep, and leaves it so."""
    previous_sleep = retry.set_sleep(None)
    with retry.testing(False):
        yield
    retry.set_sleep(previous_sleep)


@pytest.fixture
def waits() -> list[float]:
    """Record the waits requested instead of sleeping."""
    recorded: list[float] = []
    retry.set_sleep(recorded.append)
    return recorded


def failing(times: int, error: type[Exception] = Flaky) -> tuple[list[int], Callable[[str], str]]:
    calls: list[int] = []

    def fn(value: str) -> str:
        calls.append(len(calls) + 1)
        if len(calls) <= times:
            raise error(f"failure {len(calls)}")
        return value

    return calls, fn


FAST = RetryPolicy(attempts=4, initial_wait=1.0, max_wait=5.0, jitter=0.0)


def test_retries_then_succeeds(waits: list[float]) -> None:
    """A listed exception is retried until the call succeeds."""
    calls, fn = failing(2)
    assert retry_call(FAST, fn, "done", on=Flaky, name="sbatch") == "done"
    assert calls == [1, 2, 3]
    assert len(waits) == 2


def test_gives_up_and_reraises_the_last_error(waits: list[float]) -> None:
    """After the policy's attempts the last exception itself is raised."""
    calls, fn = failing(10)
    with pytest.raises(Flaky, match="failure 4"):
        retry_call(FAST, fn, "x", on=(Flaky, OSError))
    assert calls == [1, 2, 3, 4]


def test_does_not_retry_unlisted_exceptions(waits: list[float]) -> None:
    """An exception not in ``on`` propagates at once."""
    calls, fn = failing(1, Broken)
    with pytest.raises(Broken):
        retry_call(FAST, fn, "x", on=Flaky)
    assert calls == [1]
    assert waits == []


def test_logs_each_retry_without_sleeping_in_testing_mode(
    waits: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    """Testing mode: one WARNING per retry naming the operation, and no wait at all."""
    _, fn = failing(3)
    caplog.set_level(logging.WARNING, logger="efi_job_manager.retry")
    with retry.testing():
        assert retry.is_testing()
        assert retry_call(retry.SCHEDULER, fn, "ok", on=Flaky, name="sbatch") == "ok"
    assert waits == []
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 3
    assert messages[0] == "sbatch failed (attempt 1 of 4): Flaky: failure 1; retrying in 0.00s"
    assert all(record.levelno == logging.WARNING for record in caplog.records)
    assert [getattr(record, "retry_attempt", None) for record in caplog.records] == [1, 2, 3]


def test_waits_grow_exponentially_and_are_capped(waits: list[float]) -> None:
    """Waits double from initial_wait and stop growing at max_wait."""
    policy = RetryPolicy(attempts=6, initial_wait=1.0, max_wait=5.0, jitter=0.0)
    _, fn = failing(10)
    with pytest.raises(Flaky):
        retry_call(policy, fn, "x", on=Flaky)
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_jitter_lengthens_waits_within_bounds(waits: list[float]) -> None:
    """Jitter adds at most its fraction of each wait, and never passes max_wait."""
    policy = RetryPolicy(attempts=5, initial_wait=1.0, max_wait=6.0, multiplier=2.0, jitter=0.5)
    for _ in range(20):
        _, fn = failing(10)
        with pytest.raises(Flaky):
            retry_call(policy, fn, "x", on=Flaky)
    for index, wait in enumerate(waits):
        base = policy.base_wait(index % 4 + 1)
        assert base <= wait <= min(6.0, base * 1.5)


def test_testing_mode_can_limit_attempts(waits: list[float]) -> None:
    """testing(attempts=1) turns retries off entirely."""
    calls, fn = failing(1)
    with retry.testing(attempts=1), pytest.raises(Flaky):
        retry_call(retry.DATABASE, fn, "x", on=Flaky)
    assert calls == [1]


def test_testing_context_restores_the_previous_mode() -> None:
    """Leaving testing() restores whatever mode was set before."""
    retry.set_testing(True, attempts=2)
    with retry.testing(False):
        assert not retry.is_testing()
    assert retry.is_testing()
    retry.set_testing(False)
    assert not retry.is_testing()


def test_decorator_form(waits: list[float]) -> None:
    """@retrying retries the decorated function the same way."""
    calls: list[int] = []

    @retrying(FAST, on=Flaky, name="sacct")
    def query(job: str) -> str:
        calls.append(1)
        if len(calls) < 3:
            raise Flaky("slurmdbd down")
        return job.upper()

    assert query("efi-1") == "EFI-1"
    assert len(calls) == 3
    assert query.__name__ == "query"


def test_named_policies() -> None:
    """The named policies have the documented shapes."""
    assert (retry.SCHEDULER.attempts, retry.SCHEDULER.initial_wait) == (4, 1.0)
    assert retry.SCHEDULER.max_wait == 30.0
    assert (retry.DATABASE.attempts, retry.DATABASE.initial_wait) == (5, 0.5)
    assert retry.DATABASE.max_wait == 20.0
    assert (retry.TRANSPORT.attempts, retry.TRANSPORT.max_wait) == (4, 30.0)


def test_policy_refuses_nonsense() -> None:
    """A policy needs at least one attempt and a jitter fraction between 0 and 1."""
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0, initial_wait=1.0, max_wait=2.0)
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(attempts=1, initial_wait=1.0, max_wait=2.0, jitter=2.0)


def test_policy_base_wait_does_not_overflow() -> None:
    """A very late retry still gets max_wait rather than an overflow."""
    assert RetryPolicy(attempts=5000, initial_wait=1.0, max_wait=9.0).base_wait(4000) == 9.0


def test_backoff_doubles_caps_and_resets() -> None:
    """Backoff doubles per failure up to the maximum and starts over after a success."""
    backoff = Backoff(initial=1.0, maximum=10.0)
    assert [backoff.failure() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff.failures == 6
    backoff.success()
    assert backoff.failures == 0
    assert backoff.failure() == 1.0


def test_backoff_refuses_a_maximum_below_initial() -> None:
    """maximum must not be less than initial."""
    with pytest.raises(ValueError, match="maximum"):
        Backoff(initial=5.0, maximum=1.0)

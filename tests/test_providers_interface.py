"""The provider interface's retry helper: transient errors are retried with growing,
capped waits; permanent ones and the last transient one are raised."""
import asyncio

import pytest

from quartermaster.providers.interface import (
    InsufficientCapacity, NotFound, Throttled, backoff_delays, retry_transient)


def test_backoff_doubles_up_to_the_cap_within_its_jitter():
    assert list(backoff_delays(6, base=1, cap=5, jitter=lambda: 1.0)) == [1, 2, 4, 5, 5]
    assert list(backoff_delays(3, base=1, cap=5, jitter=lambda: 0.0)) == [0.5, 1]


def run(failures, attempts=4):
    """retry_transient over a call that raises `failures` in turn, then returns "done"."""
    left, calls, waits = list(failures), [], []

    async def call():
        calls.append(1)
        if left:
            raise left.pop(0)
        return "done"

    async def sleep(seconds):
        waits.append(seconds)

    result = asyncio.run(retry_transient(call, attempts, delays=lambda n: backoff_delays(n, 1, 8, lambda: 1.0),
                                         sleep=sleep))
    return result, len(calls), waits


def test_transient_errors_are_retried_and_a_requested_wait_is_honoured():
    assert run([Throttled("slow down"), InsufficientCapacity("no spot", retry_after=30)]) == ("done", 3, [1, 30])


def test_a_permanent_error_is_raised_at_once():
    with pytest.raises(NotFound):
        run([NotFound("gone")])


def test_the_last_transient_error_is_raised_when_the_attempts_run_out():
    with pytest.raises(Throttled, match="4"):
        run([Throttled(str(k)) for k in range(1, 6)], attempts=4)

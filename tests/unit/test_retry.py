"""Backoff policies: waits that double with jitter and a cap, results and errors retried,
the last outcome kept, a stop between attempts honoured at once, and tenacity imported only
by a call that retries."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest

from fleet.retry import Backoff


def test_waits_double_up_to_the_cap_with_jitter_within_bounds() -> None:
    policy = Backoff(attempts=8, initial=5.0, maximum=30.0, jitter=0.5)
    rng = random.Random(3)
    for retry, base in [(1, 5.0), (2, 10.0), (3, 20.0), (4, 30.0), (7, 30.0)]:
        waits = [policy.wait(retry, rng) for _ in range(200)]
        assert min(waits) >= base and max(waits) <= base * 1.5
        assert max(waits) - min(waits) > base * 0.3  # jittered, not fixed
    assert Backoff(3, 5.0).describe() == "2 retries, backoff from 5s (doubling, with jitter)"
    assert Backoff(1, 5.0).describe() == "no retry"


def test_a_bad_result_is_retried_until_good_and_the_waits_are_those_of_the_policy() -> None:
    slept: list[float] = []
    results = iter([1, 1, 0, 9])
    got = Backoff(attempts=5, initial=2.0, jitter=0.0).call(
        lambda: next(results), pause=lambda s: bool(slept.append(s)), on_result=lambda r: r != 0
    )
    assert got == 0 and slept == [2.0, 4.0]


def test_when_attempts_run_out_the_last_result_or_error_comes_back() -> None:
    calls: list[int] = []

    def failing() -> int:
        calls.append(1)
        return 7

    policy = Backoff(attempts=3, initial=0.0)
    assert policy.call(failing, pause=lambda s: False, on_result=lambda r: r != 0) == 7
    assert len(calls) == 3

    def boom() -> int:
        raise TimeoutError(f"attempt {len(calls)}")

    calls.clear()
    with pytest.raises(TimeoutError):
        policy.call(
            lambda: (calls.append(1), boom())[1], pause=lambda s: False, on_errors=(TimeoutError,)
        )
    assert len(calls) == 3
    with pytest.raises(KeyError):  # not a retried error: raised at once
        policy.call(lambda: {}["x"], pause=lambda s: False, on_errors=(TimeoutError,))


def test_a_stop_during_a_wait_ends_the_retries_with_the_last_outcome() -> None:
    attempts: list[int] = []
    seen: list[tuple[int, float]] = []

    def attempt() -> int:
        attempts.append(1)
        return 5

    got = Backoff(attempts=10, initial=1.0, jitter=0.0).call(
        attempt,
        pause=lambda s: len(attempts) >= 2,  # the operator asks to stop during the 2nd wait
        on_result=lambda r: r != 0,
        before_retry=lambda state, wait: seen.append((state.attempt_number, wait)),
    )
    assert got == 5 and len(attempts) == 2
    assert seen == [(1, 1.0), (2, 2.0)]


def test_a_rollout_imports_tenacity_only_when_a_retry_waits() -> None:
    """tenacity pulls asyncio in: the engine and the ssh stage import it on first need."""
    code = (
        "import sys, fleet.engine.rollout, fleet.stages.ssh, fleet.retry;"
        "print('tenacity' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"

"""Retry policies on tenacity: exponential backoff with jitter, bounded, interruptible.

A :class:`Backoff` says how many attempts and how long to wait between them: the first wait
is ``initial`` seconds, each next one doubles up to ``maximum``, and up to ``jitter`` of it
is added at random so that hosts that failed together do not retry together. Its
:meth:`Backoff.call` runs an attempt under tenacity's ``Retrying`` (imported by the first
call) until it
succeeds, the attempts are spent, or a stop is asked (``pause`` returns True: a halt, Ctrl-C),
in which case the last outcome is returned (or raised) at once.

Two kinds of retries use it: a step's own (``retries``/``retry_delay`` in a plan: a failing
apply or verify is run again, see :mod:`fleet.stages.ssh`) and a host's infrastructure retries
(``rollout.infra_retries``: an unreachable host or an OVH error, see :mod:`fleet.engine.pipeline`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from tenacity import RetryCallState

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """``attempts`` in all (1: no retry); waits from ``initial`` doubling to ``maximum``, each
    plus up to ``jitter`` times itself at random."""

    attempts: int
    initial: float
    maximum: float = 300.0
    jitter: float = 0.5

    def wait(self, retry: int, rng: random.Random) -> float:
        """Seconds before retry number ``retry`` (1 for the first)."""
        base = min(self.maximum, self.initial * 2.0 ** max(0, retry - 1))
        return base + rng.uniform(0.0, self.jitter * base)

    def describe(self) -> str:
        """``2 retries, backoff from 5s (doubling, with jitter)`` for plans and messages."""
        retries = self.attempts - 1
        if retries <= 0:
            return "no retry"
        word = "retry" if retries == 1 else "retries"
        return f"{retries} {word}, backoff from {self.initial:g}s (doubling, with jitter)"

    def call(
        self,
        attempt: Callable[[], T],
        *,
        pause: Callable[[float], bool],
        on_result: Callable[[T], bool] | None = None,
        on_errors: tuple[type[BaseException], ...] = (),
        before_retry: Callable[[RetryCallState, float], None] | None = None,
        rng: random.Random | None = None,
    ) -> T:
        """Run ``attempt`` under this policy (a tenacity ``Retrying``): again while
        ``on_result(result)`` is true, or when it raises one of ``on_errors``.
        ``pause(seconds)`` waits and returns True when a stop was asked: no further attempt
        then. When the retries end without success, the last result is returned, or the
        last error raised."""
        chooser = rng or random.Random()
        # tenacity is imported here, by the first retrying call: it pulls asyncio in, start-up
        # time that a run whose steps need no retry should not pay.
        from tenacity import (
            Retrying,
            retry_if_exception_type,
            retry_if_result,
            retry_never,
            stop_after_attempt,
        )

        last: list[Any] = []  # the outcome (a tenacity Future) of the attempt before a wait

        def sleep(seconds: float) -> None:
            if pause(seconds):
                raise _Interrupted

        def wait(state: RetryCallState) -> float:
            return self.wait(state.attempt_number, chooser)

        def before_sleep(state: RetryCallState) -> None:
            last[:] = [state.outcome]
            if before_retry is not None:
                before_retry(state, state.upcoming_sleep)

        retry: Any = retry_if_exception_type(on_errors) if on_errors else retry_never
        if on_result is not None:
            retry = retry | retry_if_result(on_result)
        retrying = Retrying(
            stop=stop_after_attempt(max(1, self.attempts)),
            wait=wait,
            sleep=sleep,
            retry=retry,
            before_sleep=before_sleep,
            reraise=True,
            retry_error_callback=_last_outcome,
        )
        try:
            return retrying(attempt)
        except _Interrupted:
            return last[0].result()  # type: ignore[no-any-return]


class _Interrupted(Exception):
    """A stop was asked during a wait between attempts."""


def _last_outcome(state: RetryCallState) -> Any:
    """When retries end: the last attempt's result, or its error raised."""
    assert state.outcome is not None
    return state.outcome.result()

"""The garbage collector during rollouts: tuned while one runs, restored by the last to end,
whatever the order they end in and however they end."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from fleet.engine.collector import YOUNG, rollout_collector


@pytest.fixture(autouse=True)
def untuned() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    yield before
    gc.set_threshold(*before)
    gc.unfreeze()


def test_tuned_while_a_rollout_runs_then_restored(untuned: tuple[int, int, int]) -> None:
    with rollout_collector():
        assert gc.get_threshold() == (YOUNG, *untuned[1:])
        assert gc.get_freeze_count() > 0  # start-up's objects are no longer walked
    assert gc.get_threshold() == untuned
    assert gc.get_freeze_count() == 0


def test_restored_when_the_rollout_raises(untuned: tuple[int, int, int]) -> None:
    with pytest.raises(RuntimeError), rollout_collector():
        raise RuntimeError("a rollout that crashed")
    assert gc.get_threshold() == untuned
    assert gc.get_freeze_count() == 0


def test_the_last_of_overlapping_rollouts_restores_it(untuned: tuple[int, int, int]) -> None:
    """Two rollouts in one process (threads), the first started ending first: the collector
    stays tuned until the second ends, then is as it was before either."""
    first_in, first_out, second_in = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with rollout_collector():
            first_in.set()
            second_in.wait(10)
        first_out.set()

    thread = threading.Thread(target=first)
    thread.start()
    assert first_in.wait(10)
    with rollout_collector():
        second_in.set()
        assert first_out.wait(10)
        assert gc.get_threshold()[0] == YOUNG  # the first ended; this one still runs
    thread.join(10)
    assert gc.get_threshold() == untuned
    assert gc.get_freeze_count() == 0

"""The switch interval scaled with a rollout's pool of threads."""

from __future__ import annotations

import sys

import pytest

from fleet.engine.gil import MAX_INTERVAL, interval_for, switch_interval_for


def test_small_pools_keep_the_interpreter_default() -> None:
    assert interval_for(1) == interval_for(100) == sys.getswitchinterval()


def test_the_interval_grows_with_the_pool_up_to_its_bound() -> None:
    assert interval_for(400) == 0.02
    assert interval_for(2000) == MAX_INTERVAL
    assert interval_for(100_000) == MAX_INTERVAL


def test_the_previous_interval_comes_back_even_after_an_error() -> None:
    before = sys.getswitchinterval()
    try:
        with switch_interval_for(2000) as used:
            assert sys.getswitchinterval() == used == pytest.approx(MAX_INTERVAL)
            raise KeyError("boom")
    except KeyError:
        pass
    assert sys.getswitchinterval() == before


def test_rollouts_ending_out_of_order_restore_the_interval_they_found() -> None:
    before = sys.getswitchinterval()
    big = switch_interval_for(2000)
    small = switch_interval_for(400)
    assert big.__enter__() == pytest.approx(MAX_INTERVAL)
    assert small.__enter__() == pytest.approx(MAX_INTERVAL)  # the largest pool running wins
    big.__exit__(None, None, None)
    assert sys.getswitchinterval() == pytest.approx(0.02)  # the one still running
    small.__exit__(None, None, None)
    assert sys.getswitchinterval() == before

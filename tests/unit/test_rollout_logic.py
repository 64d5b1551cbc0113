"""The rollout's pure parts: the failure budget, option validation, exit codes, resumption."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from fleet.engine.pipeline import HostResult
from fleet.engine.rollout import Budget, Resumption, RolloutOptions, RolloutResult, read_resumption
from fleet.errors import UsageError
from fleet.store.base import Event

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def ev(kind: str, host: str | None = None, **fields: Any) -> Event:
    return Event(run_id="r1", kind=kind, at=AT, host=host, **fields)


# --- budget -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failed", "started", "spent"),
    [(0, 10, False), (2, 2, False), (2, 100, False), (3, 100, True), (3, 3, True)],
)
def test_max_failures_is_more_than_n(failed: int, started: int, spent: bool) -> None:
    assert Budget(max_failures=2).spent(failed, started) is spent


def test_max_failures_zero_halts_on_the_first_failure() -> None:
    assert Budget(max_failures=0).spent(0, 5) is False
    assert Budget(max_failures=0).spent(1, 5) is True


@pytest.mark.parametrize(
    ("failed", "started", "spent"),
    [(1, 4, False), (2, 4, False), (3, 4, True), (1, 1, True), (0, 0, False), (5, 10, False)],
)
def test_ratio_is_over_started_hosts(failed: int, started: int, spent: bool) -> None:
    assert Budget(max_ratio=0.5).spent(failed, started) is spent


def test_ratio_zero_halts_on_any_failure() -> None:
    assert Budget(max_ratio=0.0).spent(0, 10) is False
    assert Budget(max_ratio=0.0).spent(1, 100) is True


def test_either_limit_spends_the_budget() -> None:
    budget = Budget(max_failures=5, max_ratio=0.1)
    assert budget.spent(2, 10) is True  # ratio 0.2 > 0.1
    assert budget.spent(6, 1000) is True  # count
    assert budget.spent(5, 100) is False


def test_no_limits_is_unlimited() -> None:
    budget = Budget()
    assert budget.spent(1000, 1000) is False
    assert budget.describe() == "unlimited"


def test_describe() -> None:
    assert Budget(max_failures=2).describe() == "at most 2 failed hosts"
    assert Budget(max_failures=1, max_ratio=0.25).describe() == (
        "at most 1 failed hosts and at most 25% of started hosts failed"
    )


# --- options ----------------------------------------------------------------------------------


def test_default_options_and_budget() -> None:
    options = RolloutOptions()
    assert options.budget == Budget(max_failures=0, max_ratio=None)
    assert options.to_dict()["batches"] == "1,100%"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batches": "0"}, "--batches"),
        ({"batches": ""}, "--batches"),
        ({"concurrency": 0}, "--concurrency"),
        ({"max_failures": -1}, "--max-failures"),
        ({"max_ratio": 1.5}, "--max-failure-ratio"),
        ({"max_ratio": -0.1}, "--max-failure-ratio"),
        ({"bake": -1.0}, "--bake"),
    ],
)
def test_invalid_options_are_usage_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        RolloutOptions(**kwargs)


def test_limits_at_their_bounds_are_valid() -> None:
    options = RolloutOptions(concurrency=1, max_failures=None, max_ratio=1.0, bake=0)
    assert options.budget == Budget(None, 1.0)
    assert RolloutOptions(max_ratio=0.0).budget.max_ratio == 0.0


# --- exit codes -------------------------------------------------------------------------------


def result(state: str, *outcomes: tuple[str, str | None]) -> RolloutResult:
    results = {f"h{i}": HostResult(f"h{i}", o, f) for i, (o, f) in enumerate(outcomes)}
    return RolloutResult("r1", state, None, results)


@pytest.mark.parametrize(
    ("res", "code"),
    [
        (result("done", ("ok", None)), 0),
        (result("failed", ("ok", None), ("failed", "payload")), 1),
        (result("halted", ("failed", "payload")), 2),
        (result("aborted"), 2),
        (result("done", ("ok", None), ("skipped", "lease")), 4),
        (result("failed", ("failed", "payload"), ("skipped", "lease")), 1),
    ],
)
def test_exit_code(res: RolloutResult, code: int) -> None:
    assert res.exit_code == code


# --- resumption -------------------------------------------------------------------------------


def step(kind: str, host: str, name: str, outcome: str | None = None, **data: Any) -> Event:
    return ev(kind, host, stage="s", step=name, outcome=outcome, data=data)


def test_read_resumption() -> None:
    events = [
        ev("run.start", data={"batches": [1, 2]}),
        ev("host.start", "a"),
        step("step.start", "a", "one"),
        step("step.end", "a", "one", "converged"),
        step("step.start", "a", "two"),
        step("step.end", "a", "two", "applied", mode="rescue"),
        ev("host.end", "a", outcome="ok"),
        ev("host.start", "b"),
        step("step.start", "b", "one"),
        step("step.end", "b", "one", "applied"),
        step("step.start", "b", "two"),  # interrupted: never ended
        ev("host.start", "c"),
        step("step.start", "c", "one"),
        step("step.end", "c", "one", "failed"),
        ev("host.end", "c", outcome="failed"),
    ]
    r = read_resumption(events)
    assert isinstance(r, Resumption)
    assert r.finished == frozenset({"a"})
    assert r.done_steps == {
        "a": frozenset({"s/one", "s/two"}),
        "b": frozenset({"s/one"}),
        "c": frozenset(),
    }
    assert r.modes == {"a": "rescue"}


def test_resumption_follows_the_last_outcome() -> None:
    events = [
        step("step.end", "a", "one", "applied"),
        step("step.start", "a", "one"),  # re-run after a resume, not finished yet
        step("step.end", "a", "two", "failed"),
        step("step.end", "a", "two", "applied"),  # a later attempt succeeded
        ev("host.end", "a", outcome="ok"),
        ev("host.start", "a"),  # started again: no longer finished
    ]
    r = read_resumption(events)
    assert r.done_steps == {"a": frozenset({"s/two"})}
    assert r.finished == frozenset()


def test_modes_take_the_last_step_with_a_mode() -> None:
    events = [
        step("step.end", "a", "boot", "applied", mode="rescue"),
        step("step.end", "a", "other", "applied"),
        step("step.end", "a", "back", "applied", mode="disk"),
        step("step.end", "b", "boot", "applied", mode="rescue"),
        ev("host.wait", "c", data={"mode": "rescue"}),  # only step.end carries the mode
    ]
    assert read_resumption(events).modes == {"a": "disk", "b": "rescue"}


def test_empty_journal() -> None:
    assert read_resumption([]) == Resumption(frozenset(), {}, {})

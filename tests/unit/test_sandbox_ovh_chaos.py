"""Chaos knobs of the fake OVH API: route patterns, budgets, rate limit, JSON settings."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import pytest

from fleet.sandbox.ovh_api import error_body, signature
from fleet.sandbox.ovh_chaos import (
    Chaos,
    ChaosConfigError,
    ChaosRule,
    Early404,
    TaskFailure,
    route_matches,
)


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def chaos(seed: int = 1) -> tuple[Chaos, Ticks]:
    ticks = Ticks()
    return Chaos(random.Random(seed), ticks), ticks


@pytest.mark.parametrize(
    ("pattern", "method", "path", "expected"),
    [
        ("*", "POST", "/dedicated/server/a/reboot", True),
        ("GET /dedicated/server/*/task/*", "GET", "/dedicated/server/a/task/5", True),
        ("GET /dedicated/server/*/task/*", "POST", "/dedicated/server/a/task/5", False),
        ("GET /dedicated/server/*/task/*", "GET", "/dedicated/server/a/task/5/cancel", False),
        ("GET /dedicated/server/*/task/*", "GET", "/dedicated/server/a/task", False),
        ("* /dedicated/server/**", "PUT", "/dedicated/server/a", True),
        ("POST /**", "POST", "/dedicated/server/a/reinstall", True),
        ("/dedicated/server", "GET", "/dedicated/server", True),
        ("get /dedicated/server/ns1*", "GET", "/dedicated/server/ns12.eu", True),
        ("GET /dedicated/server/ns1*", "GET", "/dedicated/server/ns2.eu", False),
    ],
)
def test_route_patterns(pattern: str, method: str, path: str, expected: bool) -> None:
    assert route_matches(pattern, method, path) is expected


def test_count_limits_how_often_a_rule_fires_and_latency_adds_up() -> None:
    knobs, _ = chaos()
    knobs.add_rule(ChaosRule(kind="latency", seconds=0.25))
    knobs.add_rule(ChaosRule(kind="latency", route="GET /a", seconds=0.5))
    knobs.add_rule(ChaosRule(kind="500", route="GET /a", count=2))
    results = [knobs.for_request("GET", "/a") for _ in range(3)]
    assert [r.latency for r in results] == [0.75, 0.75, 0.75]
    assert [r.failure.kind if r.failure else None for r in results] == ["500", "500", None]
    assert knobs.for_request("GET", "/b").latency == 0.25
    assert knobs.snapshot()["rules"][2]["fired"] == 2


def test_probability_is_drawn_from_the_seed() -> None:
    def draws(seed: int) -> list[bool]:
        knobs, _ = chaos(seed)
        knobs.add_rule(ChaosRule(kind="502", probability=0.3))
        return [knobs.for_request("GET", "/x").failure is not None for _ in range(200)]

    assert draws(4) == draws(4)
    assert draws(4) != draws(5)
    assert 20 < sum(draws(4)) < 100


def test_rate_limit_is_per_consumer_key_over_a_sliding_minute() -> None:
    knobs, ticks = chaos()
    assert knobs.throttle("ck") is None  # no limit set
    knobs.set_rate_limit(3)
    for _ in range(3):
        assert knobs.throttle("ck") is None
        ticks.now += 10
    assert knobs.throttle("ck") == pytest.approx(30.0)
    assert knobs.throttle("other") is None
    ticks.now += 30
    assert knobs.throttle("ck") is None


def test_task_fates_and_hidden_gets_match_functions() -> None:
    knobs, _ = chaos()
    knobs.fail_tasks(TaskFailure(function="reinstallServer", status="customerError", count=1))
    knobs.hide_new_tasks(Early404(gets=3, function="hardReboot"))
    assert knobs.task_fate("hardReboot") == "done"
    assert knobs.task_fate("reinstallServer") == "customerError"
    assert knobs.task_fate("reinstallServer") == "done"
    assert (knobs.hidden_gets("hardReboot"), knobs.hidden_gets("reinstallServer")) == (3, 0)
    knobs.reset()
    assert knobs.hidden_gets("hardReboot") == 0


def test_json_settings_round_trip_through_the_snapshot() -> None:
    knobs, _ = chaos()
    settings = {
        "rules": [
            {"kind": "429", "route": "PUT /**", "retry_after": 3, "count": 1},
            {"kind": "error", "http_status": 501, "error_class": "Server::NotImplemented"},
            {"kind": "lost", "route": "POST /dedicated/server/*/reboot", "count": 1},
        ],
        "task_failures": [{"status": "ovhError", "probability": 0.5}],
        "early_404": {"gets": 2},
        "rate_limit_per_minute": 60,
    }
    knobs.configure(settings)
    copy, _ = chaos()
    copy.configure(knobs.snapshot())
    assert copy.snapshot() == knobs.snapshot()
    assert knobs.snapshot()["rules"][0]["retry_after"] == 3


@pytest.mark.parametrize(
    "settings",
    [
        {"rulez": []},
        {"rules": [{"kind": "418"}]},
        {"rules": [{"kind": "500", "colour": "red"}]},
        {"rules": [{"kind": "500", "probability": 2}]},
        {"rules": [{"kind": "500", "count": True}]},
        {"rules": ["500"]},
        {"rules": 5},
        {"task_failures": [{"status": "done"}]},
        {"early_404": [{"gets": -1}]},
        {"rate_limit_per_minute": 0},
        {"rate_limit_per_minute": "60"},
        {"rules": [{"kind": "error"}]},  # an error rule needs its HTTP status
        {"rules": [{"kind": "error", "http_status": 302}]},
        {"rules": [{"kind": "error", "http_status": "403"}]},
        {"rules": [{"kind": "error", "http_status": 403, "message": 5}]},
        {"rules": [{"kind": "lost", "route": ["POST /**"]}]},
    ],
)
def test_bad_json_settings_are_refused(settings: dict[str, Any]) -> None:
    knobs, _ = chaos()
    with pytest.raises(ChaosConfigError):
        knobs.configure(settings)


def test_error_body_shapes() -> None:
    assert error_body("class", 404, "gone") == {
        "class": "Client::NotFound",
        "message": "gone",
        "details": {},
    }
    assert error_body("class", 409, "busy", "Client::Conflict::X")["class"] == "Client::Conflict::X"
    assert error_body("legacy", 429, "slow") == {
        "errorCode": "TOO_MANY_REQUESTS",
        "httpCode": "429 Too Many Requests",
        "message": "slow",
    }
    assert error_body("message", 500, "boom") == {"message": "boom"}


def test_signature_upper_cases_the_method_and_covers_every_part() -> None:
    parts = ["secret", "consumer", "GET", "https://eu.api.ovh.com/1.0/me", "", "1366560945"]
    expected = "$1$" + hashlib.sha1("+".join(parts).encode()).hexdigest()
    assert signature("secret", "consumer", "get", parts[3], "", parts[5]) == expected
    for index, changed in [(0, "other"), (1, "ck2"), (3, parts[3] + "?a=1"), (4, "{}"), (5, "1")]:
        varied = [*parts]
        varied[index] = changed
        assert signature(*varied) != expected

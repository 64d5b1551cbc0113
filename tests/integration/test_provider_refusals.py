"""OVH refusing for good: the host fails once, as a payload failure, with OVH's own words.

A 404 on the server or its boot, a 403 "not supported for this server", a 501 are answered by
the sandbox's fake API over real HTTP (chaos ``error`` rules, in each of OVH's error body
shapes); a real rollout runs the plan's rescue stage against them. The rule's own counter
proves the request was sent once (no retry), the journal that no infrastructure retry ran.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import ovh.exceptions
import pytest

from fleet.errors import ProviderAuthError, ProviderNotFound, ProviderRefused
from fleet.sandbox.ovh_api import Credentials, ErrorShape, FakeOvhApi
from fleet.sandbox.ovh_chaos import ChaosRule
from fleet.sandbox.sandbox import Sandbox
from tests.conftest import FleetCli
from tests.integration.test_provider_ovh import NS1, fake_api, make_client, make_provider
from tests.integration.test_rollout import events_of, last_run, write_plan

pytestmark = pytest.mark.integration

RESCUE = """
name: refusals
stages:
  - name: rescue
    kind: rescue
  - name: after
    steps:
      - name: never
        apply: "false"
"""
NOT_SUPPORTED = "This operation is not supported for this server"


@pytest.fixture
def api_chaos(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The sandbox; its chaos and error shape are restored whatever the test does."""
    try:
        yield sandbox
    finally:
        assert sandbox.api is not None
        sandbox.api.reset_chaos()


def service_of(sandbox: Sandbox, host: str) -> str:
    return next(s.service for s in sandbox.servers if s.name == host)


@pytest.mark.parametrize(
    ("host", "route", "status", "error_class", "message", "shape"),
    [
        (
            "srv-021",
            "POST /dedicated/server/{sn}/reboot",
            403,
            "Client::Forbidden",
            NOT_SUPPORTED,
            "class",
        ),
        ("srv-022", "POST /dedicated/server/{sn}/reboot", 403, None, NOT_SUPPORTED, "legacy"),
        (
            "srv-023",
            "PUT /dedicated/server/{sn}",
            501,
            "Server::NotImplemented",
            "Boot change is not implemented for this range",
            "message",
        ),
        (
            "srv-024",
            "GET /dedicated/server/{sn}/boot/*",
            404,
            "Client::NotFound",
            "The requested object (bootId = 1) does not exist",
            "class",
        ),
        (
            "srv-025",
            "GET /dedicated/server/{sn}",
            404,
            None,
            "The requested object (serviceName = gone) does not exist",
            "legacy",
        ),
    ],
)
def test_a_refusal_fails_the_host_once_as_payload_with_ovhs_message(
    api_chaos: Sandbox,
    fleet: FleetCli,
    tmp_path: Path,
    host: str,
    route: str,
    status: int,
    error_class: str | None,
    message: str,
    shape: ErrorShape,
) -> None:
    api = api_chaos.api
    assert api is not None
    api.set_error_shape(shape)
    rule = ChaosRule(
        kind="error",
        route=route.format(sn=service_of(api_chaos, host)),
        http_status=status,
        error_class=error_class,
        message=message,
    )
    api.chaos.add_rule(rule)
    plan = write_plan(tmp_path / "p.yaml", RESCUE)
    proc = fleet("rollout", str(plan), "--limit", host, "--max-failures", "1", timeout=120)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert rule.fired == 1  # asked once: neither the provider nor the pipeline retried it
    events = events_of(fleet, last_run(fleet)["id"])
    assert [e for e in events if e.kind == "host.retry"] == []
    (end,) = [e for e in events if e.kind == "host.end"]
    assert (end.host, end.outcome, end.data["failure"]) == (host, "failed", "payload")
    assert f"HTTP {status}" in (end.excerpt or "") and message in (end.excerpt or "")
    assert "query id EU." in (end.excerpt or "")
    assert not [e for e in events if e.kind == "step.start" and e.step == "never"]
    output = proc.stdout + proc.stderr
    assert "credentials" not in output and "Traceback" not in output


# --------------------------------------------------------------------------------------------
# The fake's error rules, and the provider on top of them


@pytest.fixture
def creds() -> Credentials:
    return Credentials.generate(random.Random(31))


@pytest.fixture
def fake(creds: Credentials) -> Iterator[FakeOvhApi]:
    with fake_api(creds, seed=4) as api:
        yield api


@pytest.mark.parametrize(
    ("shape", "keys"),
    [
        ("class", {"class": "Client::Forbidden", "message": NOT_SUPPORTED, "details": {}}),
        (
            "legacy",
            {"errorCode": "FORBIDDEN", "httpCode": "403 Forbidden", "message": NOT_SUPPORTED},
        ),
        ("message", {"message": NOT_SUPPORTED}),
    ],
)
def test_an_error_rule_answers_as_ovh_in_each_shape(
    fake: FakeOvhApi, creds: Credentials, shape: ErrorShape, keys: dict[str, object]
) -> None:
    fake.set_error_shape(shape)
    rule = ChaosRule(
        kind="error",
        route="POST /dedicated/server/*/reboot",
        http_status=403,
        error_class="Client::Forbidden",
        message=NOT_SUPPORTED,
        count=1,
    )
    fake.chaos.add_rule(rule)
    client = make_client(fake, creds)
    with pytest.raises(ovh.exceptions.APIError) as caught:
        client.post(f"/dedicated/server/{NS1}/reboot")
    response = caught.value.response
    assert (response.status_code, response.json()) == (403, keys)
    assert response.headers["X-Ovh-QueryId"].startswith("EU.")
    assert client.get(f"/dedicated/server/{NS1}/task") == []  # refused: nothing started
    assert client.post(f"/dedicated/server/{NS1}/reboot")["function"] == "hardReboot"


def test_a_lost_answer_carries_the_request_out(fake: FakeOvhApi, creds: Credentials) -> None:
    fake.chaos.add_rule(ChaosRule(kind="lost", route="POST /dedicated/server/*/reboot", count=1))
    client = make_client(fake, creds)
    with pytest.raises(ovh.exceptions.APIError) as caught:
        client.post(f"/dedicated/server/{NS1}/reboot")
    assert caught.value.response.status_code == 500
    assert len(client.get(f"/dedicated/server/{NS1}/task", function="hardReboot")) == 1


@pytest.mark.parametrize(
    ("route", "status", "message", "expected"),
    [
        ("POST /dedicated/server/*/reboot", 403, NOT_SUPPORTED, ProviderRefused),
        ("POST /dedicated/server/*/reboot", 501, "Not implemented", ProviderRefused),
        (
            "POST /dedicated/server/*/reboot",
            403,
            "This call has not been granted",
            ProviderAuthError,
        ),
        (
            "GET /dedicated/server/*/boot/*",
            404,
            "The requested object does not exist",
            ProviderNotFound,
        ),
    ],
)
def test_the_provider_asks_once_and_says_what_ovh_said(
    fake: FakeOvhApi,
    creds: Credentials,
    route: str,
    status: int,
    message: str,
    expected: type[Exception],
) -> None:
    rule = ChaosRule(kind="error", route=route, http_status=status, message=message)
    fake.chaos.add_rule(rule)
    provider = make_provider(fake, creds)
    with pytest.raises(expected) as caught:
        if route.startswith("POST"):
            provider.reboot(NS1)
        else:
            provider.rescue_boot(NS1)
    assert rule.fired == 1
    error = caught.value
    assert message in str(error) and "query id EU." in str(error)
    hint = getattr(error, "hint", "") or ""
    assert ("consumer key" in hint) is (expected is ProviderAuthError)

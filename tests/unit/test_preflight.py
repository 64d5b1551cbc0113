"""Preflight's checks with their inputs faked: names looked up at once within a bound, keys,
the provider's one call, windows, and a plan that does not render stopping the rest."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from fleet.errors import ConfigError, PreflightFailed, ProviderAuthError
from fleet.inventory import Host
from fleet.plan import parse_plan
from fleet.preflight import Inputs, check_addresses, run_preflight

RESCUE = {"name": "r", "stages": [{"name": "rescue", "kind": "rescue"}]}


def hosts(*addresses: str) -> list[Host]:
    return [
        Host(name=f"h{i}", address=a, service_name=f"ns{i}.example.eu")
        for i, a in enumerate(addresses)
    ]


class Servers:
    def __init__(self, names: list[str] | None = None, error: Exception | None = None) -> None:
        self.names, self.error, self.calls = names or [], error, 0

    def list_servers(self) -> list[str]:
        self.calls += 1
        if self.error:
            raise self.error
        return self.names


def test_names_resolve_once_each_in_parallel_and_a_silent_resolver_is_a_finding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("fleet.preflight.RESOLVE_TIMEOUT", 0.2)
    asked: list[str] = []
    hang = threading.Event()

    def resolve(name: str) -> object:
        asked.append(name)
        if name == "gone.example":
            raise OSError(-2, "Name or service not known")
        if name == "slow.example":
            hang.wait(5)
        return object()

    check = check_addresses(
        hosts("10.0.0.1", "ok.example", "ok.example", "gone.example", "slow.example", "a b"),
        resolve,
    )
    hang.set()
    assert sorted(asked) == ["gone.example", "ok.example", "slow.example"]  # not "a b"
    assert check.problems == [
        "h5: address 'a b' is no host name or IP",
        "h3: address gone.example does not resolve (Name or service not known)",
        "h4: address slow.example does not resolve (no answer from the resolver within 0.2s)",
    ]


def test_the_provider_is_called_once_and_every_service_must_be_on_the_account() -> None:
    plan = parse_plan(RESCUE, "r.yaml")
    servers = Servers(["ns0.example.eu"])
    inputs = Inputs(credentials=lambda h: None, rescue_public_key=None, provider=lambda: servers)
    report = run_preflight(plan, hosts("10.0.0.1", "10.0.0.2"), inputs)
    assert servers.calls == 1
    problems = [p for c in report.checks for p in c.problems]
    assert problems == [
        "rescue stages need rescue.ssh_public_key (the key OVH's rescue accepts)",
        "h1: OVH service ns1.example.eu is not on this account",
    ]
    with pytest.raises(PreflightFailed, match="and 1 more problem") as caught:
        report.raise_for_problems()
    assert caught.value.exit_code == 3


def test_credentials_refused_and_keys_missing_are_one_line_each(tmp_path: Any) -> None:
    plan = parse_plan({"name": "s", "stages": [{"name": "s", "steps": ["true"]}]}, "s.yaml")

    def credentials(host: Host) -> None:
        raise ConfigError(f"{host.name}: cannot load SSH key /k: [Errno 2] No such file")

    inputs = Inputs(credentials=credentials, provider=lambda: Servers(error=AssertionError()))
    report = run_preflight(plan, hosts("10.0.0.1", "10.0.0.2", "10.0.0.3"), inputs)
    keys = next(c for c in report.checks if c.name == "SSH keys")
    assert keys.problems == [
        "h0 and 2 other host(s): cannot load SSH key /k: [Errno 2] No such file"
    ]
    ovh = next(c for c in report.checks if c.name == "OVH API")
    assert ovh.ok and ovh.detail == "not needed (no provider stage)"  # never called

    refused = Servers(error=ProviderAuthError("This credential is not valid", status=403))
    rescue = parse_plan(RESCUE, "r.yaml")
    key = tmp_path / "k.pub"
    key.write_text("ssh-ed25519 AAAA me\n")
    inputs = Inputs(
        credentials=lambda h: None, rescue_public_key=str(key), provider=lambda: refused
    )
    (problem,) = [
        p for c in run_preflight(rescue, hosts("10.0.0.1"), inputs).checks for p in c.problems
    ]
    assert problem.startswith("This credential is not valid (credentials: ovh.config_file")


def test_a_plan_that_does_not_render_stops_the_other_checks() -> None:
    plan = parse_plan(
        {"name": "v", "stages": [{"name": "s", "steps": ["echo {{ nope }}"]}]}, "v.yaml"
    )
    called: list[str] = []
    inputs = Inputs(credentials=lambda h: called.append(h.name))
    report = run_preflight(plan, hosts("10.0.0.1"), inputs)
    assert [c.name for c in report.checks] == ["plan"] and called == []
    assert "undefined variable 'nope'" in report.checks[0].problems[0]


def test_windows_that_do_not_parse_are_named() -> None:
    plan = parse_plan({"name": "s", "stages": [{"name": "s", "steps": ["true"]}]}, "s.yaml")
    inputs = Inputs(credentials=lambda h: None, windows=("Sat 02:00-05:00 Europe/Paris", "bogus"))
    windows = run_preflight(plan, hosts("10.0.0.1"), inputs).checks[-1]
    assert windows.name == "windows" and len(windows.problems) == 1
    assert windows.problems[0].startswith("--window 'bogus': ")

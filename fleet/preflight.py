"""Preflight: what would fail on every host, found before any host is touched.

``fleet preflight PLAN`` runs these checks and prints them; ``fleet rollout`` and ``fleet
resume`` run them before the first batch, and a failure there exits 3 before any host is
contacted and before any run record exists. Each check is cheap and changes nothing:

* **plan**: every placeholder renders on every selected host (no undefined variable);
* **python calls**: every ``python`` stage's function can be imported;
* **addresses**: every host has an address, and a name that is not an IP resolves;
* **SSH keys**: every host has what it logs in with (its key file readable and a private key,
  opened by the passphrase or held by ssh-agent when encrypted, or the agent's keys), and the
  rescue public key is readable when a stage boots into rescue;
* **OVH API**: when a stage needs the provider, one authenticated call (the account's server
  list), and every such host's ``ovh_service`` is on the account;
* **windows**: the maintenance windows given (``--window``, ``--windows FILE``) parse.
"""

from __future__ import annotations

import ipaddress
import math
import re
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fleet.errors import FleetError, PlanError, PreflightFailed
from fleet.escape import printable
from fleet.plan import PROVIDER_KINDS, render_for_host

if TYPE_CHECKING:
    from fleet.inventory import Host
    from fleet.plan import HostPlan, Plan
    from fleet.provider.base import Provider

#: Longest wait for one name lookup (a resolver that does not answer is a finding too).
RESOLVE_TIMEOUT = 5.0
RESOLVE_WORKERS = 32
#: A DNS name: dot-separated labels of letters, digits, '-' and '_' (not at a label's ends).
_HOSTNAME = re.compile(
    r"(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
    r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?"
)
#: Problems listed per check before "... and N more".
SHOWN_PROBLEMS = 10


@dataclass
class Check:
    """One check's verdict: ``detail`` when it passed, ``problems`` (one line each) when not."""

    name: str
    detail: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        if self.ok:
            return [f"  ok    {self.name}: {self.detail}"]
        out = [f"  FAIL  {self.name}: {len(self.problems)} problem(s)"]
        out += [f"        {printable(p)}" for p in self.problems[:SHOWN_PROBLEMS]]
        if len(self.problems) > SHOWN_PROBLEMS:
            out.append(f"        ... and {len(self.problems) - SHOWN_PROBLEMS} more")
        return out


@dataclass(frozen=True)
class Inputs:
    """What preflight needs from the command line: how a host's login credentials are checked
    (raises a :class:`FleetError` when it has none usable; contacts nothing), the rescue public
    key, and how to reach the provider."""

    credentials: Callable[[Host], object]
    rescue_public_key: str | None = None
    provider: Callable[[], Provider] | None = None
    resolve: Callable[[str], object] | None = None
    windows: tuple[str, ...] = ()
    window_files: tuple[str, ...] = ()


@dataclass
class Report:
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def lines(self) -> list[str]:
        return [line for c in self.checks for line in c.lines()]

    def raise_for_problems(self) -> None:
        failed = [c for c in self.checks if not c.ok]
        if not failed:
            return
        first = printable(failed[0].problems[0])
        more = sum(len(c.problems) for c in failed) - 1
        raise PreflightFailed(
            f"preflight: {first}" + (f" (and {more} more problem(s))" if more else ""),
            hint="`fleet preflight PLAN --limit ...` lists every check; nothing was started",
        )


def run_preflight(plan: Plan, hosts: Sequence[Host], inputs: Inputs) -> Report:
    """Every check, in order; a plan that does not render stops there (the others need it)."""
    plan_check, rendered = check_rendering(plan, hosts)
    if not plan_check.ok:
        return Report([plan_check])
    checks = [
        plan_check,
        check_calls(rendered),
        check_addresses(hosts, inputs.resolve or _resolve),
        check_keys(hosts, rendered, inputs),
        check_provider(hosts, rendered, inputs.provider),
        check_windows(inputs.windows, inputs.window_files),
    ]
    return Report(checks)


def check_rendering(plan: Plan, hosts: Sequence[Host]) -> tuple[Check, list[HostPlan]]:
    check, rendered = Check("plan"), []
    for host in hosts:
        try:
            rendered.append(render_for_host(plan, host))
        except PlanError as exc:
            check.problems.append(exc.message)
    check.detail = f"every step renders on {len(hosts)} host(s)"
    return check, rendered


def check_calls(rendered: Sequence[HostPlan]) -> Check:
    """Every function a ``python`` stage names (its ``call``, ``check`` and ``verify``) can be
    loaded: a built-in plan's, a file next to the plan, or a module's."""
    from fleet.plan import PYTHON_CALL_PREFIX
    from fleet.stages.call import resolve
    from fleet.stages.usercall import load

    refs = sorted(
        {
            (ref, st.base)
            for hp in rendered
            for st in hp.stages
            for ref in (st.call, st.check, st.verify)
            if st.kind == "python" and ref
        },
        key=lambda pair: (pair[0], pair[1] or ""),
    )
    names = sorted({ref for ref, _ in refs})
    detail = f"{len(names)} resolvable ({', '.join(names)})" if names else "none in this plan"
    check = Check("python calls", detail)
    for ref, base in refs:
        try:
            resolve(ref) if ref.startswith(PYTHON_CALL_PREFIX) else load(ref, base)
        except PlanError as exc:
            check.problems.append(exc.message.removeprefix("<input>: "))
    return check


def _resolve(name: str) -> object:
    return socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)


def check_addresses(hosts: Sequence[Host], resolve: Callable[[str], object]) -> Check:
    check = Check("addresses")
    names: dict[str, list[str]] = {}
    for host in hosts:
        address = (host.address or "").strip()
        if not address:
            why = "no address"
            if host.service_name:
                why += f" (it names OVH service {host.service_name}: set its address: too)"
            check.problems.append(f"{host.name}: {why}")
            continue
        try:
            ipaddress.ip_address(address)
        except ValueError:
            if not _HOSTNAME.fullmatch(address):  # refused before any lookup is sent
                check.problems.append(f"{host.name}: address {address!r} is no host name or IP")
                continue
            names.setdefault(address, []).append(host.name)
    check.problems += _unresolved(names, resolve)
    check.detail = f"{len(hosts)} host(s) addressable" + (
        f" ({len(names)} name(s) resolved)" if names else ""
    )
    return check


def _unresolved(names: dict[str, list[str]], resolve: Callable[[str], object]) -> list[str]:
    """Look the names up, :data:`RESOLVE_WORKERS` at a time, each wave within
    :data:`RESOLVE_TIMEOUT`; a lookup still pending then is a finding, not waited for."""
    if not names:
        return []
    problems = []
    workers = min(RESOLVE_WORKERS, len(names))
    pool = ThreadPoolExecutor(workers, thread_name_prefix="fleet-resolve")
    futures = {name: pool.submit(resolve, name) for name in names}
    deadline = RESOLVE_TIMEOUT * math.ceil(len(names) / workers)
    wait(futures.values(), timeout=deadline)
    try:
        for name, future in futures.items():
            try:
                future.result(timeout=0)
            except FutureTimeout:
                why = f"no answer from the resolver within {RESOLVE_TIMEOUT:g}s"
            except OSError as exc:
                why = exc.strerror or str(exc)
            else:
                continue
            problems += [f"{host}: address {name} does not resolve ({why})" for host in names[name]]
    finally:  # a lookup that hangs is not waited for
        pool.shutdown(wait=False, cancel_futures=True)
    return problems


def check_keys(hosts: Sequence[Host], rendered: Sequence[HostPlan], inputs: Inputs) -> Check:
    check = Check("SSH keys")
    failures: dict[str, list[str]] = {}
    for host in hosts:
        try:
            inputs.credentials(host)
        except FleetError as exc:
            failures.setdefault(exc.message.removeprefix(f"{host.name}: "), []).append(host.name)
    check.problems = [f"{_who(names)}: {why}" for why, names in failures.items()]
    rescue = any(st.kind == "rescue" for hp in rendered for st in hp.stages)
    if rescue:
        check.problems += _rescue_key(inputs.rescue_public_key)
    check.detail = f"{len(hosts)} host(s) have a usable key" + (
        ", rescue key readable" if rescue else ""
    )
    return check


def _who(hosts: list[str]) -> str:
    return hosts[0] if len(hosts) == 1 else f"{hosts[0]} and {len(hosts) - 1} other host(s)"


def _rescue_key(path: str | None) -> list[str]:
    if not path:
        return ["rescue stages need rescue.ssh_public_key (the key OVH's rescue accepts)"]
    try:
        text = Path(path).expanduser().read_text().strip()
    except OSError as exc:
        return [f"rescue.ssh_public_key {path}: {exc.strerror or exc}"]
    if not text.startswith(("ssh-", "ecdsa-", "sk-")):
        return [f"rescue.ssh_public_key {path}: not an OpenSSH public key"]
    return []


def check_provider(
    hosts: Sequence[Host], rendered: Sequence[HostPlan], provider: Callable[[], Provider] | None
) -> Check:
    """One authenticated call when some host has a provider stage, else nothing."""
    users = {hp.host for hp in rendered for st in hp.stages if st.kind in PROVIDER_KINDS}
    if not users:
        return Check("OVH API", "not needed (no provider stage)")
    check = Check("OVH API")
    services = {h.name: h.service_name for h in hosts if h.name in users}
    check.problems += [
        f"{name}: no `ovh_service` in the inventory; provider stages need it"
        for name, service in sorted(services.items())
        if not service
    ]
    try:
        if provider is None:
            raise FleetError("no OVH provider is configured")
        known = set(provider().list_servers())
    except FleetError as exc:
        check.problems.insert(0, f"{exc.message} (credentials: ovh.config_file or OVH_* variables)")
        return check
    check.problems += [
        f"{name}: OVH service {service} is not on this account"
        for name, service in sorted(services.items())
        if service and service not in known
    ]
    check.detail = f"authenticated (1 call); {len(services)} host(s)' services on the account"
    return check


def check_windows(specs: Sequence[str], files: Sequence[str]) -> Check:
    from fleet.schedule import load_windows, parse_window

    check, count = Check("windows"), 0
    for spec in specs:
        try:
            parse_window(spec)
            count += 1
        except FleetError as exc:
            check.problems.append(f"--window {spec!r}: {exc.message}")
    for path in files:
        try:
            count += len(load_windows(Path(path)))
        except FleetError as exc:
            check.problems.append(exc.message)
    check.detail = f"{count} window(s) parse" if count else "none given"
    return check

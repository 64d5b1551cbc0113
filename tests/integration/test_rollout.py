"""The rollout engine against the sandbox's real sshd hosts: batches, budget, halt and resume,
leases between concurrent rollouts, and refusing bad input before any host is contacted."""

from __future__ import annotations

import itertools
import json
import secrets
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from fleet.sandbox.sandbox import Sandbox
from fleet.store import open_store
from fleet.store.base import Event
from tests.conftest import FleetCli

pytestmark = pytest.mark.integration


def write_plan(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def new_tid() -> str:
    return "t" + secrets.token_hex(4)


def events_of(fleet: FleetCli, run_id: str) -> list[Event]:
    store = open_store(fleet.state / "fleet.db")
    try:
        return store.events(run_id)
    finally:
        store.close()


def last_run(fleet: FleetCli) -> dict[str, Any]:
    runs = json.loads(fleet("status", "--json", check=0).stdout)
    return dict(runs[0])


def run_status(fleet: FleetCli, run_id: str) -> dict[str, Any]:
    return dict(json.loads(fleet("status", run_id, "--json", check=0).stdout))


def names(first: int, last: int) -> str:
    return ",".join(f"srv-{i:03d}" for i in range(first, last + 1))


THREE_STAGES = """
name: three-stages
vars: {{tid: {tid}}}
stages:
  - name: one
    steps:
      - name: dir
        check: test -d "$HOME"/{{{{ tid }}}}
        apply: mkdir -p "$HOME"/{{{{ tid }}}}
  - name: two
    steps:
      - name: stamp
        apply: date +%s.%N >> "$HOME"/{{{{ tid }}}}/two
  - name: three
    steps:
      - name: verify
        apply: test -s "$HOME"/{{{{ tid }}}}/two
"""


def test_batches_run_in_order_canary_first(fleet: FleetCli, tmp_path: Path) -> None:
    plan = write_plan(tmp_path / "p.yaml", THREE_STAGES.format(tid=new_tid()))
    proc = fleet(
        "rollout",
        str(plan),
        "--limit",
        names(1, 50),
        "--batches",
        "1,10%,100%",
        "--concurrency",
        "10",
        check=0,
    )
    run_id = last_run(fleet)["id"]
    events = events_of(fleet, run_id)
    batches = [e for e in events if e.kind == "batch.start"]
    assert [len(e.data["hosts"]) for e in batches] == [1, 5, 44], proc.stderr
    seqs = {e.seq: e for e in events}
    assert len(seqs) == len(events)
    # every host of batch k starts after batch k starts and ends before batch k+1 starts
    bounds = [e.seq for e in batches] + [max(seqs) + 1]
    for k, batch in enumerate(batches):
        members = set(batch.data["hosts"])
        for e in events:
            if e.host in members and e.kind in ("host.start", "host.end", "step.start", "step.end"):
                assert bounds[k] < (e.seq or 0) < bounds[k + 1], (k, e)
    ends = [e for e in events if e.kind == "host.end"]
    assert len(ends) == 50 and all(e.outcome == "ok" for e in ends)
    # three stages ran on every host, in order
    for host in batches[2].data["hosts"][:3]:
        steps = [f"{e.stage}/{e.step}" for e in events if e.host == host and e.kind == "step.end"]
        assert steps == ["one/dir", "two/stamp", "three/verify"]


FAILING = """
name: failing
vars: {{tid: {tid}, bad: [{bad}]}}
stages:
  - name: work
    steps:
      - name: maybe fail
        apply: sleep 0.2; for b in {{{{ bad }}}}; do [ "$b" = {{{{ host.name }}}} ] && exit 3; done; true
      - name: done
        apply: mkdir -p "$HOME"/{{{{ tid }}}} && touch "$HOME"/{{{{ tid }}}}/done
"""


def test_failure_budget_halts_then_resume_after_fix_completes(
    fleet: FleetCli, tmp_path: Path
) -> None:
    tid = new_tid()
    plan = write_plan(tmp_path / "p.yaml", FAILING.format(tid=tid, bad="srv-003, srv-005, srv-007"))
    proc = fleet(
        "rollout",
        str(plan),
        "--limit",
        names(1, 30),
        "--batches",
        "1,100%",
        "--concurrency",
        "4",
        "--max-failures",
        "2",
    )
    assert proc.returncode == 2, proc.stderr
    assert "failure budget spent" in proc.stderr
    run_id = last_run(fleet)["id"]
    events = events_of(fleet, run_id)
    failures = [e for e in events if e.kind == "host.end" and e.outcome == "failed"]
    assert len(failures) == 3
    third = failures[-1].seq or 0
    started_after = [e.host for e in events if e.kind == "host.start" and (e.seq or 0) > third]
    assert started_after == [], "no host may start once the budget is spent"
    starts = {e.host for e in events if e.kind == "host.start"}
    ends = {e.host for e in events if e.kind == "host.end"}
    assert starts == ends, "hosts in flight finish"
    assert len(starts) < 30
    status = run_status(fleet, run_id)
    assert status["state"] == "halted" and "budget" in status["reason"]
    # the failed hosts are quarantined: a new rollout skips them
    quarantined = {
        q["host"] for q in json.loads(fleet("quarantine", "list", "--json", check=0).stdout)
    }
    assert quarantined == {"srv-003", "srv-005", "srv-007"}
    # fix the plan, resume: refused until the change is accepted (then journaled); the failed
    # hosts are retried, the others run, every host ends ok
    write_plan(plan, FAILING.format(tid=tid, bad="none"))
    refused = fleet("resume", run_id, check=3)
    assert "changed since the run started" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 2  # the error and its hint
    assert run_status(fleet, run_id)["state"] == "halted"
    resumed = fleet("resume", run_id, "--accept-plan-change")
    assert resumed.returncode == 0, resumed.stderr
    (accepted,) = [e for e in events_of(fleet, run_id) if e.kind == "run.inputs"]
    assert "changed since the run started" in (accepted.excerpt or "")
    final = run_status(fleet, run_id)
    assert final["state"] == "done"
    assert {h["state"] for h in final["hosts"]} == {"ok"}
    assert json.loads(fleet("quarantine", "list", "--json", check=0).stdout) == []


def host_log(sandbox: Sandbox, name: str, tid: str) -> list[str]:
    assert sandbox.hosts is not None
    path = sandbox.hosts.home_dir(name, "disk") / tid / "log"
    return path.read_text().splitlines() if path.exists() else []


OVERLAP = """
name: overlap
vars: {{tid: {tid}}}
stages:
  - name: work
    steps:
      - name: hold
        apply: >-
          mkdir -p "$HOME"/{{{{ tid }}}} &&
          echo "start $(date +%s.%N)" >> "$HOME"/{{{{ tid }}}}/log &&
          sleep 0.4 && echo "end $(date +%s.%N)" >> "$HOME"/{{{{ tid }}}}/log
"""


def intervals(lines: list[str]) -> list[tuple[float, float]]:
    starts = [float(x.split()[1]) for x in lines if x.startswith("start")]
    ends = [float(x.split()[1]) for x in lines if x.startswith("end")]
    assert len(starts) == len(ends)
    return sorted(zip(starts, ends, strict=True))


def test_concurrent_rollouts_never_share_a_host(
    fleet: FleetCli, sandbox: Sandbox, tmp_path: Path
) -> None:
    tid = new_tid()
    plan = write_plan(tmp_path / "p.yaml", OVERLAP.format(tid=tid))
    common = ["--batches", "100%", "--concurrency", "5"]
    waiting = fleet.popen(
        "rollout", str(plan), "--limit", names(31, 40), "--wait-for-leases", "120s", *common
    )
    first = fleet.popen("rollout", str(plan), "--limit", names(31, 40), *common)
    second = fleet("rollout", str(plan), "--limit", names(36, 45), *common)
    out_first = first.communicate(timeout=120)
    out_waiting = waiting.communicate(timeout=180)
    codes = {first.returncode, waiting.returncode, second.returncode}
    assert codes <= {0, 4}, (out_first, out_waiting, second.stderr)
    # whoever lost a host says who holds it
    losers = [p for p in (out_first[1], second.stderr) if "lease held by" in p]
    assert any("(lease): " in p for p in losers), "the summary lists the hosts it skipped"
    assert losers, "at least one rollout met a held lease and said by whom"
    assert "run r" in losers[0] and "since" in losers[0] and "until" in losers[0]
    # the hosts themselves saw no overlapping step
    for i in range(31, 46):
        spans = intervals(host_log(sandbox, f"srv-{i:03d}", tid))
        assert spans, f"srv-{i:03d} ran nothing"
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, f"srv-{i:03d}: overlapping steps {spans}"
    # the waiting rollout eventually ran on every one of its hosts
    assert waiting.returncode == 0, out_waiting[1]


class Listener:
    """A TCP listener counting connections: proves that nothing was contacted."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def listener() -> Any:
    lst = Listener()
    try:
        yield lst
    finally:
        lst.close()


def test_bad_plans_are_refused_before_any_host_is_contacted(
    tmp_path: Path, listener: Listener
) -> None:
    inventory = tmp_path / "inv.yaml"
    inventory.write_text(
        f"all:\n  hosts:\n    probe:\n      ansible_host: 127.0.0.1\n"
        f"      ansible_port: {listener.port}\n"
    )
    fleet = FleetCli(tmp_path / "state", None)
    cases = {
        "unknown key": (
            "name: x\nstages:\n  - name: s\n    steps:\n      - name: a\n        aply: true\n",
            "p.yaml:6: stages.0.steps.0.aply: unknown key",
        ),
        "bad kind": ("name: x\nstages:\n  - name: s\n    kind: reboo\n", "p.yaml:4: stages.0.kind"),
        "wrong type": (
            "name: x\nstages:\n  - name: s\n    steps:\n      - name: a\n        apply: echo\n"
            "        retries: lots\n",
            "p.yaml:7: stages.0.steps.0.retries",
        ),
        "undefined variable": (
            "name: x\nstages:\n  - name: s\n    steps:\n      - echo {{ nope }}\n",
            "undefined variable 'nope'",
        ),
        "yaml syntax": ("name: x\nstages: [\n", "p.yaml:3: YAML syntax error"),
        "destructive without check": (
            "name: x\nstages:\n  - name: s\n    steps:\n      - name: wipe\n"
            "        apply: 'true'\n        destructive: true\n",
            "needs a `check`",
        ),
    }
    for what, (text, expected) in cases.items():
        plan = write_plan(tmp_path / "p.yaml", text)
        proc = fleet("-i", str(inventory), "rollout", str(plan))
        assert proc.returncode == 3, (what, proc.stderr)
        assert expected in proc.stderr, (what, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert listener.accepted == 0
    assert json.loads(fleet("-i", str(inventory), "status", "--json", check=0).stdout) == []


def test_bad_inventory_is_refused_before_any_host_is_contacted(
    tmp_path: Path, listener: Listener
) -> None:
    plan = write_plan(
        tmp_path / "p.yaml", "name: x\nstages:\n  - name: s\n    steps:\n      - 'true'\n"
    )
    good = f"    probe:\n      ansible_host: 127.0.0.1\n      ansible_port: {listener.port}\n"
    cases = {
        "near miss": (
            f"all:\n  hosts:\n{good}    other:\n      ansible_hots: 127.0.0.2\n",
            "inv.yaml:7: ansible_hots",
        ),
        "no SSH": (
            f"all:\n  hosts:\n{good}    other:\n      ansible_connection: local\n",
            "ansible_connection=local",
        ),
        "duplicate host": (f"all:\n  hosts:\n{good}{good}", "inv.yaml:6"),
        "syntax": (f"all:\n  hosts:\n{good}    other: [\n", "inv.yaml"),
        "wrong type": (
            f"all:\n  hosts:\n{good}    other:\n      ansible_host: 127.0.0.2\n"
            "      ansible_port: ssh\n",
            "ansible_port",
        ),
    }
    for what, (text, expected) in cases.items():
        inventory = tmp_path / "inv.yaml"
        inventory.write_text(text)
        fleet = FleetCli(tmp_path / "state", None)
        proc = fleet("-i", str(inventory), "rollout", str(plan))
        assert proc.returncode == 3, (what, proc.stderr)
        assert expected in proc.stderr, (what, proc.stderr)
    assert listener.accepted == 0


RETRIES = """
name: retries
vars: {{tid: {tid}}}
stages:
  - name: flaky
    steps:
      - name: third time
        apply: >-
          n=$(cat "$HOME"/{{{{ tid }}}}.a 2>/dev/null || echo 0); n=$((n + 1));
          echo $n > "$HOME"/{{{{ tid }}}}.a; [ $n -ge 3 ]
        retries: 3
        retry_delay: 0.1
      - name: verified late
        apply: n=$(cat "$HOME"/{{{{ tid }}}}.v 2>/dev/null || echo 0); echo $((n + 1)) > "$HOME"/{{{{ tid }}}}.v
        verify: '[ "$(cat "$HOME"/{{{{ tid }}}}.v)" -ge 2 ]'
        retries: 2
        retry_delay: 0.1
"""

NEVER = """
name: never
stages:
  - name: broken
    steps:
      - name: always fails
        apply: echo broken; false
        retries: 2
        retry_delay: 0.1
"""


def test_a_step_and_its_verify_are_retried_with_backoff_until_they_hold(
    fleet: FleetCli, tmp_path: Path
) -> None:
    plan = write_plan(tmp_path / "p.yaml", RETRIES.format(tid=new_tid()))
    proc = fleet("rollout", str(plan), "--limit", "srv-048", "-o", "json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    events = events_of(fleet, last_run(fleet)["id"])
    retries = [(e.step, (e.excerpt or "").split(";")[0]) for e in events if e.kind == "step.retry"]
    assert retries == [
        ("third time", "apply failed"),
        ("third time", "apply failed"),
        ("verified late", "verify failed"),  # the verify failed: apply and verify ran again
    ]
    ends = {e.step: e.outcome for e in events if e.kind == "step.end"}
    assert ends == {"third time": "applied", "verified late": "applied"}


def test_a_step_that_never_holds_fails_after_its_retries(fleet: FleetCli, tmp_path: Path) -> None:
    plan = write_plan(tmp_path / "p.yaml", NEVER)
    proc = fleet("rollout", str(plan), "--limit", "srv-049", "-o", "json")
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "broken/always fails: apply exited 1" in proc.stderr
    events = events_of(fleet, last_run(fleet)["id"])
    assert sum(e.kind == "step.retry" for e in events) == 2
    # the host's end says where it failed
    assert [(e.outcome, e.stage, e.step) for e in events if e.kind == "host.end"] == [
        ("failed", "broken", "always fails")
    ]

"""The crash harness: kill fleet with SIGKILL at a moment drawn uniformly over a rescue round
trip, resume, and count what went wrong.

A trial starts ``fleet rollout`` of :data:`ROUND_TRIP` (a counted step on disk, rescue boot, a
destructive counted step in rescue whose ``check`` marker comes only after its count and a pause,
back to disk, a counted step on disk) on a
few sandbox hosts, kills it with SIGKILL after a delay drawn uniformly between 0 and the duration
of an uninterrupted run (measured first, from spawn to exit), then runs ``fleet resume`` (a new
rollout when the kill came before the run was even recorded). Every trial must end with:

* every counted step run exactly once on every host (witness files the steps append to, in the
  installed system's HOME, which both boot modes can write);
* no host lost: each server boots from disk again (by the fake API) and its host ended ``ok``;
* no dangling lease: no host lease left on the trial's hosts, the run's own lease released;
* the first resume succeeding, with no manual step.

Where the kill landed (per host: the step it was running, the wait it was in, before or after
its work) is read from the journal right after the kill, for :func:`histogram`.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fleet.sandbox.sandbox import Sandbox
from fleet.store import open_store
from fleet.store.base import Event
from tests.conftest import FleetCli

#: The counted steps, each appending one line per execution to ``<witness>.<name>``.
COUNTED = ("prepare", "wipe", "finish")

ROUND_TRIP = """
name: crash-round-trip
vars: {{tid: {tid}, homes: {homes}}}
stages:
  - name: prepare
    steps:
      - name: prepare
        check: test -f "$HOME"/{{{{ tid }}}}.prepared
        apply: {count[prepare]} && touch "$HOME"/{{{{ tid }}}}.prepared
  - name: rescue
    kind: rescue
  - name: wipe
    steps:
      - name: wipe
        destructive: true
        check: test -f "$HOME"/{{{{ tid }}}}.wiped
        apply: >-
          hostname | grep -q '^rescue' && {count[wipe]} && sleep 0.3
          && touch "$HOME"/{{{{ tid }}}}.wiped
  - name: disk
    kind: disk
  - name: finish
    steps:
      - name: finish
        check: test -f "$HOME"/{{{{ tid }}}}.finished
        apply: {count[finish]} && touch "$HOME"/{{{{ tid }}}}.finished
"""


def witness_line(step: str) -> str:
    """A shell command appending ``TIME FENCE`` to the step's witness file on the host."""
    path = "{{ homes }}/{{ host.name }}/disk/{{ tid }}." + step
    return f'echo "$(date +%s.%N) $FLEET_FENCE" >> {path}'


@dataclass
class Trial:
    """One kill and its resumption."""

    index: int
    delay: float
    moments: dict[str, str] = field(default_factory=dict)  # host -> where the kill landed
    resumes: int = 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    journal: list[str] = field(default_factory=list)  # kept when the trial failed


class CrashHarness:
    """Trials on ``hosts`` of ``sandbox``, each with its own state directory under ``work``."""

    def __init__(self, sandbox: Sandbox, hosts: Sequence[str], work: Path) -> None:
        assert sandbox.hosts is not None and sandbox.api is not None
        self.sandbox = sandbox
        self.hosts = list(hosts)
        self.work = work
        self.homes = sandbox.hosts.home_dir(self.hosts[0], "disk").parent.parent
        for host in self.hosts:  # the witness path the plan builds must be the disk HOME
            assert sandbox.hosts.home_dir(host, "disk") == self.homes / host / "disk"
        self.round_trip = 0.0
        self._count = 0

    # -- one run -------------------------------------------------------------------------
    def _fleet(self) -> tuple[FleetCli, str, Path]:
        self._count += 1
        state = self.work / f"trial-{self._count}"
        tid = f"c{os.getpid()}x{self._count}"
        count = {step: witness_line(step) for step in COUNTED}
        plan = state / "plan.yaml"
        state.mkdir(parents=True)
        plan.write_text(ROUND_TRIP.format(tid=tid, homes=self.homes, count=count))
        return FleetCli(state / "state", self.sandbox.config_path), tid, plan

    def _rollout(self, fleet: FleetCli, plan: Path) -> subprocess.Popen[str]:
        hosts = ",".join(self.hosts)  # the plan's wipe step is destructive: confirmed by name
        return fleet.popen("rollout", str(plan), "--limit", hosts, "--confirm", hosts, "-c", "8")

    def calibrate(self) -> float:
        """Time one uninterrupted round trip, spawn to exit (and check it ends well)."""
        fleet, tid, plan = self._fleet()
        started = time.monotonic()
        proc = self._rollout(fleet, plan)
        _, err = proc.communicate(timeout=600)
        self.round_trip = time.monotonic() - started
        assert proc.returncode == 0, err[-3000:]
        problems = self.check(fleet, tid, self.last_run(fleet))
        assert not problems, problems
        return self.round_trip

    def trial(self, index: int, rng: random.Random) -> Trial:
        """Kill a rollout at a uniformly drawn moment, resume it, check everything."""
        assert self.round_trip > 0, "calibrate first"
        fleet, tid, plan = self._fleet()
        trial = Trial(index, rng.uniform(0, self.round_trip))
        started = time.monotonic()
        proc = self._rollout(fleet, plan)
        time.sleep(max(0.0, started + trial.delay - time.monotonic()))
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
        run_id = self.last_run(fleet)
        trial.moments = self.moments(fleet, run_id)
        trial.problems += self.recover(fleet, plan, run_id, trial)
        trial.problems += self.check(fleet, tid, self.last_run(fleet))
        trial.seconds = time.monotonic() - started
        if trial.problems:
            trial.journal = self.journal(fleet, self.last_run(fleet))
        return trial

    def journal(self, fleet: FleetCli, run_id: str | None) -> list[str]:
        """The trial's journal, one line per event, to tell what went wrong."""
        if run_id is None:
            return []
        store = open_store(fleet.state / "fleet.db")
        try:
            events = store.events(run_id)
        finally:
            store.close()
        return [
            f"{e.seq} {e.at:%H:%M:%S.%f} {e.kind} {e.host or '-'} {e.stage or ''}/{e.step or ''} "
            f"{e.outcome or ''} {(e.excerpt or '')[:200]} {e.data}"
            for e in events
        ]

    def recover(self, fleet: FleetCli, plan: Path, run_id: str | None, trial: Trial) -> list[str]:
        """Resume the killed run (or start it anew if it was never recorded), no manual step."""
        trial.resumes += 1
        if run_id is None:
            hosts = ",".join(self.hosts)
            proc = fleet("rollout", str(plan), "--limit", hosts, "--confirm", hosts, timeout=600)
        else:
            proc = fleet("resume", run_id, timeout=600)
            if proc.returncode == 3 and "nothing to resume" in proc.stderr:
                return []  # killed after the run had ended
        if proc.returncode != 0:
            return [f"resume exited {proc.returncode}: {proc.stderr.strip()[-1500:]}"]
        return []

    # -- reading the outcome -------------------------------------------------------------
    def last_run(self, fleet: FleetCli) -> str | None:
        if not (fleet.state / "fleet.db").exists():
            return None
        store = open_store(fleet.state / "fleet.db")
        try:
            runs = store.list_runs(1)
            return runs[0].id if runs else None
        finally:
            store.close()

    def moments(self, fleet: FleetCli, run_id: str | None) -> dict[str, str]:
        if run_id is None:
            return dict.fromkeys(self.hosts, "before the run was recorded")
        store = open_store(fleet.state / "fleet.db")
        try:
            events = store.events(run_id)
        finally:
            store.close()
        return {host: where(host, events) for host in self.hosts}

    def check(self, fleet: FleetCli, tid: str, run_id: str | None) -> list[str]:
        problems = []
        assert self.sandbox.api is not None
        for host in self.hosts:
            for step in COUNTED:
                witness = self.homes / host / "disk" / f"{tid}.{step}"
                lines = witness.read_text().splitlines() if witness.exists() else []
                if len(lines) != 1:
                    problems.append(f"{host}: step {step} ran {len(lines)} times")
            service = next(s.service for s in self.sandbox.servers if s.name == host)
            if self.sandbox.api.server_mode(service) != "disk":
                problems.append(f"{host}: left in {self.sandbox.api.server_mode(service)}")
        if run_id is None:
            return [*problems, "no run recorded"]
        status = json.loads(fleet("status", run_id, "--json", check=0).stdout)
        if status["state"] != "done":
            problems.append(f"run {run_id} ended {status['state']}: {status['reason']}")
        problems += [f"{h['host']}: {h['state']}" for h in status["hosts"] if h["state"] != "ok"]
        return problems + self.dangling(fleet, run_id)

    def dangling(self, fleet: FleetCli, run_id: str) -> list[str]:
        store = open_store(fleet.state / "fleet.db")
        try:
            leases = [le.host for le in store.list_leases() if le.host in self.hosts]
            lease = store.get_run(run_id).lease
        finally:
            store.close()
        out = [f"{host}: lease left behind" for host in leases]
        if lease is not None and lease.expires_at is not None:
            out.append(f"run {run_id}: its lease was never released")
        return out


def where(host: str, events: list[Event]) -> str:
    """Where ``host`` stood when the journal stopped: the step it ran, the wait it was in."""
    mine = [e for e in events if e.host == host and e.kind != "host.retry"]
    if not mine or all(e.kind == "host.skip" for e in mine):
        return "before its start"
    last = mine[-1]
    if last.kind == "host.end":
        return "after its end"
    if last.kind == "host.start":
        return "leased, before its first step"
    stage = last.stage or "?"
    if last.kind == "boot.intent":
        return f"{stage}: reboot asked"
    if last.kind == "host.wait":
        what = str(last.data.get("what", ""))
        return f"{stage}: waiting for {'SSH' if what.startswith('SSH') else 'the OVH task'}"
    if last.kind == "step.start":
        return f"{stage}/{last.step}: running"
    return f"{stage}: between steps"


def histogram(trials: Sequence[Trial], order: Sequence[str] = ()) -> str:
    """Where the kills landed (one count per host and trial), as a text bar chart."""
    counts = Counter(m for t in trials for m in t.moments.values())
    keys = sorted(counts, key=lambda k: (_rank(k, order), k))
    width = max((len(k) for k in keys), default=0)
    total = sum(counts.values()) or 1
    lines = [f"kill moments over {len(trials)} trials ({total} host positions):"]
    for key in keys:
        bar = "#" * max(1, round(40 * counts[key] / total))
        lines.append(f"  {key:<{width}}  {counts[key]:4d}  {bar}")
    return "\n".join(lines)


def _rank(key: str, order: Sequence[str]) -> int:
    for i, prefix in enumerate(order):
        if key.startswith(prefix):
            return i
    return len(order)


#: The journey of a host, in order, for the histogram.
JOURNEY = (
    "before the run",
    "before its start",
    "leased",
    "prepare",
    "rescue",
    "wipe",
    "disk",
    "finish",
    "after its end",
)

"""A small rollout that halts, shared by the live view and report tests.

Five hosts (srv-041..srv-045, kept for these tests), batches ``1,100%``, two at a time, at most
one failure. srv-041 is rebooted through the fake OVH API (a long wait to show) and succeeds;
srv-042 and srv-043 fail with a few lines of output (with characters that need escaping); the
budget is spent, so at least one host never starts and the run halts.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from fleet.store import open_store
from fleet.store.base import Event, RunRecord
from tests.conftest import FleetCli

HOSTS = [f"srv-{i:03d}" for i in range(41, 46)]
FAILING = ["srv-042", "srv-043"]
LAST_LINE = 'fatal: no spare disk on {host} <b>&amp;</b> "quoted"'

PLAN = """
name: halting
vars: {{tid: {tid}, bad: [{bad}]}}
stages:
  - name: prepare
    steps:
      - name: workdir
        apply: mkdir -p "$HOME"/{{{{ tid }}}} && sleep 0.5
  - name: restart
    kind: reboot
    when: {{host.name: srv-041}}
  - name: work
    steps:
      - name: disk check
        apply: >-
          sleep 0.5; for b in {{{{ bad }}}}; do if [ "$b" = {{{{ host.name }}}} ]; then
          echo "checking spare disks"; echo "sdb: no partition table" >&2;
          printf '%s\\n' 'fatal: no spare disk on '{{{{ host.name }}}}' <b>&amp;</b> "quoted"' >&2;
          exit 3; fi; done; true
"""

ROLLOUT_ARGS = [
    "--limit",
    ",".join(HOSTS),
    "--batches",
    "1,100%",
    "--concurrency",
    "2",
    "--max-failures",
    "1",
]


def write_plan(directory: Path) -> Path:
    path = directory / "halting.yaml"
    tid = "t" + secrets.token_hex(4)
    path.write_text(PLAN.format(tid=tid, bad=", ".join(FAILING)))
    return path


def rollout_args(plan: Path, *extra: str) -> list[str]:
    return ["rollout", str(plan), *ROLLOUT_ARGS, *extra]


def last_run_id(fleet: FleetCli) -> str:
    runs = json.loads(fleet("status", "--json", check=0).stdout)
    return str(runs[0]["id"])


def journal(fleet: FleetCli, run_id: str) -> tuple[RunRecord, list[Event]]:
    store = open_store(fleet.state / "fleet.db")
    try:
        return store.get_run(run_id), store.events(run_id)
    finally:
        store.close()


def outcomes(events: list[Event]) -> dict[str, Any]:
    """host -> its last host.end outcome (hosts never started are absent)."""
    return {e.host: e.outcome for e in events if e.kind == "host.end"}

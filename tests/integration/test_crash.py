"""The crash harness's runs (see :mod:`tests.integration.crash_harness`): SIGKILL at moments drawn
uniformly over a rescue round trip, then resume; two resumes at once; a stale holder revived.

Trial counts come from the environment, so that the ``crash`` tox env runs many more than the
default test run: ``CRASH_TRIALS`` (default 20), ``CRASH_RACES`` (default 5),
``CRASH_SEED`` (default: a new one, printed).
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import random
import signal
import time
from pathlib import Path

import pytest

from fleet.sandbox.sandbox import Sandbox
from fleet.store import open_store
from tests.conftest import FleetCli
from tests.integration.crash_harness import JOURNEY, CrashHarness, Trial, histogram
from tests.integration.crashing import kill_when
from tests.integration.test_rollout import events_of, new_tid, write_plan
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TRIALS = int(os.environ.get("CRASH_TRIALS", "20"))
RACES = int(os.environ.get("CRASH_RACES", "5"))
SEED = int(os.environ.get("CRASH_SEED", str(random.SystemRandom().randrange(1 << 30))))
#: Hosts of this module: two lanes of three for the kill trials, one for the races, one for the
#: stale holder.
LANES = (("srv-071", "srv-072", "srv-073"), ("srv-074", "srv-075", "srv-076"))


def test_sigkill_at_any_moment_of_a_rescue_round_trip_resumes_cleanly(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    harnesses = [
        CrashHarness(sandbox, hosts, tmp_path / f"lane{i}") for i, hosts in enumerate(LANES)
    ]
    for harness in harnesses:
        harness.calibrate()
    rng = random.Random(SEED)
    seeds = [rng.randrange(1 << 30) for _ in range(TRIALS)]
    started = time.monotonic()
    with cf.ThreadPoolExecutor(len(harnesses)) as pool:
        lanes = [
            pool.submit(run_lane, harness, seeds[i :: len(harnesses)], i)
            for i, harness in enumerate(harnesses)
        ]
        trials = sorted((t for lane in lanes for t in lane.result()), key=lambda t: t.index)
    elapsed = time.monotonic() - started
    failed = [t for t in trials if t.problems]
    with capsys.disabled():
        print(
            f"\ncrash harness: {len(trials)} trials, seed {SEED}, {elapsed:.0f} s; round trip "
            f"{', '.join(f'{h.round_trip:.1f} s' for h in harnesses)} (spawn to exit)"
        )
        print(histogram(trials, JOURNEY))
        print(f"failed trials: {len(failed)}")
        for t in failed:
            print(f"  trial {t.index} (kill at {t.delay:.2f} s): {t.problems}")
        if failed:
            print("journal of the first failed trial:", *failed[0].journal, sep="\n  ")
    assert len(trials) == TRIALS
    assert not failed, [(t.index, t.delay, t.moments, t.problems) for t in failed]


def run_lane(harness: CrashHarness, seeds: list[int], lane: int) -> list[Trial]:
    out = []
    for i, seed in enumerate(seeds):
        out.append(harness.trial(lane + i * len(LANES), random.Random(seed)))
    return out


# -- two resumes at once ----------------------------------------------------------------------

RACE = """
name: race
vars: {{tid: {tid}}}
stages:
  - name: work
    steps:
      - name: one
        check: test -f "$HOME"/{{{{ tid }}}}.one
        apply: sleep 1.5 && touch "$HOME"/{{{{ tid }}}}.one
      - name: two
        check: test -f "$HOME"/{{{{ tid }}}}.two
        apply: >-
          echo "$(date +%s.%N) $FLEET_FENCE" >> "$HOME"/{{{{ tid }}}}.count
          && sleep 2 && touch "$HOME"/{{{{ tid }}}}.two
"""


def test_two_resumes_of_a_crashed_run_exactly_one_runs(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sandbox.hosts is not None
    outcomes = []
    for trial in range(RACES):
        fleet = FleetCli(tmp_path / f"race{trial}", sandbox.config_path)
        tid = new_tid()
        plan = write_plan(tmp_path / f"race{trial}.yaml", RACE.format(tid=tid))
        proc = fleet.popen("rollout", str(plan), "--limit", "srv-077", "--confirm", "1")
        run_id = kill_when(fleet, proc, lambda ev: any(e.kind == "step.start" for e in ev))
        first, second = (fleet.popen("resume", run_id) for _ in range(2))
        results = [(p.wait(timeout=120), p.communicate()[1]) for p in (first, second)]
        codes = sorted(code for code, _ in results)
        assert codes == [0, 4], results
        refused = next(err for code, err in results if code == 4)
        winner = first.pid if results[0][0] == 0 else second.pid
        assert "is owned by" in refused and f"pid {winner}" in refused, refused
        assert len(refused.strip().splitlines()) == 2  # error and hint, no traceback
        count = sandbox.hosts.home_dir("srv-077", "disk") / f"{tid}.count"
        assert len(count.read_text().splitlines()) == 1
        status = json.loads(fleet("status", run_id, "--json", check=0).stdout)
        assert status["state"] == "done"
        outcomes.append(codes)
    with capsys.disabled():
        print(f"\ntwo resumes at once: {len(outcomes)} trials, exactly one ran in each")


# -- a stale holder revived -------------------------------------------------------------------

STALE = """
name: stale
vars: {{tid: {tid}}}
stages:
  - name: work
    steps:
{steps}
"""
STALE_STEP = """      - name: s{n}
        check: test -f "$HOME"/{{{{ tid }}}}.s{n}
        apply: >-
          echo "$(date +%s.%N) $FLEET_FENCE s{n}" >> "$HOME"/{{{{ tid }}}}.witness
          && sleep 0.4 && touch "$HOME"/{{{{ tid }}}}.s{n}
        destructive: {destructive}
"""


def test_a_stale_holder_revived_runs_no_further_step(sandbox: Sandbox, tmp_path: Path) -> None:
    """SIGSTOP the owner mid-run, break its run lease, let a resume take over and finish,
    SIGCONT the old owner: it runs nothing more (witness timestamps on the host prove it) and
    stops with one line, exit 4."""
    assert sandbox.hosts is not None
    fleet = FleetCli(tmp_path / "stale", sandbox.config_path)
    tid = new_tid()
    steps = "".join(
        STALE_STEP.format(n=n, destructive=str(n % 2 == 0).lower()) for n in range(1, 9)
    )
    plan = write_plan(tmp_path / "stale.yaml", STALE.format(tid=tid, steps=steps))
    old = fleet.popen("rollout", str(plan), "--limit", "srv-078", "--confirm", "1")
    witness = sandbox.hosts.home_dir("srv-078", "disk") / f"{tid}.witness"
    wait_for(
        "two lines in the witness file",
        lambda: witness.exists() and len(witness.read_text().splitlines()) >= 2,
    )
    os.kill(old.pid, signal.SIGSTOP)
    try:
        run_id = json.loads(fleet("status", "--json", check=0).stdout)[0]["id"]
        time.sleep(1)  # the step it was in ends on the host meanwhile
        fleet("leases", "break", "--run", run_id, "--reason", "owner hung", check=0)
        resumed = fleet("resume", run_id)
        assert resumed.returncode == 0, resumed.stderr
    finally:
        revived_at = time.time()
        os.kill(old.pid, signal.SIGCONT)
    _, err = old.communicate(timeout=120)
    assert old.returncode == 4, err
    assert "lease lost" in err and "Traceback" not in err, err
    lines = [line.split() for line in witness.read_text().splitlines()]
    old_token = lines[0][1]
    assert [f for at, f, _ in lines if float(at) > revived_at] == []  # nothing after SIGCONT
    assert sorted(step for _, _, step in lines) == sorted({step for _, _, step in lines})
    assert len(lines) == 8 and any(f != old_token for _, f, _ in lines)
    store = open_store(fleet.state / "fleet.db")
    try:
        assert store.get_run(run_id).state == "done"
        assert [le for le in store.list_leases() if le.host == "srv-078"] == []
    finally:
        store.close()
    assert any(e.kind == "run.lease.break" for e in events_of(fleet, run_id))

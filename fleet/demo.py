"""The README's demo: the main job's shape against a local sandbox, end to end.

Brings a sandbox up (fake OVH API + real sshd hosts), lists the inventory, prints the plan, rolls
a rescue round trip out over the hybrid servers in batches spread across datacenters, shows the
status, re-runs it to show that nothing changes the second time, and brings the sandbox down.
State lives in a temporary directory unless ``--state`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from fleet.resources import shipped

#: The hybrid servers, canary first, then a quarter, then the rest, spread across datacenters.
SELECTION = ("--limit", "hybrid", "--batches", "1,25%,100%", "--by", "datacenter")


def fleet(*args: str, env: dict[str, str], check: bool = True) -> int:
    print(f"\n$ fleet {' '.join(args)}", flush=True)
    code = subprocess.run([sys.executable, "-m", "fleet", *args], env=env, check=False).returncode
    if check and code != 0:
        raise SystemExit(f"demo: `fleet {' '.join(args)}` exited {code}")
    return code


def hybrid_count(env: dict[str, str]) -> str:
    """How many hybrid servers the sandbox has: the rollout's ``--confirm`` (its plan's payload
    step is marked destructive)."""
    out = subprocess.run(
        [sys.executable, "-m", "fleet", "inventory", "list", "--limit", "hybrid", "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return str(len(json.loads(out)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fleet-demo", description=__doc__)
    parser.add_argument("--servers", type=int, default=12)
    parser.add_argument("--state", type=Path, help="state directory (default: a temporary one)")
    args = parser.parse_args(argv)
    plan = shipped("examples/plans/rescue-rehearsal.yaml")
    state = args.state or Path(tempfile.mkdtemp(prefix="fleet-demo-"))
    env = {**os.environ, "FLEET_STATE": str(state)}
    env.pop("FLEET_CONFIG", None)
    fleet("sandbox", "up", "--servers", str(args.servers), "--reboot-seconds", "2", env=env)
    try:
        fleet("inventory", "list", env=env)
        fleet("ovh", "servers", env=env)
        fleet("plan", str(plan), *SELECTION, "--summary", env=env)
        confirm = ("--confirm", hybrid_count(env))
        fleet("rollout", str(plan), *SELECTION, *confirm, "--max-failures", "1", env=env)
        fleet("status", env=env)
        print("\nA second rollout of the same plan finds every step converged:", flush=True)
        fleet("rollout", str(plan), "--limit", "hybrid", "--batches", "100%", *confirm, env=env)
    finally:
        fleet("sandbox", "down", env=env, check=False)
    print(f"\ndemo done; state (store, journal) kept in {state}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

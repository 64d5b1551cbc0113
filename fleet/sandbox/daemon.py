"""The sandbox's background process: ``fleet sandbox up`` starts it, ``down`` stops it.

``python -m fleet.sandbox.daemon DIR --servers N`` starts a :class:`Sandbox` in DIR, writes
``DIR/daemon.json`` (pid, API URL, host pids) once everything answers, and runs until SIGTERM or
SIGINT, then stops every process it started.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
from pathlib import Path

from fleet.sandbox.ovh_api import TaskTimings
from fleet.sandbox.sandbox import Sandbox


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fleet-sandbox-daemon")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--servers", type=int, default=10)
    parser.add_argument("--vms", type=int, default=0, help="QEMU VM servers (vm-01...)")
    parser.add_argument("--port", type=int, default=2222)
    parser.add_argument(
        "--jump-host", action="store_true", help="servers reachable only through a jump host"
    )
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--reboot-seconds",
        type=float,
        default=None,
        help="how long a reboot task lasts (init + todo + doing)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    timings = None
    if args.reboot_seconds is not None:
        third = args.reboot_seconds / 3
        timings = TaskTimings(reboot_init=third, reboot_todo=third, reboot_doing=third)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    state = args.directory / "daemon.json"
    sandbox = Sandbox(
        args.directory,
        servers=args.servers,
        port=args.port,
        seed=args.seed,
        timings=timings,
        vms=args.vms,
        jump_host=args.jump_host,
    )
    try:
        sandbox.start()
        tmp = state.with_suffix(".tmp")
        tmp.write_text(json.dumps({**sandbox.describe(), "ready": True}))
        os.replace(tmp, state)
        stop.wait()
    finally:
        sandbox.stop()
        state.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

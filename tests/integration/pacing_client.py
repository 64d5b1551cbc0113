"""One process of the shared rate limit's tests: reads a server's task list ``--calls`` times
through the provider fleet's command line builds (the settings of ``FLEET_CONFIG``, the rate of
``FLEET_OVH_RATE_LIMIT``), pacing through the bucket shared in Redis (``--broker``) or alone;
starts at ``--start`` (a ``time.time()``), so that the processes of a test overlap; prints its
usage as JSON.

    python -m tests.integration.pacing_client --broker redis://... --server srv-001 --calls 10
"""

from __future__ import annotations

import argparse
import json
import time

from fleet.cli.app import App
from fleet.workers import Broker


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--broker", help="share the bucket kept in this Redis (else: alone)")
    parser.add_argument("--server", required=True)
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--start", type=float, default=0.0)
    args = parser.parse_args()
    app = App(flags={}, config_file=None, debug=False)
    if args.broker:
        broker = Broker(args.broker, 60)
        app.share_pacing(broker.pacer)
    provider = app.provider()
    time.sleep(max(0.0, args.start - time.time()))
    for _ in range(args.calls):
        provider.tasks(args.server)
    print(json.dumps(provider.usage().to_json()))
    app.close()


if __name__ == "__main__":
    main()

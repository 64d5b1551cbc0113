#!/usr/bin/env bash
# fleet in the peer benchmark: runs ../shared/bench-peers/run.sh (raw paramiko, asyncssh, fabric,
# pssh, pyinfra, ansible on N local sshd hosts) with fleet added as the `fleet` runner, so that
# fleet's wall time and client CPU read as ratios to the paramiko floor of the same run.
#
#   bench/peers.sh                                   # 200 hosts, 3 rounds, every runner
#   bench/peers.sh --hosts 200 --repeats 3 --only paramiko,asyncssh,fabric,pyinfra
#
# Every argument goes to run.sh (see its --help). fleet runs `fleet run` through the full rollout
# engine (SQLite journal, a lease per host, batches 1,100%) with a fresh state directory per run,
# so host keys are trusted on first use and the journal starts empty.
#
# Environment: FLEET_BENCH_VENV   virtualenv whose bin/fleet is measured (default .tox/dev)
#              FLEET_BENCH_PEERS  the peer benchmark folder (default ../shared/bench-peers)
#              FLEET_BENCH_ARGS   extra arguments for `fleet run` (e.g. "--batches 100%")
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
peers=${FLEET_BENCH_PEERS:-$top/../shared/bench-peers}
venv=${FLEET_BENCH_VENV:-$top/.tox/dev}
fleet_bin="$venv/bin/fleet"
if [ ! -x "$fleet_bin" ]; then
  echo "peers.sh: no fleet at $fleet_bin (create the dev virtualenv, or set FLEET_BENCH_VENV)" >&2
  exit 3
fi
if [ ! -x "$peers/run.sh" ]; then
  echo "peers.sh: no peer benchmark at $peers (set FLEET_BENCH_PEERS)" >&2
  exit 3
fi
# fleet byte-compiled, as an installed fleet is: a checkout run with PYTHONDONTWRITEBYTECODE
# would otherwise compile its sources at every start (the peers' packages are compiled).
"$venv/bin/python" -m compileall -q \
  "$("$venv/bin/python" -c 'import fleet, os; print(os.path.dirname(fleet.__file__))')"
# Run by the harness from its own folder, once per round, with INVENTORY_YAML, COMMANDS_FILE,
# PARALLEL and RUN_TMP (removed after the run) in the environment. Settings that could leak in
# from the caller's environment are cleared so that every run starts from the same defaults.
printf -v fleet_q '%q' "$fleet_bin"
cmd="env -u FLEET_CONFIG -u FLEET_INVENTORY -u FLEET_STORE -u FLEET_SSH_KEY_FILE"
cmd+=" FLEET_STATE=\"\$RUN_TMP/fleet-state\" $fleet_q"
cmd+=" -i \"\$INVENTORY_YAML\" run --forks \"\$PARALLEL\" --commands-file \"\$COMMANDS_FILE\""
cmd+=" ${FLEET_BENCH_ARGS:-}"
cd "$peers"
exec ./run.sh --extra "fleet=$cmd" "$@"

#!/usr/bin/env bash
# Prepares a Debian machine for fleet's demo and tests: the Debian packages they need, the
# unprivileged account the sandbox's sshd hosts run as, and a virtualenv with tox.
# Idempotent and quiet when everything is already there. Run as root (apt, useradd).
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${FLEET_VENV:-$top/.venv}
say() { echo "bootstrap: $*" >&2; }

# Debian packages: sshd for the sandbox hosts, ssh-keygen, venv support, ps/kill, the
# PostgreSQL server the store tests start in a throwaway directory (never the system cluster),
# and redis-server for the Celery workers' tests (the tests start their own on loopback;
# policy-rc.d below keeps Debian from starting the system's).
need=()
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null \
  || need+=(postgresql)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v redis-server >/dev/null || need+=(redis-server)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
command -v ps >/dev/null || need+=(procps)
command -v git >/dev/null || need+=(git)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { say "needs root to install: ${need[*]}"; exit 1; }
  say "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  # policy-rc.d keeps Debian from starting the system sshd and PostgreSQL cluster: the
  # sandbox and the tests run their own.
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; rm_policy=1; fi
  apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
  [ "${rm_policy:-0}" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi

# The sandbox's sshd hosts run as this unprivileged account, so that nothing a plan runs on a
# sandbox host can touch this machine's disks.
if [ "$(id -u)" = 0 ] && ! id fleet-sandbox >/dev/null 2>&1; then
  say "creating the unprivileged account fleet-sandbox"
  useradd --system --shell /bin/bash --home-dir / --no-create-home fleet-sandbox
fi
# Its home is / (sshd chdirs there before each session sets its own HOME); older setups used
# /nonexistent, which made sshd print a warning on every command's stderr.
if [ "$(id -u)" = 0 ] && [ "$(getent passwd fleet-sandbox | cut -d: -f6)" != / ]; then
  usermod --home / fleet-sandbox
fi

# Python: a virtualenv with tox (tox builds the project's own environments).
py=${PYTHON:-python3}
"$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { say "$py is older than 3.11"; exit 1; }
if [ ! -x "$venv/bin/tox" ]; then
  say "creating $venv with tox"
  "$py" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "tox>=4.14"
fi

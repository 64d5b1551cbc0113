#!/usr/bin/env bash
# Entry point of the README's quick start: prepares the machine (scripts/bootstrap.sh), then runs
# the given command with the project's virtualenv first on PATH.
#   ./dev.sh tox -e demo     the main job against a local sandbox
#   ./dev.sh tox             lint, types, unit and integration tests
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bash "$top/scripts/bootstrap.sh"
export PATH="${FLEET_VENV:-$top/.venv}/bin:$PATH"
cd "$top"
exec "$@"

"""``fleet audit``: who did what, when, from which machine."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from fleet.cli.app import App, pass_app
from fleet.cli.output import table
from fleet.cli.params import Count, option
from fleet.clock import utc_iso
from fleet.errors import UsageError

_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*([mhdw])$")
_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: datetime) -> datetime:
    """``30m``, ``12h``, ``7d``, ``2w`` ago, or an ISO date or time (UTC unless it says)."""
    match = _AGO.match(text.strip())
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--since {text!r}: expected a duration ago (30m, 12h, 7d, 2w) or an ISO date or"
            " time (2026-03-01, 2026-03-01T14:00, 2026-03-01T14:00+01:00)"
        ) from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


@click.command("audit")
@click.option(
    "--since", metavar="WHEN", help="From this time: 12h, 7d (ago), or 2026-03-01[T14:00]."
)
@click.option("--who", metavar="NAME", help="Only this operator, OS user, or user@machine.")
@option(
    "--limit", type=Count(1), default=200, show_default=True, help="The newest this many entries"
)
@click.option("--json", "as_json", is_flag=True, help="One JSON list, for scripts.")
@pass_app
def audit_cmd(app: App, since: str | None, who: str | None, limit: int, as_json: bool) -> None:
    """Who did what, when, from which machine: runs started, resumed, aborted or taken over,
    lease breaks, halts, host-key forgets, quarantine clears, reinstall approvals, schedule
    changes and store migrations. Oldest first.

    Each entry names the operator (the `operator` setting or FLEET_OPERATOR, else the OS user)
    and the OS user and machine the command ran on. With a PostgreSQL store, the trail is the
    whole team's.

    \b
    Example:
      fleet audit --since 24h --who alice
      fleet audit --since 2026-03-01 --json
    """
    start = parse_since(since, datetime.now(UTC)) if since else None
    entries = app.store.audit_trail(since=start, who=who, limit=limit)
    rows: list[dict[str, Any]] = [
        {
            "at": utc_iso(e.at),
            "operator": e.actor.operator,
            "user": e.actor.user,
            "machine": e.actor.machine,
            "pid": e.actor.pid,
            "action": e.action,
            "run": e.run_id,
            "host": e.host,
            "detail": e.detail,
        }
        for e in entries
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no audit entries" + (" matching" if since or who else ""))
        return
    table(
        [
            [
                f"{e.at:%Y-%m-%d %H:%M:%S}",
                e.actor.operator,
                f"{e.actor.user}@{e.actor.machine}" if e.actor.user else "-",
                e.action,
                e.run_id or "-",
                e.host or "-",
                _detail(e.detail),
            ]
            for e in entries
        ],
        ["TIME (UTC)", "WHO", "FROM", "ACTION", "RUN", "HOST", "DETAIL"],
    )


def _detail(detail: dict[str, Any]) -> str:
    """``key=value`` pairs on one line (the person already has its column), cut at 80."""
    text = " ".join(
        f"{key}={json.dumps(value) if not isinstance(value, str) else value}"
        for key, value in detail.items()
        if key != "who"
    )
    text = text.replace("\n", " ")
    return text if len(text) <= 80 else text[:77] + "..."

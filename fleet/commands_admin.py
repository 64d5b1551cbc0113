"""fleet's inspection and administration subcommands: status, leases, quarantine, inventory,
config, ovh. (The sandbox has its own group in :mod:`fleet.sandbox.cli`.)"""

from __future__ import annotations

import json
from typing import Any

import click

from fleet.cli import App, cli, pass_app
from fleet.clock import utc_iso


def table(rows: list[list[str]], headers: list[str]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    for row in [headers, *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())


@cli.command("status")
@click.argument("run_id", required=False, metavar="[RUN]")
@click.option("--json", "as_json", is_flag=True)
@click.option("--limit", "count", type=int, default=20, show_default=True, help="Runs listed.")
@pass_app
def status_cmd(app: App, run_id: str | None, as_json: bool, count: int) -> None:
    """Runs and their state; with RUN, where every host stands.

    \b
    Example:
      fleet status r20261125-101500-ab12 --json
    """
    from fleet.status import run_status

    if run_id is None:
        runs = app.store.list_runs(count)
        if as_json:
            click.echo(
                json.dumps(
                    [
                        {
                            "id": r.id,
                            "state": r.state,
                            "reason": r.reason,
                            "plan": r.plan_name,
                            "hosts": len(r.hosts),
                            "owner": str(r.owner),
                            "created_at": utc_iso(r.created_at) if r.created_at else None,
                        }
                        for r in runs
                    ],
                    indent=2,
                )
            )
            return
        table(
            [
                [
                    r.id,
                    r.state,
                    r.plan_name,
                    str(len(r.hosts)),
                    f"{r.created_at:%Y-%m-%d %H:%M}" if r.created_at else "",
                    r.reason or "",
                ]
                for r in runs
            ],
            ["RUN", "STATE", "PLAN", "HOSTS", "STARTED (UTC)", "REASON"],
        )
        return
    status = run_status(app.store, run_id)
    if as_json:
        click.echo(json.dumps(status, indent=2))
        return
    click.echo(
        f"run {status['id']}: {status['state']}"
        + (f" ({status['reason']})" if status["reason"] else "")
    )
    table(
        [[h["host"], h["state"], h["where"] or "", h["message"] or ""] for h in status["hosts"]],
        ["HOST", "STATE", "STAGE/STEP", "LAST MESSAGE"],
    )


@cli.group("leases")
def leases_group() -> None:
    """Per-host leases: who holds which host, and breaking a stale one."""


@leases_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def leases_list(app: App, as_json: bool) -> None:
    """Leases held now (and expired ones not yet taken over)."""
    from fleet.clock import SystemClock

    now = SystemClock().now()
    leases = app.store.list_leases()
    rows: list[dict[str, Any]] = [
        {
            "host": le.host,
            "owner": str(le.owner),
            "token": le.token,
            "taken_at": utc_iso(le.taken_at),
            "expires_at": utc_iso(le.expires_at),
            "expired": le.expires_at < now,
        }
        for le in leases
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table(
        [
            [
                r["host"],
                r["owner"],
                str(r["token"]),
                r["taken_at"],
                r["expires_at"] + (" (expired)" if r["expired"] else ""),
            ]
            for r in rows
        ],
        ["HOST", "OWNER", "TOKEN", "TAKEN", "EXPIRES"],
    )


@leases_group.command("break")
@click.argument("host")
@click.option("--reason", required=True, help="Recorded in the journal with who broke it.")
@pass_app
def leases_break(app: App, host: str, reason: str) -> None:
    """Break HOST's lease (its holder loses it at its next heartbeat).

    \b
    Example:
      fleet leases break srv-042 --reason 'operator laptop died'
    """
    from fleet.runs import current_owner

    lease = app.store.break_lease(host, str(current_owner()), reason)
    click.echo(f"broke {host}'s lease held by {lease.owner}" if lease else f"{host} had no lease")


@cli.group("quarantine")
def quarantine_group() -> None:
    """Hosts that failed: later rollouts skip them until cleared."""


@quarantine_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def quarantine_list(app: App, as_json: bool) -> None:
    """Quarantined hosts, with the run and reason."""
    entries = app.store.quarantined()
    if as_json:
        click.echo(
            json.dumps(
                [
                    {"host": q.host, "run": q.run_id, "reason": q.reason, "at": utc_iso(q.at)}
                    for q in entries
                ],
                indent=2,
            )
        )
        return
    table(
        [[q.host, q.run_id, f"{q.at:%Y-%m-%d %H:%M}", q.reason] for q in entries],
        ["HOST", "RUN", "SINCE (UTC)", "REASON"],
    )


@quarantine_group.command("clear")
@click.argument("hosts", nargs=-1, required=True)
@pass_app
def quarantine_clear(app: App, hosts: tuple[str, ...]) -> None:
    """Let later rollouts touch HOSTS again.

    \b
    Example:
      fleet quarantine clear srv-042
    """
    from fleet.runs import current_owner

    for host in hosts:
        cleared = app.store.clear_quarantine(host, str(current_owner()))
        click.echo(f"{host}: {'cleared' if cleared else 'was not quarantined'}")


@cli.group("inventory")
def inventory_group() -> None:
    """The hosts fleet knows: from inventory YAML files, optionally enriched from OVH."""


def _host_row(h: Any) -> list[str]:
    disks = "hybrid" if h.hybrid else ("" if h.disks is None else "single")
    labels = ",".join(f"{k}={v}" for k, v in sorted(h.labels.items()))
    return [
        h.name,
        f"{h.address}:{h.port}",
        h.datacenter or "",
        h.rack or "",
        ",".join(h.groups),
        labels,
        disks,
    ]


@inventory_group.command("list")
@click.option("--limit", "-l")
@click.option(
    "--ovh", "from_ovh", is_flag=True, help="Enrich from the OVH API (datacenter, rack, disks)."
)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def inventory_list(app: App, limit: str | None, from_ovh: bool, as_json: bool) -> None:
    """List hosts; --limit selects like a rollout does.

    \b
    Example:
      fleet inventory list --ovh -l hybrid
    """
    inv = app.inventory()
    if from_ovh:
        from fleet.inventory import enrich

        inv = enrich(inv, app.provider())
    hosts = inv.select(limit)
    if as_json:
        click.echo(json.dumps([h.to_dict() for h in hosts], indent=2))
        return
    table(
        [_host_row(h) for h in hosts],
        ["HOST", "ADDRESS", "DC", "RACK", "GROUPS", "LABELS", "DISKS"],
    )


@inventory_group.command("show")
@click.argument("host")
@click.option("--ovh", "from_ovh", is_flag=True, help="Enrich from the OVH API.")
@pass_app
def inventory_show(app: App, host: str, from_ovh: bool) -> None:
    """Everything fleet knows about HOST (JSON)."""
    inv = app.inventory()
    if from_ovh:
        from fleet.inventory import enrich

        inv = enrich(inv, app.provider())
    click.echo(json.dumps(inv.require(host).to_dict(), indent=2))


@cli.group("config")
def config_group() -> None:
    """fleet's settings."""


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def config_show(app: App, as_json: bool) -> None:
    """Effective settings and where each came from: flag > FLEET_* env > fleet.toml > default."""
    rows = app.settings.show()
    if as_json:
        click.echo(json.dumps({n: {"value": v, "source": s} for n, v, s in rows}, indent=2))
        return
    click.echo(f"config file: {app.settings.config_file or '(none found)'}")
    table([list(r) for r in rows], ["SETTING", "VALUE", "SOURCE"])


from fleet import commands_ovh  # noqa: E402,F401


@cli.group("hostkeys")
def hostkeys_group() -> None:
    """Host keys fleet pinned, per host and boot role (disk, rescue)."""


@hostkeys_group.command("list")
@click.argument("host", required=False)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def hostkeys_list(app: App, host: str | None, as_json: bool) -> None:
    """Pinned keys with their fingerprints (compare with `ssh-keygen -lf` on the host)."""
    from fleet.transport.ssh import fingerprint

    keys = app.store.pinned_keys(host)
    rows = [
        {
            "host": k.host,
            "role": k.role,
            "type": k.key_type,
            "fingerprint": fingerprint(k.key_type, k.blob),
            "pinned_at": utc_iso(k.pinned_at),
        }
        for k in keys
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table(
        [[r["host"], r["role"], r["type"], r["fingerprint"], r["pinned_at"]] for r in rows],
        ["HOST", "ROLE", "TYPE", "FINGERPRINT", "PINNED AT (UTC)"],
    )


@hostkeys_group.command("forget")
@click.argument("host")
@click.option(
    "--role", default="disk", show_default=True, help="disk (installed system) or rescue."
)
@click.option("--reason", required=True, help="Recorded in the journal with who did it.")
@pass_app
def hostkeys_forget(app: App, host: str, role: str, reason: str) -> None:
    """Drop HOST's pinned key after checking the new one out of band (e.g. a reinstall made
    outside fleet); the next contact pins the key it meets.

    \b
    Example:
      fleet hostkeys forget srv-042 --reason 'reinstalled by support, fingerprint checked on KVM'
    """
    from fleet.runs import current_owner

    gone = app.store.forget_key(host, role, str(current_owner()), reason)
    click.echo(f"{host}: {role} key forgotten" if gone else f"{host}: no {role} key was pinned")

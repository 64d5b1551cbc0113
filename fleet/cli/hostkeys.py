"""``fleet hostkeys``: host keys pinned per host and boot role; forgetting one."""

from __future__ import annotations

import json

import click

from fleet.cli.app import App, pass_app
from fleet.cli.output import table
from fleet.clock import utc_iso


@click.group("hostkeys")
def hostkeys_group() -> None:
    """Host keys fleet pinned, per host and boot role (disk, rescue)."""


@hostkeys_group.command("list")
@click.argument("host", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
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
    gone = app.store.forget_key(host, role, str(app.actor), reason)
    click.echo(f"{host}: {role} key forgotten" if gone else f"{host}: no {role} key was pinned")

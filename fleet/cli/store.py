"""``fleet store``: the state store's schema: what it is at, and upgrading it."""

from __future__ import annotations

import json

import click

from fleet.cli.app import App, pass_app


@click.group("store")
def store_group() -> None:
    """The state store (SQLite file or shared PostgreSQL database): its schema version, and
    upgrading it after a fleet upgrade."""


@store_group.command("migrate")
@click.option("--dry-run", is_flag=True, help="List the migrations to apply; change nothing.")
@pass_app
def migrate_cmd(app: App, dry_run: bool) -> None:
    """Bring the store's schema to this fleet's version, one numbered migration at a time.

    Each migration is applied in its own transaction and recorded with who applied it. A
    PostgreSQL store shared by a team is upgraded only by this command: every operator then
    needs this fleet or newer (an older one refuses the newer schema). A SQLite file is also
    upgraded when any command opens it. A store newer than this fleet is refused.

    \b
    Example:
      fleet store migrate --dry-run
      fleet --store postgresql://fleet@db.example/fleet store migrate
    """
    from fleet.store import migrate_store

    s = app.settings
    outcome = migrate_store(
        s.store_url,
        actor=app.actor,
        password_file=s.get("store_password_file"),
        dry_run=dry_run,
    )
    if not outcome.applied:
        click.echo(f"store {outcome.where}: schema {outcome.after}, up to date")
        return
    verb = "would apply" if dry_run else "applied"
    if dry_run:
        click.echo(f"store {outcome.where}: schema {outcome.before}, {len(outcome.applied)} to go")
    else:
        click.echo(f"store {outcome.where}: schema {outcome.before} -> {outcome.after}")
    for name in outcome.applied:
        click.echo(f"  {verb} {name}")
    if not dry_run:
        detail = {"from": outcome.before, "to": outcome.after, "applied": list(outcome.applied)}
        app.store.audit("store.migrate", detail=detail)


@store_group.command("info")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def info_cmd(app: App, as_json: bool) -> None:
    """Where the store is, its schema version and the migrations it still needs.

    \b
    Example:
      fleet store info
    """
    from fleet.store import migrate_store
    from fleet.store.migrations import latest

    s = app.settings
    outcome = migrate_store(s.store_url, password_file=s.get("store_password_file"), dry_run=True)
    backend = "postgresql" if outcome.where.startswith("postgresql://") else "sqlite"
    info = {
        "store": outcome.where,
        "backend": backend,
        "schema": outcome.before,
        "fleet_schema": latest(backend),
        "pending": list(outcome.applied),
    }
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"store:   {info['store']} ({backend})")
    click.echo(f"schema:  {outcome.before} (this fleet writes {info['fleet_schema']})")
    pending = ", ".join(outcome.applied) or "none"
    click.echo(f"pending: {pending}" + (" (run `fleet store migrate`)" if outcome.applied else ""))

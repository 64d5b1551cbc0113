"""``fleet reinstall``: reinstall servers' OS through the OVH API, in rolling batches.

Like every command it is listed in :mod:`fleet.cli.registry`. The command builds a one-stage
plan (``kind: reinstall``, see :mod:`fleet.stages.reinstall`) and runs it like ``fleet rollout``:
leases, journal, batches, failure budget, ``fleet resume``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from fleet.cli.app import App, pass_app
from fleet.cli.options import batch_flags, output_flag
from fleet.cli.params import Count, Duration, Ratio, option
from fleet.cli.wiring import audit_approval, execute, finish
from fleet.errors import UsageError

if TYPE_CHECKING:
    from fleet.inventory import Host
    from fleet.plan import Plan
    from fleet.stages.reinstall.spec import ReinstallSpec


#: The command's options: the request, then the rollout's batches and budget.
_OPTIONS: list[Callable[[Any], Any]] = [
    click.option("--os", "os_name", required=True, metavar="TEMPLATE", help="OS to install."),
    click.option(
        "--confirm",
        required=True,
        metavar="HOSTS",
        help="The selected hosts again, by name, comma-separated: nothing runs otherwise.",
    ),
    click.option(
        "--hostname", help="Host name to set; {name} and {service} are replaced per host."
    ),
    click.option(
        "--ssh-key",
        type=click.Path(exists=True, dir_okay=False),
        help="Public key file installed for root (default: rescue.ssh_public_key).",
    ),
    click.option(
        "--script",
        type=click.Path(exists=True, dir_okay=False),
        help="Post-installation script (sent base64-encoded; must not change until done).",
    ),
    option("--disk-group", type=Count(1), help="System disk group (default: NVMe/SSD one)"),
    option("--disks", type=Count(1), help="Disks of that group to use (default: all)"),
    option("--raid", type=Count(0), help="Software RAID level of the --partition entries"),
    click.option(
        "--partition",
        "layout",
        multiple=True,
        metavar="MOUNT:FS:MIB[:RAID]",
        help="Custom layout, one per partition, e.g. /:ext4:0 (size 0 fills the disk).",
    ),
    click.option("--scheme", help="OVH partitioning scheme name."),
    option(
        "--timeout",
        type=Duration(positive=True),
        default="1h",
        show_default=True,
        help="Longest wait for one install",
    ),
    batch_flags,
    option("--concurrency", "-c", type=Count(1), default=None, help="Hosts at once"),
    option("--max-failures", type=Count(0), help="Halt when more hosts than this failed"),
    option("--max-failure-ratio", "max_ratio", type=Ratio(), help="Or this share"),
    option("--bake", type=Duration(), default="0s", show_default=True, help="Wait between batches"),
    click.option("--gate", metavar="CMD", help="Local command between batches; non-zero halts."),
    option(
        "--wait-for-leases", type=Duration(), default="0s", help="Wait for hosts held by other runs"
    ),
    output_flag,
]


def _options(f: Any) -> Any:
    for decorate in reversed(_OPTIONS):
        f = decorate(f)
    return f


@click.command("reinstall")
@click.argument("targets", nargs=-1, required=True, metavar="HOSTS...")
@_options
@pass_app
def reinstall_cmd(
    app: App,
    /,
    targets: tuple[str, ...],
    confirm: str,
    timeout: float,
    output: str,
    wait_for_leases: float,
    **kw: Any,
) -> None:
    """Reinstall the OS of HOSTS through the OVH API. Destructive: wipes their system disks.

    HOSTS are names, groups or patterns as for --limit; --confirm must list the very hosts
    they select, by name. Before anything changes, every server is checked (GETs only): the
    OS must be one of its compatible templates, the system goes to its NVMe/SSD disk group
    (never the HDD group), RAID levels must fit its disks. Then the servers are reinstalled in
    rolling batches under leases and the failure budget, with OVH's install progress shown;
    the new host key is pinned and the rescue SSH key fleet set is cleared. A reinstall
    already running on a server is adopted, never started twice; `fleet resume RUN` goes on
    after an interruption.

    A plan can reinstall too, with a stage `kind: reinstall` whose params are os, hostname,
    ssh_key, script_file, script_sha256, disk_group, disks, raid, layout (a list of
    MOUNT:FS:MIB[:RAID]) and scheme; `fleet rollout` runs it only with --approve-reinstall
    naming exactly the selected hosts, or `all`, and `fleet plan` marks it DESTRUCTIVE.

    \b
    Example:
      fleet reinstall srv-001 srv-002 --os debian12_64 --confirm srv-001,srv-002
      fleet reinstall dc:gra3 --os debian12_64 --confirm srv-001,srv-004 \\
          --partition /boot:ext4:1024 --partition /:ext4:0 --raid 1 --batches 1,50%
    """
    from fleet.cli.options import rollout_options
    from fleet.engine.runs import create_run
    from fleet.stages.reinstall.approval import APPROVAL_OPTION, check_confirmation

    hosts = app.hosts(",".join(targets), "HOSTS")
    approved = check_confirmation(hosts, confirm, "--confirm")
    spec = _spec(app, kw)
    _precheck(app, hosts, spec)
    plan = _plan(spec, timeout)
    options = rollout_options(app.settings.get("rollout.concurrency"), **kw)
    run = create_run(app.store, plan, hosts, {**options.to_dict(), APPROVAL_OPTION: approved})
    audit_approval(app, run.id, {APPROVAL_OPTION: approved})
    click.echo(f"run {run.id}: reinstall {spec.os} on {len(hosts)} hosts", err=True)
    finish(execute(app, run, plan, hosts, options, output, wait_for_leases=wait_for_leases), app)


_SPEC_FLAGS = ("os_name", "hostname", "ssh_key", "script", "disk_group", "disks", "raid")


def _spec(app: App, kw: dict[str, Any]) -> ReinstallSpec:
    """The request's params from the flags (removed from ``kw``), checked without any API."""
    from fleet.stages.reinstall.spec import ReinstallRefused, parse_params

    flags = {name: kw.pop(name) for name in (*_SPEC_FLAGS, "layout", "scheme")}
    key_file = flags["ssh_key"] or app.settings.path("rescue.ssh_public_key")
    if not key_file:
        raise UsageError(
            "no SSH key to install: fleet could not log in after the reinstall",
            hint="give --ssh-key FILE or set rescue.ssh_public_key",
        )
    params: dict[str, Any] = {
        "os": flags["os_name"],
        "hostname": flags["hostname"],
        "ssh_key": _read(Path(key_file), "--ssh-key").strip(),
        "disk_group": flags["disk_group"],
        "disks": flags["disks"],
        "raid": flags["raid"],
        "layout": list(flags["layout"]) or None,
        "scheme": flags["scheme"],
    }
    if flags["script"]:
        path = Path(flags["script"]).resolve()
        params["script_file"] = str(path)
        params["script_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        return parse_params({k: v for k, v in params.items() if v is not None}, "fleet reinstall")
    except ReinstallRefused as exc:
        raise UsageError(exc.message, hint=exc.hint) from exc


def _read(path: Path, flag: str) -> str:
    try:
        return path.expanduser().read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{flag} {path}: cannot read it: {exc}") from exc


def _precheck(app: App, hosts: list[Host], spec: ReinstallSpec) -> None:
    """Build every server's request from the API (GETs only); refuse them all at once if any
    cannot work, before the run exists."""
    from fleet.stages.reinstall.request import prepare_request
    from fleet.stages.reinstall.spec import ReinstallRefused

    provider = app.provider()
    problems: list[ReinstallRefused] = []
    for host in hosts:
        try:
            prepare_request(provider, host, spec, ssh_key=None)
        except ReinstallRefused as exc:
            problems.append(exc)
    if problems:
        lines = [exc.message for exc in problems]
        raise UsageError(
            "\n".join(lines) + "\nnothing was changed", hint=problems[0].hint
        ) from problems[0]


def _plan(spec: ReinstallSpec, timeout: float) -> Plan:
    from fleet.plan import parse_plan

    stage = {
        "name": "reinstall",
        "kind": "reinstall",
        "timeout": timeout,
        "params": spec.to_params(),
    }
    return parse_plan({"name": f"reinstall-{spec.os}", "stages": [stage]}, "adhoc")

"""``fleet sandbox up|status|down``: the local fleet to rehearse on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from fleet.cli.app import App, pass_app
from fleet.cli.params import Count, Duration, option
from fleet.engine.owners import pid_alive
from fleet.errors import FleetError


def sandbox_dir(app: App) -> Path:
    return app.settings.state_dir / "sandbox"


def _daemon_state(directory: Path) -> dict[str, object] | None:
    path = directory / "daemon.json"
    try:
        data: dict[str, object] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    pid = data.get("pid")
    if not isinstance(pid, int) or not pid_alive(pid):
        return None
    return data


@click.group("sandbox")
def sandbox_group() -> None:
    """A local fleet: fake OVH API on 127.0.0.1 and one real sshd per server.

    While it is up, every fleet command uses it (its fleet.toml is found in the state dir)."""


@sandbox_group.command("up")
@click.option(
    "--servers",
    "-n",
    type=click.IntRange(0, 2000),
    default=10,
    show_default=True,
    help="sshd hosts to start (srv-001...), two in three hybrid, over three datacenters.",
)
@click.option(
    "--vms",
    type=click.IntRange(0, 8),
    default=0,
    show_default=True,
    help="Also boot N QEMU VMs that are real hybrid servers (vm-01...; needs root the first time).",
)
@option(
    "--port", type=Count(1, 65535), default=2222, show_default=True, help="SSH port of every host"
)
@click.option(
    "--jump-host",
    is_flag=True,
    help="Put the servers in a network namespace of their own, reachable only through a jump "
    "host (a real sshd); the inventory names it as their bastion (needs root).",
)
@click.option(
    "--seed", type=int, help="Seed boot ids, task ids and chaos for a replayable sandbox."
)
@option(
    "--reboot-seconds",
    type=Duration(maximum=3600.0),
    default="3s",
    show_default=True,
    help="Length of a reboot task",
)
@option(
    "--timeout",
    type=Duration(positive=True),
    default="3m",
    show_default=True,
    help="How long to wait for it to come up",
)
@pass_app
def sandbox_up(
    app: App,
    servers: int,
    vms: int,
    port: int,
    jump_host: bool,
    seed: int | None,
    reboot_seconds: float,
    timeout: float,
) -> None:
    """Start the sandbox in the background and write its inventory and settings.

    \b
    Example:
      fleet sandbox up --servers 50
      fleet sandbox up --servers 0 --vms 3
      fleet sandbox up --servers 20 --jump-host
    """
    if servers == 0 and vms == 0:
        raise FleetError("a sandbox needs at least one server", hint="--servers or --vms")
    directory = sandbox_dir(app)
    if _daemon_state(directory):
        raise FleetError(
            f"a sandbox is already up in {directory}", hint="`fleet sandbox down` first"
        )
    directory.mkdir(parents=True, exist_ok=True)
    if vms:
        timeout += _prepare_vms(directory, vms)
    log = open(directory / "daemon.log", "ab")  # noqa: SIM115 - handed to the child
    cmd = [
        sys.executable,
        "-m",
        "fleet.sandbox.daemon",
        str(directory),
        "--servers",
        str(servers),
        "--port",
        str(port),
        "--reboot-seconds",
        str(reboot_seconds),
        "--vms",
        str(vms),
        *(["--jump-host"] if jump_host else []),
    ]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
    )
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if _daemon_state(directory):
            took = time.monotonic() - started
            click.echo(
                f"sandbox up: {servers} servers in {took:.1f}s; settings: {directory / 'fleet.toml'}"
            )
            return
        if proc.poll() is not None:
            raise FleetError(f"the sandbox failed to start; see {directory / 'daemon.log'}")
        time.sleep(0.2)
    proc.terminate()
    raise FleetError(
        f"the sandbox did not come up within {timeout:.0f}s; see {directory / 'daemon.log'}"
    )


def _prepare_vms(directory: Path, vms: int) -> float:
    """Build the VM images now if they are not cached (in the foreground: it takes minutes,
    and its own log); the extra seconds to allow for the VMs to boot under emulation."""
    from fleet.sandbox.vm_images import ensure_images, find_images

    if find_images() is None:
        click.echo("building the VM images (first time only, several minutes)...", err=True)
        ensure_images(log_file=directory / "vm-images.log")
    return 120.0 + 60.0 * vms


@sandbox_group.command("status")
@pass_app
def sandbox_status(app: App) -> None:
    """Is a sandbox up, where is its API, how many hosts answer."""
    directory = sandbox_dir(app)
    state = _daemon_state(directory)
    if not state:
        click.echo("no sandbox is up")
        sys.exit(1)
    from fleet.sandbox.hosts import listening_endpoints

    servers = state.get("servers")
    servers = servers if isinstance(servers, list) else []
    count = len(servers)
    listening = listening_endpoints()  # sshd pids change at every reboot: ask the sockets
    port = state.get("port", 2222)
    alive = sum(1 for s in servers if (s.get("address"), port) in listening)
    click.echo(
        f"sandbox up (pid {state['pid']}): API {state['api']}, {count} servers, {alive} sshd listening"
    )


@sandbox_group.command("down")
@option(
    "--timeout",
    type=Duration(positive=True),
    default="1m",
    show_default=True,
    help="How long to wait for it to stop",
)
@pass_app
def sandbox_down(app: App, timeout: float) -> None:
    """Stop the sandbox: the API and every sshd it started; nothing is left running."""
    directory = sandbox_dir(app)
    state = _daemon_state(directory)
    if not state:
        click.echo("no sandbox is up")
        (directory / "fleet.toml").unlink(missing_ok=True)
        return
    pid = state["pid"]
    assert isinstance(pid, int)
    os.kill(pid, signal.SIGTERM)
    started = time.monotonic()
    while pid_alive(pid) and time.monotonic() - started < timeout:
        time.sleep(0.1)
    if pid_alive(pid):
        raise FleetError(f"the sandbox (pid {pid}) did not stop within {timeout:.0f}s")
    (directory / "fleet.toml").unlink(missing_ok=True)
    click.echo(f"sandbox down in {time.monotonic() - started:.1f}s")

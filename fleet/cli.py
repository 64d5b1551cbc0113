"""The command line: the only place that builds concrete objects and wires them together.

Exit codes: 0 ok, 1 host failures, 2 halted or aborted, 3 usage or configuration error,
4 lease conflict. Errors print one line and a hint; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import click

from fleet import __version__
from fleet.config import Settings
from fleet.config import load as load_settings
from fleet.errors import FleetError, UsageError

if TYPE_CHECKING:
    from fleet.executor import ExecSettings, Services
    from fleet.inventory import Host, Inventory
    from fleet.journal import Observer
    from fleet.plan import Plan
    from fleet.provider.base import Provider
    from fleet.rollout import Rollout, RolloutOptions, RolloutResult
    from fleet.store.base import RunRecord, Store

log = logging.getLogger("fleet")


@dataclass
class App:
    """Per-invocation context: flags, then lazily the settings, store and inventory."""

    flags: dict[str, Any]
    config_file: str | None
    debug: bool
    _settings: Settings | None = None
    _store: Store | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.flags, config_file=self.config_file)
        return self._settings

    @property
    def store(self) -> Store:
        if self._store is None:
            from fleet.store import open_store

            self._store = open_store(self.settings.store_url)
            self._closers.append(self._store.close)
        return self._store

    def inventory(self) -> Inventory:
        from fleet.inventory import load_inventory

        paths = self.settings.inventory_paths
        missing = [p for p in paths if not p.exists()]
        if missing:
            raise UsageError(
                f"inventory {missing[0]} does not exist",
                hint="pass -i FILE, set FLEET_INVENTORY, or run `fleet sandbox up`",
            )
        return load_inventory(paths)

    def hosts(self, limit: str | None) -> list[Host]:
        return self.inventory().select(limit)

    def provider(self) -> Provider:
        from fleet.provider.ovh import OvhProvider, RetryPolicy, build_client

        s = self.settings
        client = build_client(
            s.get("ovh.endpoint"),
            endpoint_url=s.get("ovh.endpoint_url"),
            config_file=s.get("ovh.config_file"),
        )
        retry = RetryPolicy(
            initial_wait=s.get("ovh.retry_wait"), max_wait=s.get("ovh.retry_max_wait")
        )
        return OvhProvider(
            client,
            rate_limit_per_minute=s.get("ovh.rate_limit"),
            retry=retry,
            poll_interval=s.get("ovh.poll_interval"),
            max_poll_interval=s.get("ovh.max_poll_interval"),
        )

    def close(self) -> None:
        for closer in reversed(self._closers):
            closer()


pass_app = click.make_pass_decorator(App)


def fail(exc: Exception, debug: bool) -> NoReturn:
    """One line saying what went wrong, one hint saying what to do; the traceback only with
    ``--debug``. An error that is not a :class:`FleetError` is a bug or an unexpected
    environment problem: exit 1, and ask for ``--debug``."""
    if debug:
        import traceback

        traceback.print_exception(exc)
    if isinstance(exc, FleetError):
        message, hint, code = exc.message, exc.hint, exc.exit_code
    else:
        message = f"unexpected {type(exc).__name__}: {exc}".splitlines()[0]
        hint = None if debug else "run again with --debug for the traceback, and report it"
        code = 1
    click.echo(f"error: {message}", err=True)
    if hint:
        click.echo(f"hint: {hint}", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="fleet")
@click.option(
    "--config",
    "config_file",
    metavar="FILE",
    help="fleet.toml to read (default: see `fleet config show`).",
)
@click.option("--state", metavar="DIR", help="State directory (store, sandbox). Env: FLEET_STATE.")
@click.option(
    "--store", metavar="URL", help="Store: SQLite path or sqlite:///path. Env: FLEET_STORE."
)
@click.option(
    "-i",
    "--inventory",
    metavar="PATHS",
    help="Inventory files/dirs, ':'-separated. Env: FLEET_INVENTORY.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.pass_context
def cli(
    ctx: click.Context,
    config_file: str | None,
    state: str | None,
    store: str | None,
    inventory: str | None,
    debug: bool,
) -> None:
    """fleet: provision fleets of OVHcloud dedicated servers over SSH.

    \b
    Try it against a local sandbox (fake OVH API + real sshd hosts):
      fleet sandbox up --servers 20
      fleet inventory list
      fleet plan examples/plans/hello.yaml --limit hybrid
      fleet rollout examples/plans/hello.yaml --batches 1,10%,100% --max-failures 2
      fleet sandbox down
    """
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    flags = {"state": state, "store": store, "inventory": inventory}
    app = App({k: v for k, v in flags.items() if v}, config_file, debug)
    ctx.obj = app
    ctx.call_on_close(app.close)


def _main() -> None:
    """Run the CLI, turning fleet errors into one line and an exit code (via SystemExit)."""
    debug = "--debug" in sys.argv
    try:
        code = cli.main(prog_name="fleet", complete_var="_FLEET_COMPLETE", standalone_mode=False)
    except FleetError as exc:
        fail(exc, debug)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(2)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "fleet"
        click.echo(f"error: {exc.format_message()}", err=True)
        click.echo(f"hint: `{where} --help` shows the usage and an example", err=True)
        sys.exit(3)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(3)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(2)
    except Exception as exc:  # anything else: still one line, not a traceback
        fail(exc, debug)
    sys.exit(code if isinstance(code, int) else 0)


def main() -> None:
    """Console entry point. Once the command is done (its context closed: store, leases and
    connections released), exit at once: skipping the interpreter's teardown of hundreds of
    modules and idle threads saves a noticeable share of a short run's time."""
    try:
        _main()
        code: int | str | None = 0
    except SystemExit as exc:
        code = exc.code
    if isinstance(code, str):  # sys.exit("message") prints it, as Python would
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BrokenPipeError, ValueError):  # the reader went away (`| head`)
            stream.flush()
    os._exit(code or 0)


@cli.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion_cmd(shell: str) -> None:
    """Print the shell completion script for SHELL (commands, options, choices).

    \b
    Example:
      eval "$(fleet completion bash)"        # in ~/.bashrc
      fleet completion zsh > "${fpath[1]}/_fleet"
    """
    from click.shell_completion import get_completion_class

    completer = get_completion_class(shell)
    assert completer is not None, shell  # click.Choice admits only shells click knows
    click.echo(completer(cli, {}, "fleet", "_FLEET_COMPLETE").source())


# -----------------------------------------------------------------------------------------
# Wiring shared by rollout, run and resume


def exec_settings(app: App, wait_for_leases: float = 0.0) -> ExecSettings:
    from fleet.executor import ExecSettings

    s = app.settings
    key_path = s.path("rescue.ssh_public_key")
    rescue_key = key_path.read_text().strip() if key_path else None
    return ExecSettings(
        lease_ttl=s.get("rollout.lease_ttl"),
        reboot_timeout=s.get("reboot.timeout"),
        ssh_poll=s.get("reboot.ssh_poll"),
        infra_retries=s.get("rollout.infra_retries"),
        infra_retry_delay=s.get("rollout.infra_retry_delay"),
        rescue_public_key=rescue_key,
        wait_for_leases=wait_for_leases,
        key_file=s.get("ssh.key_file"),
    )


def services(app: App) -> Services:
    from fleet.executor import Services
    from fleet.leases import LeaseKeeper
    from fleet.transport.ssh import SshConnector

    s = app.settings
    connector = SshConnector(
        host_keys=app.store,
        connect_timeout=s.get("ssh.connect_timeout"),
        trust_on_first_use=s.get("ssh.trust_on_first_use"),
    )
    keeper = LeaseKeeper(app.store, s.get("rollout.lease_ttl"))
    app._closers.append(keeper.close)
    return Services(app.store, connector, provider_factory=app.provider, leases=keeper)


def observers(output: str, run: RunRecord | None = None) -> list[Observer]:
    """JSON lines with ``--output json``; the live view when stdout is a terminal; else one
    plain timestamped line per transition (logs, CI, ``| tee``)."""
    from fleet.report import JsonPrinter, PlainPrinter

    if output == "json":
        return [JsonPrinter()]
    if run is not None and sys.stdout.isatty() and os.environ.get("TERM") != "dumb":
        from fleet.live import LiveView

        return [LiveView(run)]
    return [PlainPrinter()]


@contextmanager
def interrupts(svc: Services) -> Iterator[None]:
    """First Ctrl-C: start nothing new, let in-flight steps finish. Second: cut them now."""
    count = 0

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal count
        count += 1
        if count == 1:
            click.echo(
                "interrupt: no new host will start; in-flight steps finish (Ctrl-C again to cut them)",
                err=True,
            )
            svc.stop.request("interrupted by the operator")
        else:
            click.echo("second interrupt: cutting in-flight steps", err=True)
            svc.stop.request("aborted by the operator (second interrupt)", hard=True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def execute(
    app: App,
    run: RunRecord,
    plan: Plan,
    hosts: list[Host],
    options: RolloutOptions,
    output: str,
    extra: list[Observer] | None = None,
    *,
    resuming: bool = False,
    wait_for_leases: float = 0.0,
    configure: Callable[[Rollout], None] | None = None,
) -> RolloutResult:
    """Build the rollout and run it; ``configure`` may set its hooks first (maintenance
    windows: :func:`fleet.schedule.window_hooks`)."""
    from fleet.journal import Journal
    from fleet.rollout import Resumption, Rollout, read_resumption

    svc = services(app)
    journal = Journal(app.store, run.id, (extra if extra is not None else observers(output, run)))
    resumption = (
        read_resumption(app.store.events(run.id)) if resuming else Resumption(frozenset(), {}, {})
    )
    rollout = Rollout(
        run,
        plan,
        hosts,
        options,
        svc,
        journal,
        exec_settings(app, wait_for_leases),
        resumption=resumption,
        retry_quarantined=resuming,
    )
    if configure is not None:
        configure(rollout)
    with interrupts(svc):
        return rollout.execute()


def finish(result: RolloutResult) -> NoReturn:
    ok, failed = result.count("ok"), result.count("failed")
    skipped, stopped = result.count("skipped"), result.count("stopped")
    line = f"run {result.run_id}: {result.state}; ok {ok}, failed {failed}, skipped {skipped}, not finished {stopped}"
    if result.reason:
        line += f" ({result.reason})"
    click.echo(line, err=True)
    for r in result.results.values():
        if r.outcome in ("failed", "skipped") and r.message:
            click.echo(
                f"  {r.host}: {r.outcome} ({r.failure}): {r.message.splitlines()[-1][:300]}",
                err=True,
            )
    if result.state in ("halted", "failed"):
        click.echo(
            f"hint: fix the cause, then `fleet resume {result.run_id}` (or `fleet abort {result.run_id}`)",
            err=True,
        )
    sys.exit(result.exit_code)


from fleet import (  # noqa: E402  (the subcommands register on `cli` when imported)
    commands,  # noqa: F401  (registers the subcommands)
    commands_reinstall,  # noqa: F401
    commands_report,  # noqa: F401
    commands_schedule,  # noqa: F401
)

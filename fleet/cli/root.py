"""The root command: global options, commands loaded from the registry when used, and the one
place that turns errors into one line and an exit code.

Exit codes: 0 ok, 1 host failures, 2 halted or aborted, 3 usage or configuration error,
4 lease conflict. Errors print one line and a hint; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import os
import sys
from typing import NoReturn

import click

from fleet import __version__
from fleet.cli.app import App
from fleet.cli.registry import COMMANDS
from fleet.engine.collector import YOUNG
from fleet.errors import FleetError
from fleet.escape import SafeStream, printable


class _Registered(click.Group):
    """A group whose subcommands are those of :data:`fleet.cli.registry.COMMANDS`, each
    imported only when it is used (or listed): a short command pays for its own module only."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command), target
        return command


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
    click.echo(f"error: {printable(message)}", err=True)
    if hint:
        click.echo(f"hint: {printable(hint)}", err=True)
    sys.exit(code)


@click.group(
    cls=_Registered,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="fleet")
@click.option(
    "--config",
    "config_file",
    metavar="FILE",
    help="fleet.toml to read (default: see `fleet config show`).",
)
@click.option("--state", metavar="DIR", help="State directory (store, sandbox). Env: FLEET_STATE.")
@click.option(
    "--store",
    metavar="URL",
    help="Store: SQLite path, sqlite:///path or postgresql://user@host/db. Env: FLEET_STORE.",
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
    if not debug:  # paramiko's tracebacks only with --debug; a rollout journals its lines
        from fleet.transport.logs import route_paramiko_logs

        route_paramiko_logs(None)
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
    """Console entry point. Whatever reaches standard output and error goes through a
    :class:`~fleet.escape.SafeStream` (no control character from a host or a file reaches the
    terminal raw). Once the command is done (its context closed: store, leases and connections
    released), exit at once: skipping the interpreter's teardown of hundreds of modules and
    idle threads saves a noticeable share of a short run's time. Its start-up (imports, the
    inventory) builds objects that live as long as it: the garbage collector's young generation
    is collected as during a rollout (:mod:`fleet.engine.collector`), not every 700 of them."""
    gc.set_threshold(YOUNG, *gc.get_threshold()[1:])
    sys.stdout = SafeStream(sys.stdout)
    sys.stderr = SafeStream(sys.stderr)
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

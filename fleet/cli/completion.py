"""``fleet completion``: shell completion scripts."""

from __future__ import annotations

import click


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
@click.pass_context
def completion_cmd(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script for SHELL (commands, options, choices).

    \b
    Example:
      eval "$(fleet completion bash)"        # in ~/.bashrc
      fleet completion zsh > "${fpath[1]}/_fleet"
    """
    from click.shell_completion import get_completion_class

    completer = get_completion_class(shell)
    assert completer is not None, shell  # click.Choice admits only shells click knows
    root = ctx.find_root().command
    click.echo(completer(root, {}, "fleet", "_FLEET_COMPLETE").source())

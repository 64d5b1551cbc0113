"""The generated reference pages are up to date with the code, complete, and the site builds."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import click
import pytest

from fleet.cli import cli
from fleet.config import SETTINGS
from fleet.errors import FleetError

REPO = Path(__file__).resolve().parent.parent.parent
DOCS = REPO / "docs"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_cli", DOCS / "gen_cli.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()


@pytest.mark.parametrize("name", sorted(GEN.PAGES))
def test_committed_reference_page_is_what_the_code_generates(name: str) -> None:
    generated = GEN.generate()[name]
    committed = (DOCS / name).read_text() if (DOCS / name).is_file() else ""
    assert committed == generated, f"docs/{name} is out of date: run python docs/gen_cli.py"


def _command_paths(command: click.Command, prefix: str) -> list[str]:
    paths = [prefix]
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            if not sub.hidden:
                paths += _command_paths(sub, f"{prefix} {name}")
    return paths


def test_cli_page_has_every_command_and_option() -> None:
    page = GEN.cli_page()
    for path in _command_paths(cli, "fleet"):
        assert f"# {path}\n" in page, path
    assert "`-l, --limit TEXT`" in page and "`--approve-reinstall HOSTS|all`" in page


def test_configuration_page_has_every_setting_and_variable() -> None:
    page = GEN.config_page()
    for setting in SETTINGS:
        assert f"`{setting.name}`" in page and f"`{setting.env}`" in page


def test_errors_page_has_every_error_with_its_exit_code() -> None:
    page = GEN.errors_page()
    classes = GEN.error_classes()
    assert FleetError in classes and len(classes) > 10
    for cls in classes:
        assert f"`{cls.__name__}` (exit {cls.exit_code})" in page


def test_help_text_examples_become_code_blocks() -> None:
    text = "Do it.\n\n\b\nExample:\n  fleet x --y 'a*b'\n\nSee <state>/logs and `a*b`."
    assert GEN.help_markdown(text) == (
        "Do it.\n\nExample:\n\n```text\nfleet x --y 'a*b'\n```\n\n"
        "See &lt;state&gt;/logs and `a*b`.\n"
    )


def test_check_mode_reports_a_stale_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(GEN, "DOCS", tmp_path)
    assert GEN.main(["--check"]) == 1
    assert GEN.main([]) == 0
    assert GEN.main(["--check"]) == 0


def test_site_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "reference" / "cli" / "index.html").is_file()


def test_every_option_has_a_description_and_no_placeholder_default() -> None:
    assert GEN.undocumented() == []
    page = GEN.cli_page()
    assert "Sentinel" not in page and "UNSET" not in page
    rows = [line for line in page.splitlines() if line.startswith("| `-")]
    assert rows and all(not line.rstrip().endswith("|  |") for line in rows)

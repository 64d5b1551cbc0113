"""The docs' console samples, executed in order, page by page.

The quick start runs for real, as a newcomer would: its own ``fleet sandbox up`` in a subprocess,
with its own state directory, and ``fleet sandbox down`` at the end whatever happens. The other
pages run against the session sandbox, on hosts srv-016..srv-020 only, each page with its own
state directory (the team pages: its own database on the session's PostgreSQL server). Every
command's exit code is checked (0 unless the sample says ``# exit N``), and so is every output
line the docs show.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fleet.sandbox.sandbox import Sandbox
from tests.docsamples import REPO, RUN_ID, Block, Command, Page, find_line, pages
from tests.pgserver import PgServer

pytestmark = pytest.mark.integration

RUNNABLE = [p for p in pages() if p.env]
COMMAND_TIMEOUT = 180
#: Tools some samples use besides fleet; a page that needs a missing one is skipped.
TOOLS = ("ssh-keygen",)


@dataclass
class Session:
    """Runs one page's commands in its working directory and environment."""

    cwd: Path
    env: dict[str, str]
    bindings: dict[str, str] = field(default_factory=dict)
    latest: str | None = None

    def substitute(self, text: str) -> str:
        def real(match: re.Match[str]) -> str:
            shown = match.group()
            if shown not in self.bindings:
                assert self.latest, f"no run id seen yet for {shown}"
                self.bindings[shown] = self.latest
            return self.bindings[shown]

        return RUN_ID.sub(real, text)

    def run(self, block: Block, command: Command) -> None:
        text = self.substitute(command.text)
        proc = subprocess.run(
            ["bash", "-c", text],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        out = proc.stdout + proc.stderr
        context = f"{block.where}: $ {text}\n--- output\n{out[-6000:]}"
        assert proc.returncode == command.exit_code, (
            f"exit {proc.returncode}, expected {command.exit_code}\n{context}"
        )
        lines = out.splitlines()
        for shown in command.output:
            found = find_line(shown, lines, self.bindings)
            assert found is not None, f"line not in the output: {shown!r}\n{context}"
            for doc_id, real_id in found.items():
                bound = self.bindings.setdefault(doc_id, real_id)
                assert bound == real_id, f"{doc_id} was {bound}, now {real_id}\n{context}"
        seen = RUN_ID.findall(out)
        if seen:
            self.latest = seen[-1]


def run_page(page: Page, session: Session) -> None:
    for block in page.blocks:
        if block.file:
            target = session.cwd / block.file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.body)
        if block.env:
            for command in block.commands():
                session.run(block, command)


def needs_tools(page: Page) -> None:
    text = " ".join(c.text for b in page.blocks if b.env for c in b.commands())
    for tool in TOOLS:
        if re.search(rf"\b{tool}\b", text) and shutil.which(tool) is None:
            pytest.skip(f"{page.path.name} needs {tool}")


def base_env(tmp: Path) -> dict[str, str]:
    """A clean environment: no developer settings, fleet on PATH, a fresh HOME and state."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLEET_", "OVH_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env["HOME"] = str(tmp / "home")
    env["FLEET_STATE"] = str(tmp / "state")
    (tmp / "home").mkdir()
    return env


def workdir(tmp: Path) -> Path:
    cwd = tmp / "work"
    cwd.mkdir()
    (cwd / "examples").symlink_to(REPO / "examples")
    return cwd


@pytest.fixture
def quickstart_session(tmp_path: Path) -> Iterator[Session]:
    """A session whose sandbox is the page's own: brought down whatever happens."""
    session = Session(workdir(tmp_path), base_env(tmp_path))
    try:
        yield session
    finally:
        _sandbox_down(session)


def _sandbox_down(session: Session) -> None:
    subprocess.run(
        ["fleet", "sandbox", "down"],
        cwd=session.cwd,
        env=session.env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    daemon = Path(session.env["FLEET_STATE"]) / "sandbox" / "daemon.json"
    try:  # if `down` failed, stop the daemon we started ourselves
        pid = json.loads(daemon.read_text())["pid"]
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError, KeyError):
        pass


@pytest.mark.slow
@pytest.mark.parametrize(
    "page", [p for p in RUNNABLE if p.env == "quickstart"], ids=lambda p: p.path.name
)
def test_quickstart_works_for_a_newcomer(page: Page, quickstart_session: Session) -> None:
    needs_tools(page)
    run_page(page, quickstart_session)
    status = subprocess.run(
        ["fleet", "sandbox", "status"],
        env=quickstart_session.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode == 1 and "no sandbox is up" in status.stdout  # the page stops it


@pytest.mark.parametrize(
    "page",
    [p for p in RUNNABLE if p.env == "sandbox"],
    ids=lambda p: str(p.path.relative_to(REPO / "docs")),
)
def test_page_samples_run_on_the_sandbox(page: Page, sandbox: Sandbox, tmp_path: Path) -> None:
    needs_tools(page)
    env = base_env(tmp_path)
    env["FLEET_CONFIG"] = str(sandbox.config_path)
    run_page(page, Session(workdir(tmp_path), env))


@pytest.mark.parametrize(
    "page",
    [p for p in RUNNABLE if p.env == "postgres"],
    ids=lambda p: str(p.path.relative_to(REPO / "docs")),
)
def test_page_samples_run_on_a_team_store(
    page: Page, sandbox: Sandbox, postgres: PgServer, tmp_path: Path
) -> None:
    """The team pages: the test sandbox, and a new database of the session's PostgreSQL server
    as the store, its password in a file."""
    needs_tools(page)
    env = base_env(tmp_path)
    env["FLEET_CONFIG"] = str(sandbox.config_path)
    env["FLEET_STORE"] = postgres.database()
    env["FLEET_STORE_PASSWORD_FILE"] = str(postgres.password_file)
    run_page(page, Session(workdir(tmp_path), env))


def test_the_runner_fails_on_a_wrong_sample(sandbox: Sandbox, tmp_path: Path) -> None:
    """A sample whose shown output or exit code is wrong fails the page."""
    env = base_env(tmp_path)
    env["FLEET_CONFIG"] = str(sandbox.config_path)
    session = Session(workdir(tmp_path), env)
    block = Block(REPO / "docs" / "x.md", 1, "console", "", "sandbox")
    session.run(block, Command("fleet inventory list --limit srv-016", 0, ("srv-016 ...",)))
    with pytest.raises(AssertionError, match="line not in the output"):
        session.run(block, Command("fleet inventory list --limit srv-016", 0, ("srv-017 ...",)))
    with pytest.raises(AssertionError, match="exit 3, expected 0"):
        session.run(block, Command("fleet plan missing.yaml --limit srv-016", 0, ()))

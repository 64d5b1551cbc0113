"""A normal `pip install` outside the checkout works: the wheel carries the data the package
needs (example plans, the VM image script), and the README's demo runs from it."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration


def run(
    *cmd: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> str:
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, (
        f"{cmd} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc.stdout


def test_wheel_installed_outside_the_checkout_runs_the_demo(tmp_path: Path) -> None:
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "-q",
        "-w",
        tmp_path / "dist",
        REPO,
        cwd=tmp_path,
    )
    (wheel,) = (tmp_path / "dist").glob("fleet-*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    # fleet itself only from the wheel; its dependencies from this test environment (added as a
    # path after the install, not with its site hooks, so the editable checkout stays out).
    run(python, "-m", "pip", "install", "--no-deps", "-q", wheel, cwd=tmp_path)
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=tmp_path)
    Path(site.strip(), "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    where = run(
        python,
        "-c",
        "import fleet.resources as r; print(r.shipped('examples/plans/hello.yaml'))",
        cwd=tmp_path,
    )
    assert where.startswith(str(venv)) and "_data" in where
    vm_script = run(
        python, "-c", "from fleet.sandbox.vm_images import SCRIPT; print(SCRIPT)", cwd=tmp_path
    )
    assert vm_script.startswith(str(venv))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLEET_", "OVH_"))}
    out = run(
        python,
        "-m",
        "fleet.demo",
        "--servers",
        "4",
        "--state",
        tmp_path / "state",
        cwd=tmp_path,
        env=env,
    )
    assert "demo done" in out
    assert "every step converged" in out

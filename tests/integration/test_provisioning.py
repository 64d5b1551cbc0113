"""Provisioning on 20 sandbox hosts over Fabric: a user's Python stage (a file next to the
plan), a fabfile task run unchanged, a ``put`` of a directory and a ``template``; a second run
changes nothing; a changed template shows its diff in ``fleet plan`` and applies only where the
content differs; every step's output is kept and shown."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from fleet.sandbox.sandbox import Sandbox
from fleet.store import open_store
from fleet.store.base import Event
from tests.conftest import FleetCli

pytestmark = pytest.mark.integration

HOSTS = [f"srv-{i:03d}" for i in range(1, 21)]

PLAN = """
name: app
vars: {{root: {root}, tid: {tid}, greeting: hello}}
stages:
  - name: files
    steps:
      - name: dir
        check: test -d {{{{ root }}}}/{{{{ host.name }}}}/disk/{{{{ tid }}}}
        apply: mkdir -p {{{{ root }}}}/{{{{ host.name }}}}/disk/{{{{ tid }}}}
      - name: site
        put: files
        dest: "{{{{ root }}}}/{{{{ host.name }}}}/disk/{{{{ tid }}}}/site"
        mode: "0640"
      - name: config
        template: templates/app.conf.j2
        dest: "{{{{ root }}}}/{{{{ host.name }}}}/disk/{{{{ tid }}}}/app.conf"
  - name: deploy
    kind: python
    call: tasks.py:deploy
    check: tasks.py:deployed
    params: {{release: "7"}}
  - name: fabfile
    kind: python
    call: fabfile.py:stamp
    check: tasks.py:stamped
"""

TEMPLATE = """# {{ host.name }}
greeting = {{ greeting }}
{% if host.name.endswith("3") %}mode = fast
{% endif %}"""

TASKS = """
def target(c):
    v = c.fleet.vars
    return v["root"] + "/" + c.fleet.host.name + "/disk/" + v["tid"]


def deployed(c):
    return c.run("test -f " + target(c) + "/deployed", warn=True).ok


def deploy(c, release):
    c.run("echo release " + release + " > " + target(c) + "/deployed")
    c.fleet.note("deployed release " + release + " on " + c.fleet.host.name)
    return "changed"


def stamped(c):
    return c.run("test -f $HOME/fabfile-stamp-{tid}", warn=True).ok
"""

FABFILE = """from fabric import task


@task
def stamp(c):
    \"\"\"A fabfile task as teams write them: nothing fleet-specific.\"\"\"
    c.run("hostname > $HOME/fabfile-stamp-{tid}")
    c.run("echo stamped by $(whoami)")
"""


def make_plan(tmp_path: Path, sandbox: Sandbox, tid: str) -> Path:
    assert sandbox.hosts is not None
    root = tmp_path / "plan"
    (root / "files" / "sub").mkdir(parents=True)
    (root / "templates").mkdir()
    (root / "files" / "index.html").write_text("<h1>index</h1>\n")
    (root / "files" / "sub" / "deep.txt").write_text("deep\n")
    (root / "templates" / "app.conf.j2").write_text(TEMPLATE)
    (root / "tasks.py").write_text(TASKS.format(tid=tid))
    (root / "fabfile.py").write_text(FABFILE.format(tid=tid))
    plan = root / "app.yaml"
    plan.write_text(PLAN.format(root=sandbox.hosts.runtime_dir, tid=tid))
    return plan


def step_ends(fleet: FleetCli, run_id: str) -> list[Event]:
    store = open_store(fleet.state / "fleet.db")
    try:
        return [e for e in store.events(run_id) if e.kind == "step.end"]
    finally:
        store.close()


def last_run_id(fleet: FleetCli) -> str:
    return str(json.loads(fleet("status", "--json", check=0).stdout)[0]["id"])


def outcomes(fleet: FleetCli, run_id: str) -> dict[tuple[str, str], str]:
    return {
        (e.host or "", f"{e.stage}/{e.step}"): e.outcome or "" for e in step_ends(fleet, run_id)
    }


@pytest.fixture
def provisioned(fleet: FleetCli, sandbox: Sandbox, tmp_path: Path) -> tuple[Path, str, str]:
    """The plan rolled out once on the 20 hosts: (plan file, test id, run id)."""
    tid = "t" + secrets.token_hex(4)
    plan = make_plan(tmp_path, sandbox, tid)
    fleet("rollout", str(plan), "--limit", ",".join(HOSTS), "--batches", "1,100%", check=0)
    return plan, tid, last_run_id(fleet)


def test_first_run_applies_everything_on_20_hosts(
    fleet: FleetCli, sandbox: Sandbox, provisioned: tuple[Path, str, str]
) -> None:
    assert sandbox.hosts is not None
    _plan, tid, run_id = provisioned
    got = outcomes(fleet, run_id)
    assert len(got) == 20 * 5
    assert set(got.values()) == {"applied"}, got
    for name in HOSTS:
        home = sandbox.hosts.home_dir(name, "disk")
        work = home / tid
        assert (work / "site" / "index.html").read_text() == "<h1>index</h1>\n"
        assert (work / "site" / "sub" / "deep.txt").read_text() == "deep\n"
        assert (work / "site" / "sub" / "deep.txt").stat().st_mode & 0o777 == 0o640
        mode = "mode = fast\n" if name.endswith("3") else ""
        assert (work / "app.conf").read_text() == f"# {name}\ngreeting = hello\n{mode}"
        assert (work / "deployed").read_text() == "release 7\n"
        assert (home / f"fabfile-stamp-{tid}").read_text().startswith("ns")  # `hostname`


def test_a_second_run_reports_every_step_unchanged(
    fleet: FleetCli, provisioned: tuple[Path, str, str]
) -> None:
    plan, _tid, _run = provisioned
    fleet("rollout", str(plan), "--limit", ",".join(HOSTS), "--batches", "100%", check=0)
    got = outcomes(fleet, last_run_id(fleet))
    assert len(got) == 20 * 5
    assert set(got.values()) == {"converged"}, {k: v for k, v in got.items() if v != "converged"}


def test_a_changed_template_shows_its_diff_and_applies_only_where_content_differs(
    fleet: FleetCli, sandbox: Sandbox, provisioned: tuple[Path, str, str]
) -> None:
    assert sandbox.hosts is not None
    plan, tid, _run = provisioned
    template = plan.parent / "templates" / "app.conf.j2"
    template.write_text(template.read_text().replace("mode = fast", "mode = faster"))
    limit = ",".join(HOSTS)
    shown = fleet("plan", str(plan), "--limit", limit, "--diff", check=0).stdout
    assert "-mode = fast" in shown and "+mode = faster" in shown
    assert shown.count("+mode = faster") == 2  # srv-003 and srv-013 only
    fleet("rollout", str(plan), "--limit", limit, "--batches", "100%", check=0)
    got = outcomes(fleet, last_run_id(fleet))
    applied = sorted(host for (host, key), out in got.items() if out == "applied")
    assert applied == ["srv-003", "srv-013"]
    assert got["srv-003", "files/config"] == "applied"
    work = sandbox.hosts.home_dir("srv-013", "disk") / tid
    assert (work / "app.conf").read_text().endswith("mode = faster\n")


def test_step_output_of_a_successful_rollout_is_kept_and_shown(
    fleet: FleetCli, provisioned: tuple[Path, str, str], tmp_path: Path
) -> None:
    _plan, _tid, run_id = provisioned
    shown = fleet("status", run_id, "srv-004", check=0).stdout
    assert "deployed release 7 on srv-004" in shown
    assert "stamped by" in shown
    assert "changed " in shown and "app.conf" in shown
    as_json: dict[str, Any] = json.loads(
        fleet("status", run_id, "srv-004", "--json", check=0).stdout
    )
    outputs = {s["step"]: s.get("output", {}) for s in as_json["steps"]}
    assert "deployed release 7" in outputs["deploy/python"]["stdout"]
    report = tmp_path / "report.html"
    fleet("report", run_id, "--format", "html", "-o", str(report), check=0)
    html = report.read_text()
    assert "deployed release 7 on srv-004" in html and "stamped by" in html

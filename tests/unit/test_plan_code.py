"""Plans that use local code and files: python calls, put and template steps; their checks
(file, line and key named) and the hash that covers the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.errors import PlanError
from fleet.inventory import Host
from fleet.plan import load_plan_file, render_for_host

BASE = """name: p
stages:
  - name: files
    steps:
      - name: conf
        template: app.j2
        dest: "/etc/{{ host.name }}/app.conf"
        mode: "0644"
        owner: root:root
  - name: code
    kind: python
    call: tasks.py:deploy
    check: tasks.py:deployed
"""


@pytest.fixture
def plan_dir(tmp_path: Path) -> Path:
    (tmp_path / "app.j2").write_text("x = {{ x }}\n")
    (tmp_path / "tasks.py").write_text("def deploy(c):\n    pass\n\ndef deployed(c):\n    pass\n")
    (tmp_path / "p.yaml").write_text(BASE)
    return tmp_path


def error(plan_dir: Path, text: str) -> PlanError:
    (plan_dir / "p.yaml").write_text(text)
    with pytest.raises(PlanError) as caught:
        load_plan_file(plan_dir / "p.yaml")
    return caught.value


def test_a_plan_with_code_and_files_loads_and_renders(plan_dir: Path) -> None:
    plan = load_plan_file(plan_dir / "p.yaml")
    assert set(plan.code) == {"app.j2", "tasks.py:deploy", "tasks.py:deployed"}
    rendered = render_for_host(plan, Host("web 1", "192.0.2.1"))
    step = rendered.stages[0].steps[0]
    assert step.file is not None
    assert step.file.source == str(plan_dir / "app.j2")
    assert step.file.dest == "/etc/web 1/app.conf"  # fleet quotes it itself, when it uses it
    assert step.apply.startswith("template ") and "mode=0644" in step.apply
    code = rendered.stages[1]
    assert (code.call, code.check, code.base) == (
        "tasks.py:deploy",
        "tasks.py:deployed",
        str(plan_dir),
    )


def test_the_hash_covers_the_code_and_the_files(plan_dir: Path) -> None:
    first = load_plan_file(plan_dir / "p.yaml").hash
    (plan_dir / "tasks.py").write_text(
        "def deploy(c):\n    return 'changed'\n\ndef deployed(c):\n    pass\n"
    )
    second = load_plan_file(plan_dir / "p.yaml").hash
    (plan_dir / "app.j2").write_text("x = {{ x }} # changed\n")
    third = load_plan_file(plan_dir / "p.yaml").hash
    assert len({first, second, third}) == 3


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [
        ('dest: "/etc/{{ host.name }}/app.conf"', "stages.0.steps.0.dest", "absolute path"),
        ('mode: "0644"', "stages.0.steps.0.mode", "octal"),
        ("owner: root:root", "stages.0.steps.0.owner", "USER or USER:GROUP"),
        ("template: app.j2", "stages.0.steps.0.template", "no such file"),
        ("call: tasks.py:deploy", "stages.1.call", "no file"),
        ("check: tasks.py:deployed", "stages.1.check", "neither a .py file nor a module"),
    ],
)
def test_bad_file_and_code_keys_are_named_with_their_line(
    plan_dir: Path, change: str, key: str, message: str
) -> None:
    bad = {
        "dest": 'dest: "etc/app.conf"',
        "mode": 'mode: "rw-r--r--"',
        "owner": "owner: root group",
        "template": "template: missing.j2",
        "call": "call: nothere.py:deploy",
        "check": "check: not a/module:f",
    }[key.rsplit(".", 1)[1]]
    err = error(plan_dir, BASE.replace(change, bad))
    assert err.key == key and message in str(err)
    assert (
        err.line == BASE.splitlines().index(next(x for x in BASE.splitlines() if change in x)) + 1
    )


def test_a_step_has_one_action_and_file_keys_go_with_files(plan_dir: Path) -> None:
    both = BASE.replace(
        "        template: app.j2\n", "        template: app.j2\n        apply: 'true'\n"
    )
    assert "one of `apply`, `put`, `template`" in str(error(plan_dir, both))
    loose = "name: p\nstages:\n  - name: s\n    steps:\n      - name: a\n        apply: 'true'\n        mode: '0644'\n"
    err = error(plan_dir, loose)
    assert err.key == "stages.0.steps.0.mode" and "goes with `put` or `template`" in str(err)


def test_code_digests_cannot_be_written_in_a_plan(plan_dir: Path) -> None:
    err = error(plan_dir, BASE + "code: {tasks.py:deploy: abc}\n")
    assert err.key == "code" and "unknown key" in str(err)


def test_python_keys_belong_to_python_stages(plan_dir: Path) -> None:
    text = "name: p\nstages:\n  - name: s\n    check: tasks.py:deployed\n    steps: ['true']\n"
    err = error(plan_dir, text)
    assert err.key == "stages.0.check" and "only python stages" in str(err)


def test_a_module_call_is_found_without_being_imported(plan_dir: Path) -> None:
    text = "name: p\nstages:\n  - name: s\n    kind: python\n    call: json.decoder:JSONDecoder\n"
    (plan_dir / "p.yaml").write_text(text)
    plan = load_plan_file(plan_dir / "p.yaml")
    assert "json.decoder:JSONDecoder" in plan.code
    missing = text.replace("json.decoder", "no_such_module_here")
    assert "no importable module" in str(error(plan_dir, missing))

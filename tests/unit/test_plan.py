"""Plans: loading with errors that name file, line and key; rendering; ``when``; ad-hoc plans.

The shell-safety tests run rendered commands through a real ``/bin/sh`` (only ``printf``) and
check that every hostile value comes out as exactly one word, byte for byte, with nothing else run.
"""

from __future__ import annotations

import shlex
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.errors import InputError, PlanError
from fleet.inventory import DiskSummary, Host
from fleet.plan import (
    HostPlan,
    Plan,
    adhoc_plan,
    condition_holds,
    host_context,
    load_plan_file,
    parse_plan,
    render,
    render_for_host,
)

HOST = Host(
    name="web-1",
    address="203.0.113.7",
    datacenter="gra3",
    rack="G1",
    service_name="ns1.ip-203-0-113.eu",
    labels={"role": "web", "env": "prod"},
    vars={"app_dir": "/srv/web"},
)


def write(directory: Path, text: str, name: str = "plan.yaml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> InputError:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as info:
        load_plan_file(path)
    assert info.value.path == str(path)
    return info.value


def one_step_plan(apply: str, **extra: Any) -> Plan:
    step = {"name": "s1", "apply": apply, **extra}
    return parse_plan({"name": "p", "stages": [{"name": "main", "steps": [step]}]}, "t.yaml")


# --- loading ----------------------------------------------------------------------------------

FULL = """
name: app-setup
description: set the app up
vars: {app_dir: /srv/app, ports: [80, 443]}
converged: test -f {{ app_dir }}/.done
stages:
  - name: prepare
    steps:
      - name: create the app dir
        check: test -d {{ app_dir }}
        apply: mkdir -p {{ app_dir }}
        verify: test -w {{ app_dir }}
        timeout: 60
        retries: 2
        when: {datacenter: gra3}
        destructive: false
      - echo short form
  - name: rescue
    kind: rescue
"""


def test_full_plan_loads_with_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    plan = load_plan_file(path)
    assert plan.name == "app-setup"
    assert plan.source == str(path)
    assert [s.name for s in plan.stages] == ["prepare", "rescue"]
    assert plan.stages[1].kind == "rescue"
    assert plan.stages[0].kind == "ssh"
    first, short = plan.stages[0].steps
    assert (first.timeout, first.retries, first.when) == (60.0, 2, {"datacenter": "gra3"})
    assert (short.name, short.apply, short.check) == ("echo short form", "echo short form", None)
    assert (short.timeout, short.retries, short.retry_delay) == (600.0, 0, 5.0)
    assert plan.step_keys() == ["prepare/create the app dir", "prepare/echo short form"]


def test_short_form_step_name_is_shortened_but_apply_is_whole() -> None:
    command = "echo " + "x" * 100
    plan = parse_plan({"name": "p", "stages": [{"name": "s", "steps": [command]}]}, "t")
    step = plan.stages[0].steps[0]
    assert step.apply == command
    assert len(step.name) == 60
    assert step.name.endswith("...")


def test_hash_ignores_source_and_follows_content() -> None:
    data = {"name": "p", "stages": [{"name": "s", "steps": ["true"]}]}
    a = parse_plan(data, "a.yaml")
    b = parse_plan(data, "b.yaml")
    changed = parse_plan({"name": "p", "stages": [{"name": "s", "steps": ["false"]}]}, "a.yaml")
    assert a.hash == b.hash
    assert a.hash != changed.hash
    assert len(a.hash) == 16


def test_plan_is_immutable() -> None:
    plan = one_step_plan("true")
    with pytest.raises(ValueError, match="frozen"):
        plan.name = "other"


@pytest.mark.parametrize(
    ("text", "line", "key", "message"),
    [
        pytest.param(
            """
            name: p
            stages:
              - name: s
                steps:
                  - name: a
                    chek: test -f x
                    apply: touch x
            """,
            6,
            "stages.0.steps.0.chek",
            "unknown key",
            id="unknown-step-key",
        ),
        pytest.param(
            """
            name: p
            stagez: []
            stages:
              - name: s
                steps: [a]
            """,
            2,
            "stagez",
            "unknown key",
            id="unknown-top-key",
        ),
        pytest.param(
            """
            name: p
            stages:
              - name: s
                steps:
                  - name: a
                    apply: x
                    timeout: soon
            """,
            7,
            "stages.0.steps.0.timeout",
            "valid number",
            id="wrong-type-timeout",
        ),
        pytest.param(
            """
            name: p
            stages:
              - name: s
                steps:
                  - name: a
                    apply: x
                    retries: 99
            """,
            7,
            "stages.0.steps.0.retries",
            "less than or equal to 20",
            id="retries-out-of-range",
        ),
        pytest.param(
            """
            name: p
            stages:
              - name: s
                steps:
                  - name: a
                    apply: [x, y]
            """,
            6,
            "stages.0.steps.0.apply",
            "valid string",
            id="wrong-type-apply",
        ),
        pytest.param(
            """
            name: p
            stages:
              - name: wipe
                kind: format
            """,
            4,
            "stages.0.kind",
            "'ssh', 'python', 'rescue', 'disk', 'reboot', 'wait_ssh' or 'reinstall'",
            id="unknown-stage-kind",
        ),
        pytest.param(
            """
            name: p
            stages:
              - name: s
                steps: [a]
              - name: s
                steps: [b]
            """,
            5,
            "stages.1.name",
            "duplicate stage name 's'",
            id="duplicate-stage",
        ),
        pytest.param(
            """
            name: p
            stages:
              - name: s
                steps:
                  - name: a
                    apply: x
                  - name: a
                    apply: y
            """,
            7,
            "stages.0.steps.1.name",
            "duplicate step name 'a'",
            id="duplicate-step",
        ),
        pytest.param(
            """
            name: p
            stages:
              - name: first
                steps: [a]
              - name: empty
            """,
            5,
            "stages.1",
            "stage 'empty' has no steps",
            id="ssh-stage-without-steps",
        ),
        pytest.param(
            """
            name: p
            stages:
              - name: boot
                kind: reboot
                steps: [echo hi]
            """,
            5,
            "stages.0.steps",
            "a reboot stage takes no steps",
            id="provider-stage-with-steps",
        ),
        pytest.param(
            """
            name: p
            stages:
              - name: s
                steps:
                  - name: harmless
                    apply: "true"
                  - name: wipe
                    apply: wipefs -a /dev/sdb
                    destructive: true
            """,
            7,
            "stages.0.steps.1",
            "destructive step needs a `check`",
            id="destructive-without-check",
        ),
        pytest.param(
            """
            name: p
            stages: []
            """,
            2,
            "stages",
            "at least 1 item",
            id="empty-stages",
        ),
        pytest.param(
            """
            name: p
            vars:
              deep: {a: 1}
            stages:
              - name: s
                steps: [a]
            """,
            3,
            "vars.deep",
            "",
            id="nested-var",
        ),
        pytest.param(
            """
            name: p
            stages:
              - name: s
                steps:
                  - name: a
                    apply: x
                    when: {dc: [gra3, rbx]}
            """,
            7,
            "stages.0.steps.0.when",
            "",
            id="when-with-list",
        ),
    ],
)
def test_plan_error_names_file_line_and_key(
    tmp_path: Path, text: str, line: int, key: str, message: str
) -> None:
    err = load_error(tmp_path, text)
    assert isinstance(err, PlanError)
    assert (err.line, err.key) == (line, key)
    assert message in str(err)
    assert str(err).startswith(f"{tmp_path / 'plan.yaml'}:{line}: {key}: ")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("stages:\n  - name: s\n    steps: [a]\n", "name"),
        ("name: p\nstages:\n  - name: s\n    steps:\n      - name: a\n", "stages.0.steps.0.apply"),
    ],
)
def test_missing_required_key_is_named(tmp_path: Path, text: str, key: str) -> None:
    err = load_error(tmp_path, text)
    assert err.key == key


def test_a_typo_is_named_before_the_missing_key_it_causes(tmp_path: Path) -> None:
    err = load_error(tmp_path, "name: p\nstages:\n  - name: s\n    steps:\n      - aply: x\n")
    assert (err.line, err.key) == (5, "stages.0.steps.0.aply")
    assert "unknown key" in str(err)


def test_missing_required_key_still_gives_the_line(tmp_path: Path) -> None:
    err = load_error(tmp_path, "name: p\nstages:\n  - name: s\n    steps:\n      - name: a\n")
    assert err.line == 5
    assert "Field required" in str(err)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "", "42\n"])
def test_a_plan_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    err = load_error(tmp_path, text)
    assert isinstance(err, PlanError)
    assert err.line == 1
    assert "a plan is a mapping" in str(err)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    err = load_error(
        tmp_path,
        """
        name: p
        stages:
          - name: s
            steps: [a
          - name: t
        """,
    )
    assert err.line == 5
    assert "YAML syntax error" in str(err)


def test_duplicate_yaml_key_in_a_plan(tmp_path: Path) -> None:
    err = load_error(
        tmp_path,
        """
        name: p
        stages:
          - name: s
            steps:
              - name: a
                apply: x
                apply: y
        """,
    )
    assert (err.line, err.key) == (7, "stages.0.steps.0.apply")


def test_parse_plan_without_lines_still_names_the_key() -> None:
    with pytest.raises(PlanError) as info:
        parse_plan({"name": "p", "stages": [{"name": "s", "steps": ["a"], "kin": "x"}]}, "py")
    assert (info.value.path, info.value.line, info.value.key) == ("py", None, "stages.0.kin")


# --- rendering --------------------------------------------------------------------------------


def test_host_vars_override_plan_vars() -> None:
    plan = parse_plan(
        {
            "name": "p",
            "vars": {"app_dir": "/srv/default", "user": "app"},
            "stages": [{"name": "s", "steps": ["mkdir {{ app_dir }} {{user}}"]}],
        },
        "t",
    )
    hp = render_for_host(plan, HOST)
    assert hp.stages[0].steps[0].apply == "mkdir /srv/web app"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ host.name }}", "web-1"),
        ("{{ host.address }}", "203.0.113.7"),
        ("{{ host.datacenter }}", "gra3"),
        ("{{ host.rack }}", "G1"),
        ("{{ host.service }}", "ns1.ip-203-0-113.eu"),
        ("{{ host.labels.role }}/{{ labels.env }}", "web/prod"),
        ("{{ datacenter }}-{{ rack }}", "gra3-G1"),
        ("{{hybrid}}", "false"),
    ],
)
def test_host_facts(template: str, expected: str) -> None:
    hp = render_for_host(one_step_plan(template), HOST)
    assert hp.stages[0].steps[0].apply == expected


def test_hybrid_fact_follows_the_disks() -> None:
    host = Host(name="h", address="a", disks=DiskSummary(hybrid=True, system_type="NVME"))
    assert host_context(host, {})["hybrid"] is True


def test_undefined_variable_names_variable_and_step() -> None:
    plan = one_step_plan("rm -f {{ nope }}")
    with pytest.raises(PlanError) as info:
        render_for_host(plan, HOST)
    assert "undefined variable 'nope'" in str(info.value)
    assert info.value.key == "stages.main.s1.apply"
    assert info.value.path == "t.yaml"


def test_undefined_variable_in_check_and_converged() -> None:
    with pytest.raises(PlanError) as info:
        render_for_host(one_step_plan("true", check="test -e {{ marker }}"), HOST)
    assert info.value.key == "stages.main.s1.check"
    plan = parse_plan(
        {"name": "p", "converged": "test {{ gone }}", "stages": [{"name": "s", "steps": ["a"]}]},
        "t",
    )
    with pytest.raises(PlanError, match="'gone'") as info:
        render_for_host(plan, HOST)
    assert info.value.key == "converged"


def test_missing_label_is_undefined() -> None:
    with pytest.raises(PlanError, match=r"'host\.labels\.team'"):
        render_for_host(one_step_plan("echo {{ host.labels.team }}"), HOST)


def test_unset_host_fact_is_undefined_not_the_word_none() -> None:
    host = Host(name="h", address="a")  # no datacenter
    with pytest.raises(PlanError, match=r"'host\.datacenter'"):
        render_for_host(one_step_plan("echo {{ host.datacenter }}"), host)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["a b", "c", "$x"], "'a b' c '$x'"),
        ([80, 443], "80 443"),
        ([], ""),
        (True, "true"),
        (False, "false"),
        (3, "3"),
        (2.5, "2.5"),
        ("", "''"),
    ],
)
def test_value_quoting(value: Any, expected: str) -> None:
    assert render("{{ v }}", {"v": value}, where="w", source="s") == expected


def test_list_var_is_several_words_in_the_shell() -> None:
    plan = parse_plan(
        {
            "name": "p",
            "vars": {"pkgs": ["nginx", "a b"]},
            "stages": [{"name": "s", "steps": ["x"]}],
        },
        "t",
    )
    out = render("printf '<%s>' {{ pkgs }}", host_context(HOST, plan.vars), where="w", source="s")
    assert shlex.split(out) == ["printf", "<%s>", "nginx", "a b"]


def test_placeholders_in_values_are_not_expanded_again() -> None:
    ctx = {"a": "{{ b }}", "b": "secret"}
    assert render("echo {{ a }}", ctx, where="w", source="s") == "echo '{{ b }}'"


def test_text_that_is_not_a_placeholder_stays() -> None:
    text = "awk '{ print $1 }' {{bad name}} {{ 1x }} ${HOME}"
    assert render(text, {}, where="w", source="s") == text


def test_render_for_host_keeps_step_settings_and_marks_destructive() -> None:
    plan = parse_plan(
        {
            "name": "p",
            "stages": [
                {
                    "name": "disks",
                    "timeout": 30,
                    "steps": [
                        {
                            "name": "wipe",
                            "check": "test -e /done",
                            "apply": "wipefs {{ host.name }}",
                            "verify": "true",
                            "destructive": True,
                            "timeout": 5,
                            "retries": 1,
                            "retry_delay": 0,
                        }
                    ],
                },
                {"name": "boot", "kind": "reboot"},
            ],
        },
        "t",
    )
    hp = render_for_host(plan, HOST)
    assert isinstance(hp, HostPlan)
    step = hp.stages[0].steps[0]
    assert (step.key, step.apply, step.timeout, step.retries, step.retry_delay) == (
        "disks/wipe",
        "wipefs web-1",
        5,
        1,
        0,
    )
    assert hp.stages[0].timeout == 30
    assert (hp.stages[1].kind, hp.stages[1].steps) == ("reboot", ())
    assert hp.destructive_steps == ["disks/wipe"]
    assert hp.to_dict()["stages"][0]["steps"][0]["check"] == "test -e /done"


def test_when_skips_stages_and_steps_and_reports_them() -> None:
    plan = parse_plan(
        {
            "name": "p",
            "stages": [
                {"name": "rbx-only", "when": {"datacenter": "rbx"}, "steps": ["a"]},
                {
                    "name": "main",
                    "steps": [
                        {"name": "web", "apply": "w", "when": {"labels.role": "web"}},
                        {"name": "db", "apply": "d", "when": {"labels.role": "db"}},
                        {"name": "not-hybrid", "apply": "n", "when": "not hybrid"},
                    ],
                },
            ],
        },
        "t",
    )
    hp = render_for_host(plan, HOST)
    assert [s.name for s in hp.stages] == ["main"]
    assert [s.name for s in hp.stages[0].steps] == ["web", "not-hybrid"]
    assert hp.skipped == ("rbx-only", "main/db")


def test_skipped_step_is_not_rendered() -> None:
    # An undefined variable in a step whose `when` is false is no error.
    plan = one_step_plan("echo {{ undefined }}", when={"datacenter": "bhs"})
    hp = render_for_host(plan, HOST)
    assert hp.stages[0].steps == ()


def test_converged_is_rendered_per_host() -> None:
    plan = parse_plan(
        {
            "name": "p",
            "converged": "test -f {{ app_dir }}/.done",
            "stages": [{"name": "s", "steps": ["a"]}],
        },
        "t",
    )
    assert render_for_host(plan, HOST).converged == "test -f /srv/web/.done"
    assert render_for_host(one_step_plan("a"), HOST).converged is None


# --- shell safety -----------------------------------------------------------------------------

HOSTILE = [
    "$(touch {t}/pwned)",
    "`touch {t}/pwned`",
    "a; touch {t}/pwned",
    "a && touch {t}/pwned",
    "a | touch {t}/pwned",
    "' || touch {t}/pwned || '",
    "' ; touch {t}/pwned ; '",
    '" ; touch {t}/pwned ; "',
    "\\'; touch {t}/pwned; echo \\'",
    "x\ntouch {t}/pwned",
    "x\rtouch {t}/pwned",
    "> {t}/pwned",
    "a & touch {t}/pwned &",
    "${{IFS}}touch${{IFS}}{t}/pwned",
    "$HOME",
    "~root",
    "*",
    "-n",
    "--help",
    "back\\slash\\n\\c",
    "it's",
    '"double"',
    "tab\there",
    "é ünïcødé 🚀 ♥",
    "",
    " ",
    "  leading and trailing  ",
    "{{ other }}",
    "%s %d %%",
]


def run_sh(command: str, cwd: Path) -> bytes:
    """Run ``command`` with /bin/sh in ``cwd``; returns stdout (must succeed, no stderr)."""
    proc = subprocess.run(
        ["/bin/sh", "-c", command],
        cwd=cwd,
        capture_output=True,
        timeout=10,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    return proc.stdout


@pytest.mark.parametrize("pattern", HOSTILE)
def test_hostile_value_stays_one_word(tmp_path: Path, pattern: str) -> None:
    value = pattern.format(t=tmp_path)
    plan = parse_plan(
        {"name": "p", "vars": {"v": value}, "stages": [{"name": "s", "steps": ["x"]}]}, "t"
    )
    template = (
        "printf '%s' {{ v }}" if not value.startswith("-") else "printf '%s' {{ v | option }}"
    )
    command = render(template, host_context(HOST, plan.vars), where="w", source="t")
    assert run_sh(command, tmp_path) == value.encode()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("pattern", HOSTILE[:8])
def test_hostile_values_through_echo_facts_and_lists(tmp_path: Path, pattern: str) -> None:
    value = pattern.format(t=tmp_path)
    host = Host(
        name=value,
        address=value,
        labels={"x": value},
        vars={"v": value, "l": [value, value]},
    )
    plan = one_step_plan(
        "echo {{ v }}; echo {{ host.name }} {{ host.address }}; echo {{ host.labels.x }}; "
        "printf '<%s>' {{ l }}"
    )
    command = render_for_host(plan, host).stages[0].steps[0].apply
    out = run_sh(command, tmp_path).decode()
    assert out == f"{value}\n{value} {value}\n{value}\n<{value}><{value}>"
    assert list(tmp_path.iterdir()) == []


# Text the shell can carry: no NUL (argv cannot hold it), no lone surrogates (not encodable).
SHELL_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
    max_size=40,
)


@settings(max_examples=300, deadline=None, database=None)
@given(value=SHELL_TEXT)
def test_any_value_is_exactly_one_shell_word(value: str) -> None:
    command = render("printf %s {{ v | option }} done", {"v": value}, where="w", source="t")
    assert shlex.split(command) == ["printf", "%s", value, "done"]


@settings(max_examples=60, deadline=None, database=None)
@given(value=SHELL_TEXT)
def test_any_value_round_trips_through_sh(
    tmp_path_factory: pytest.TempPathFactory, value: str
) -> None:
    cwd = tmp_path_factory.mktemp("sh")
    command = render("printf '%s' {{ v | option }}", {"v": value}, where="w", source="t")
    assert run_sh(command, cwd) == value.encode()
    assert list(cwd.iterdir()) == []


# --- when -------------------------------------------------------------------------------------

CTX = {"ready": True, "off": False, "empty": "", "dc": "gra3", "n": 3, "flag": "true"}


@pytest.mark.parametrize(
    ("when", "holds"),
    [
        (None, True),
        ("ready", True),
        ("off", False),
        ("empty", False),
        ("missing", False),
        ("not ready", False),
        ("not off", True),
        ("not missing", True),
        ("  not   off  ", True),
        ({"dc": "gra3"}, True),
        ({"dc": "rbx"}, False),
        ({"n": 3}, True),
        ({"n": "3"}, True),
        ({"ready": True}, True),
        ({"off": False}, True),
        ({"dc": "gra3", "n": 4}, False),
        ({"missing": "x"}, False),
        ({}, True),
    ],
)
def test_condition_holds(when: Any, holds: bool) -> None:
    assert condition_holds(when, CTX) is holds


def test_missing_name_never_satisfies_an_equality() -> None:
    assert condition_holds({"missing": "None"}, CTX) is False


# --- ad-hoc plans -----------------------------------------------------------------------------


def test_adhoc_plan_runs_commands_in_order() -> None:
    plan = adhoc_plan(["uptime", "df -h", "uptime"])
    assert plan.source == "adhoc"
    assert [s.name for s in plan.stages] == ["commands"]
    steps = plan.stages[0].steps
    assert [s.apply for s in steps] == ["uptime", "df -h", "uptime"]
    assert [s.name for s in steps] == ["01 uptime", "02 df -h", "03 uptime"]


def test_adhoc_plan_long_command_and_name() -> None:
    command = "echo " + "y" * 200
    plan = adhoc_plan([command], name="check")
    step = plan.stages[0].steps[0]
    assert plan.name == "check"
    assert step.apply == command
    assert step.name == "01 " + command[:50]


def test_adhoc_plan_without_commands_is_refused() -> None:
    with pytest.raises(PlanError, match="no steps"):
        adhoc_plan([])


def test_adhoc_commands_are_rendered_like_plan_steps() -> None:
    hp = render_for_host(adhoc_plan(["hostname {{ host.name }}"]), HOST)
    assert hp.stages[0].steps[0].apply == "hostname web-1"

"""Option-safe placeholders: a rendered word that starts with ``-`` is refused unless the plan
says ``{{ NAME | option }}``, wherever a value is rendered (vars, inventory vars, host facts,
``--var``, lists, numbers, stage facts; apply, check, verify, converged; steps ``when`` keeps).

Quoting keeps a value one word; it cannot stop the command from reading that word as an option.
The proof runs through a real /bin/sh: ``sort {{ out }}`` with ``out: -o<file>`` writes a file
when the plan lets the placeholder be an option, and is refused (nothing runs) when it does not.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.errors import PlanError
from fleet.inventory import Host
from fleet.plan import host_context, parse_plan, render, render_for_host, render_stage, with_facts

HOST = Host(name="srv-007", address="192.0.2.7", datacenter="gra3", labels={"role": "db"})


def plan_of(steps: list[dict[str, Any]], **extra: Any) -> Any:
    return parse_plan({"name": "p", "stages": [{"name": "s", "steps": steps}], **extra}, "p.yaml")


def sh(command: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["/bin/sh", "-c", command],
        cwd=cwd,
        capture_output=True,
        timeout=10,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)},
        stdin=subprocess.DEVNULL,
    )


def test_the_danger_is_real_and_the_guard_stops_it(tmp_path: Path) -> None:
    """The same value: run as an option when allowed, refused (before anything runs) when not."""
    target = tmp_path / "pwned"
    ctx = host_context(HOST, {"out": f"-o{target}"})
    allowed = render("sort {{ out | option }} </dev/null", ctx, where="w", source="p.yaml")
    assert sh(allowed, tmp_path).returncode == 0
    assert target.exists()  # sort took the quoted word as -o FILE: quoting alone is no guard
    target.unlink()
    with pytest.raises(PlanError) as info:
        render("sort {{ out }} </dev/null", ctx, where="stages.s.x.apply", source="p.yaml")
    message = str(info.value)
    assert message.startswith("p.yaml: stages.s.x.apply: host srv-007: {{ out }} would start")
    assert "| option" in (info.value.hint or "")
    assert not target.exists()


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("-oProxyCommand=touch /tmp/x", "'-oProxyCommand=touc..."),
        ("--help", "'--help'"),
        ("-", "'-'"),
        (-5, "'-5'"),  # a negative number is a word starting with '-' as well
        (-0.5, "'-0.5'"),
        (["ok", "-rf"], "'-rf'"),  # a list renders one word per item: each is checked
        (["-x"], "'-x'"),
    ],
)
def test_a_word_starting_with_a_dash_is_refused(value: Any, shown: str) -> None:
    with pytest.raises(PlanError, match=f"host srv-007: {{{{ v }}}} would start .*{shown}"):
        render("cmd {{ v }}", host_context(HOST, {"v": value}), where="w", source="p")


@pytest.mark.parametrize(
    "value",
    [" -x", "a-b", "x-", "/dev/-x", "+x", "", 5, 0, -0, True, False, ["a", "b-c"], [], "\n-x"],
)
def test_words_that_do_not_start_with_a_dash_pass(value: Any) -> None:
    render("cmd {{ v }}", {"v": value}, where="w", source="p")


def test_only_the_option_filter_exists() -> None:
    for template in ("{{ v | options }}", "{{ v | upper }}", "{{ v | }}", "{{ v|Option }}"):
        with pytest.raises(PlanError, match="unknown filter"):
            render(template, {"v": "x"}, where="w", source="p")
    assert render("{{ v|option }} {{v | option}}", {"v": "-x"}, where="w", source="p") == "-x -x"
    # not placeholders at all (Go templates in docker's -f): left alone, as before
    assert render("docker inspect -f '{{.State}}'", {}, where="w", source="p").endswith("'")


def test_every_rendered_place_is_checked() -> None:
    dash = {"vars": {"v": "-x"}}
    places: list[dict[str, Any]] = [
        {"steps": [{"name": "a", "apply": "echo {{ v }}"}]},
        {"steps": [{"name": "a", "apply": "true", "check": "test {{ v }}"}]},
        {"steps": [{"name": "a", "apply": "true", "verify": "test {{ v }}"}]},
        {"steps": [{"name": "a", "apply": "true"}], "converged": "test {{ v }}"},
    ]
    for place in places:
        steps = place.pop("steps")
        with pytest.raises(PlanError, match=r"\{\{ v \}\} would start"):
            render_for_host(plan_of(steps, **dash, **place), HOST)


def test_inventory_vars_host_facts_and_labels_are_checked() -> None:
    plan = plan_of([{"name": "a", "apply": "echo {{ host.labels.role }} {{ flags }}"}])
    evil = Host(name="srv-1", address="192.0.2.1", labels={"role": "-rf"}, vars={"flags": "x"})
    with pytest.raises(PlanError, match=r"host srv-1: \{\{ host.labels.role \}\}"):
        render_for_host(plan, evil)
    evil = Host(name="srv-2", address="192.0.2.2", labels={"role": "db"}, vars={"flags": "-f"})
    with pytest.raises(PlanError, match=r"host srv-2: \{\{ flags \}\}"):
        render_for_host(plan, evil)


def test_a_step_whose_when_is_false_is_not_rendered_nor_refused() -> None:
    plan = plan_of(
        [
            {"name": "gra", "apply": "echo {{ v }}", "when": {"datacenter": "gra3"}},
            {"name": "rbx", "apply": "echo {{ w }}", "when": {"datacenter": "rbx8"}},
        ],
        vars={"v": "fine", "w": "-never-rendered-here"},
    )
    rendered = render_for_host(plan, HOST)
    assert [s.apply for s in rendered.stages[0].steps] == ["echo fine"]
    other = Host(name="srv-9", address="192.0.2.9", datacenter="rbx8")
    with pytest.raises(PlanError, match=r"host srv-9: \{\{ w \}\}"):
        render_for_host(plan, other)


def test_stage_facts_are_checked_when_their_stage_renders() -> None:
    """``fleet plan`` cannot know facts (they render ``<facts.X>``); the pipeline renders each
    stage with the facts gathered so far, and a dash there stops the host before the stage."""
    plan = plan_of([{"name": "mk", "apply": "mkfs {{ facts.dev }} && {{ facts.cmd | option }}"}])
    assert render_for_host(plan, HOST).stages[0].steps[0].apply == (
        "mkfs <facts.dev> && <facts.cmd>"
    )
    ctx = host_context(HOST, plan.vars)
    ok, _ = render_stage(plan, plan.stages[0], with_facts(ctx, {"dev": "/dev/md0", "cmd": "-x"}))
    assert ok is not None and ok.steps[0].apply == "mkfs /dev/md0 && -x"
    with pytest.raises(PlanError, match=r"host srv-007: \{\{ facts.dev \}\}"):
        render_stage(plan, plan.stages[0], with_facts(ctx, {"dev": "-oops", "cmd": "x"}))


# Text the shell can carry: no NUL (argv cannot hold it), no lone surrogates (not encodable).
SHELL_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
    max_size=30,
)
WORDS = st.one_of(
    SHELL_TEXT,
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.lists(SHELL_TEXT, max_size=4),
)


@settings(max_examples=300, deadline=None, database=None)
@given(value=WORDS)
def test_a_value_renders_as_words_none_of_which_is_an_option(value: Any) -> None:
    items = value if isinstance(value, list) else [value]
    words = [str(item) for item in items]
    try:
        command = render("printf '<%s>' {{ v }}", {"v": value}, where="w", source="p")
    except PlanError:
        assert any(word.startswith("-") for word in words)
        return
    assert shlex.split(command)[2:] == words
    assert not any(word.startswith("-") for word in words)


@settings(max_examples=60, deadline=None, database=None)
@given(value=WORDS)
def test_through_sh_a_rendered_command_gets_the_values_as_plain_arguments(
    tmp_path_factory: pytest.TempPathFactory, value: Any
) -> None:
    """``printf`` takes ``--``-less arguments: a value it received as an option would change
    its output or fail; what reaches it is exactly the values, none of them an option."""
    cwd = tmp_path_factory.mktemp("sh")
    items = [str(item) for item in (value if isinstance(value, list) else [value])]
    try:
        command = render("printf '<%s>' x {{ v }}", {"v": value}, where="w", source="p")
    except PlanError:
        return
    proc = sh(command, cwd)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "".join(f"<{word}>" for word in ["x", *items]).encode()
    assert list(cwd.iterdir()) == []

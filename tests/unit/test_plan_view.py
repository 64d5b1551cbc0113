"""What `fleet plan` prints (full, --summary, --host) and the --confirm rule, from pure data."""

from __future__ import annotations

import re

import pytest

from fleet.cli.confirm import CONFIRMED_OPTION, confirm_destructive, destructive_hosts
from fleet.engine.batching import make_batches
from fleet.errors import UsageError
from fleet.inventory import Host
from fleet.plan import parse_plan, render_for_host
from fleet.render import Defaults, format_seconds, plan_lines, shape_lines

PLAN = {
    "name": "app",
    "stages": [
        {"name": "rescue", "kind": "rescue"},
        {
            "name": "disks",
            "when": "spare_disks",
            "steps": [
                {"name": "inspect", "apply": "lsblk {{ host.name }}", "timeout": 90},
                {
                    "name": "wipe",
                    "check": "test -f /done",
                    "apply": "wipefs -a /dev/sdb",
                    "destructive": True,
                    "retries": 2,
                    "retry_delay": 5,
                },
            ],
        },
        {"name": "note", "steps": ["echo {{ host.labels.note }}"]},
    ],
}


def hosts() -> list[Host]:
    out = []
    for i in range(6):
        dc = ("gra3", "rbx8")[i % 2]
        out.append(
            Host(
                name=f"srv-{i:03d}",
                address=f"10.0.0.{i}",
                datacenter=dc,
                labels={"note": "\x1b]0;pwned\x07\x1b[2Jhi" if i == 0 else "ok"},
                vars={"spare_disks": i < 4},
            )
        )
    return out


def view(summary: bool, only: int | None = None) -> str:
    plan = parse_plan(PLAN, "app.yaml")
    selected = hosts()
    rendered = [render_for_host(plan, h) for h in selected]
    shown = rendered if only is None else [rendered[only]]
    batches = make_batches(selected, "1,100%", serial_by="datacenter")
    lines = plan_lines(plan, shown, batches, Defaults(900, 2), summary=summary, total=len(selected))
    return "\n".join(lines)


def test_full_view_shows_limits_and_escapes_values() -> None:
    text = view(summary=False)
    assert "\x1b" not in text and "\x07" not in text
    assert "echo '\\x1b]0;pwned\\x07\\x1b[2Jhi'" in text
    assert "step inspect  (timeout 1m30s)" in text
    assert "step wipe  DESTRUCTIVE  (timeout 10m, 2 retries (backoff from 5s, with jitter))" in text
    assert "stage rescue [rescue]  (waits up to 15m)" in text
    assert text.count("\nhost srv-") == 6
    assert "retried 2 times (rollout.infra_retries)" in text


def test_summary_groups_hosts_by_their_steps_and_counts_destructive_hosts() -> None:
    text = view(summary=True)
    assert "\nhost srv-" not in text  # no per-host detail
    assert "hosts by the steps they run (2 groups):" in text
    assert "1. 4 hosts: srv-000, srv-001, srv-002, srv-003" in text
    assert "rescue [rescue] > disks: 2 steps (1 destructive) > note: 1 step" in text
    assert "2. 2 hosts: srv-004, srv-005" in text
    assert "skipped (when): disks" in text
    assert "destructive steps, on 4 hosts:" in text
    assert "a rollout needs --confirm 4 (or the names of those hosts)" in text
    assert "disks/wipe: 4 hosts: srv-000, srv-001, srv-002, srv-003" in text
    # one datacenter at a time: each batch names its datacenter
    assert "  1: 1 host (gra3 1)\n  2: 2 hosts (gra3 2)\n  3: 1 host (rbx8 1)" in text


def test_host_view_shows_one_host_but_counts_them_all() -> None:
    text = view(summary=False, only=4)
    assert "on 6 hosts" in text and text.count("\nhost srv-") == 1 and "host srv-004" in text
    assert "leases: one per host (6)" in text
    assert "destructive steps: none" in text  # srv-004 is not hybrid


def test_shapes_ignore_host_specific_values() -> None:
    plan = parse_plan(PLAN, "app.yaml")
    rendered = [render_for_host(plan, h) for h in hosts()[:4]]
    assert len({r.stages[1].steps[0].apply for r in rendered}) == 4  # commands differ...
    assert shape_lines(rendered)[0] == "hosts by the steps they run (1 group):"  # ...shape not


@pytest.mark.parametrize(
    ("seconds", "text"), [(600, "10m"), (90, "1m30s"), (0.5, "0.5s"), (5400, "1h30m"), (0, "0s")]
)
def test_format_seconds(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


def rendered_plan() -> tuple[object, list[object]]:
    plan = parse_plan(PLAN, "app.yaml")
    return plan, [render_for_host(plan, h) for h in hosts()]


@pytest.mark.parametrize("given", ["4", " 4 ", "srv-003,srv-002,srv-001,srv-000"])
def test_confirm_by_count_or_names(given: str) -> None:
    plan, rendered = rendered_plan()
    assert confirm_destructive(plan, rendered, given) == {  # type: ignore[arg-type]
        CONFIRMED_OPTION: ["srv-000", "srv-001", "srv-002", "srv-003"]
    }


@pytest.mark.parametrize(
    ("given", "error"),
    [
        (None, "confirm with --confirm 4 (or the host names)"),
        ("6", "on 4 host(s), not 6"),
        ("srv-000,srv-001,srv-002", "not named: srv-003"),
        ("srv-000,srv-001,srv-002,srv-003,srv-004", "no destructive step on: srv-004"),
        ("all", "not named: srv-000"),
    ],
)
def test_confirm_refuses_what_does_not_match(given: str | None, error: str) -> None:
    plan, rendered = rendered_plan()
    with pytest.raises(UsageError, match=re.escape(error)) as caught:
        confirm_destructive(plan, rendered, given)  # type: ignore[arg-type]
    assert "nothing was changed" in caught.value.message
    hint = caught.value.hint or ""
    want = "`fleet plan PLAN --summary`" if given is None else "--confirm 4, or --confirm srv-000"
    assert hint.startswith(want)


def test_a_plan_without_destructive_steps_needs_no_confirmation() -> None:
    plan = parse_plan({"name": "x", "stages": [{"name": "s", "steps": ["true"]}]}, "x.yaml")
    rendered = [render_for_host(plan, h) for h in hosts()]
    assert destructive_hosts(rendered) == ([], [])
    assert confirm_destructive(plan, rendered, None) == {}

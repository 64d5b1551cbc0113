"""The operator's day: each thing a new operator found wrong, replayed against a sandbox of its
own, and what they now see (preflight before any host, one-line errors, a heartbeat on every
wait, plans one can review, escaped output, batches by topology, the HTML report)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from fleet.sandbox.sandbox import Sandbox
from tests.conftest import FleetCli
from tests.integration.operator_rig import (
    Contacts,
    fleet_with,
    own_sandbox,
    plan_file,
    runs,
    silent_listener,
)
from tests.integration.test_rollout import events_of

pytestmark = pytest.mark.integration

#: The box's hybrid servers, named (``--limit hybrid`` would ask OVH which they are).
HYBRID = "srv-001,srv-004,srv-007,srv-002,srv-005,srv-008"
RAW = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # what must never reach a terminal
HEARTBEAT = re.compile(r"^\S+ (\S+) still (waiting for|running) (.+): (\S+) so far")

RESCUE = """
name: rescue-check
stages:
  - name: rescue
    kind: rescue
  - name: back
    kind: disk
"""
HELLO = """
name: hello
stages:
  - name: s
    steps:
      - name: mark
        check: test -f "$HOME"/TID
        apply: touch "$HOME"/TID
"""


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with own_sandbox(tmp_path_factory.mktemp("operator-day")) as sandbox:
        yield sandbox


@pytest.fixture
def contacts(box: Sandbox) -> Iterator[Contacts]:
    counts = Contacts(box)
    try:
        yield counts
    finally:
        assert box.api is not None
        box.api.reset_chaos()


def one_line_error(proc: object, code: int = 3) -> str:
    """The error line of a refused command: exit ``code``, only error/hint lines, no trace."""
    stderr = getattr(proc, "stderr", "")
    lines = [x for x in stderr.splitlines() if x.startswith(("error: ", "hint: "))]
    assert getattr(proc, "returncode", None) == code, stderr
    assert lines and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


# -- Found: no preflight -------------------------------------------------------------------------


def test_missing_credentials_key_address_or_function_are_found_before_any_host(
    box: Sandbox, tmp_path: Path, contacts: Contacts
) -> None:
    empty = tmp_path / "empty-ovh.conf"
    empty.write_text("[default]\nendpoint=fleet-sandbox\n")
    no_creds = fleet_with(box, tmp_path / "creds", ovh__config_file=str(empty))
    rescue = plan_file(tmp_path, RESCUE, "rescue.yaml")
    proc = no_creds("preflight", str(rescue), "--limit", "srv-001,srv-002")
    assert "FAIL  OVH API" in proc.stdout and "Missing authentication information" in proc.stdout
    assert "error: preflight: OVH client settings" in one_line_error(proc)

    no_key = fleet_with(box, tmp_path / "key", ssh__key_file=str(tmp_path / "nope"))
    proc = no_key("preflight", str(plan_file(tmp_path, HELLO)), "--limit", "srv-001,srv-002")
    line = one_line_error(proc)
    assert f"srv-001 and 1 other host(s): cannot load SSH key {tmp_path / 'nope'}" in line

    # an address that cannot be one is refused with the inventory (one that does not resolve is
    # preflight's: a unit test, as a lookup would leave this machine)
    inventory = tmp_path / "bad-address.yaml"
    inventory.write_text("all:\n  hosts:\n    lost: {ansible_host: 'db 01'}\n")
    proc = FleetCli(tmp_path / "s3", box.config_path)(
        "-i", str(inventory), "preflight", str(plan_file(tmp_path, HELLO)), "--limit", "lost"
    )
    assert "bad-address.yaml:3: ansible_host: 'db 01' must be one word" in one_line_error(proc)

    missing = plan_file(
        tmp_path,
        "name: py\nstages:\n  - name: f\n    kind: python\n    call: fleet.plans.hybrid_raid:nope\n",
        "py.yaml",
    )
    fleet = FleetCli(tmp_path / "s4", box.config_path)
    for command in ("plan", "preflight"):
        proc = fleet(command, str(missing), "--limit", "srv-001")
        assert "'fleet.plans.hybrid_raid:nope'" in one_line_error(proc)
        assert "has no attribute 'nope'" in proc.stderr
    assert (contacts.ssh, contacts.api) == (0, 0), "preflight and plan touch no host, no API"
    assert runs(no_creds) == runs(no_key) == runs(fleet) == []


def test_preflight_passes_with_one_api_call_and_no_ssh(
    box: Sandbox, tmp_path: Path, contacts: Contacts
) -> None:
    fleet = FleetCli(tmp_path / "state", box.config_path)
    proc = fleet("preflight", str(plan_file(tmp_path, RESCUE)), "--limit", HYBRID, check=0)
    assert (
        "ok    OVH API: authenticated (1 call); 6 host(s)' services on the account" in proc.stdout
    )
    assert "ok    SSH keys: 6 host(s) have a usable key, rescue key readable" in proc.stdout
    assert proc.stdout.rstrip().endswith("preflight passed; nothing was changed")
    # python-ovh's unsigned GET /auth/time, then the one signed call: the account's servers
    assert (contacts.api, contacts.ssh) == (2, 0)


# -- Found: tracebacks in normal output ------------------------------------------------------------


def test_hosts_whose_sshd_never_answers_fail_in_one_line_each(box: Sandbox, tmp_path: Path) -> None:
    fleet = fleet_with(
        box,
        tmp_path,
        ssh__connect_timeout=1.0,
        rollout__infra_retries=0,
        output__heartbeat=1.0,
    )
    with silent_listener() as port:
        inventory = tmp_path / "booting.yaml"
        hosts = "".join(
            f"    boot-{i}: {{ansible_host: 127.0.0.1, ansible_port: {port}}}\n" for i in range(3)
        )
        inventory.write_text(f"all:\n  hosts:\n{hosts}")
        proc = fleet(
            "-i", str(inventory), "run", "--limit", "all", "-f", "3", "--batches", "100%", "true"
        )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr + proc.stdout and "paramiko" not in proc.stderr
    assert len(proc.stderr.splitlines()) <= 6, proc.stderr  # summary, 3 hosts, hint
    for i in range(3):
        assert (
            f"  boot-{i}: failed (infrastructure): boot-{i}: cannot connect to 127.0.0.1:"
            in proc.stderr
        )
    # paramiko's own complaint is in the journal, one line per attempt, with its host
    run_id = runs(fleet)[0]
    notes = [e for e in events_of(fleet, run_id) if e.kind == "host.ssh"]
    assert notes and {e.host for e in notes} <= {"boot-0", "boot-1", "boot-2"}
    assert all(e.excerpt and "\n" not in e.excerpt for e in notes)
    # and the silent wait was not silent: heartbeat lines name the step and why it waits
    beats = [m for x in proc.stdout.splitlines() if (m := HEARTBEAT.match(x))]
    assert beats, proc.stdout
    assert {m.group(1) for m in beats} <= {"boot-0", "boot-1", "boot-2"}


# -- Found: silence on long waits ----------------------------------------------------------------


def test_plain_output_names_every_wait_of_a_reboot(box: Sandbox, tmp_path: Path) -> None:
    from dataclasses import replace

    assert box.api is not None
    quick = box.api.model.timings
    box.api.set_timings(replace(quick, reboot_doing=3.0))
    try:
        fleet = fleet_with(box, tmp_path, output__heartbeat=1.0)
        plan = plan_file(tmp_path, "name: r\nstages:\n  - name: restart\n    kind: reboot\n")
        proc = fleet("rollout", str(plan), "--limit", "srv-004", "--output", "plain", check=0)
    finally:
        box.api.set_timings(quick)
    beats = [m for x in proc.stdout.splitlines() if (m := HEARTBEAT.match(x))]
    waits = {m.group(3) for m in beats if m.group(1) == "srv-004"}
    assert any(re.fullmatch(r"OVH task \d+ \(hardReboot\)", w) for w in waits), proc.stdout


def test_ovh_listings_say_how_far_they_are(box: Sandbox, tmp_path: Path) -> None:
    fleet = fleet_with(box, tmp_path, ovh__rate_limit=120.0, output__heartbeat=1.0)
    proc = fleet("ovh", "servers", check=0)
    lines = proc.stderr.splitlines()
    assert lines[0] == "servers: 9 to fetch, 18 API calls at 120/min: about 9s"
    assert any(re.fullmatch(r"servers: \d of 9 after \d+s, about \d+s left", x) for x in lines[1:])
    assert len(proc.stdout.splitlines()) == 10  # the table itself is untouched


# -- Found: plans too long to review; no confirmation ----------------------------------------------


def test_a_plan_fits_a_screen_and_destructive_work_needs_a_count(
    box: Sandbox, tmp_path: Path, contacts: Contacts
) -> None:
    fleet = FleetCli(tmp_path / "state", box.config_path)
    full = fleet("plan", "builtin:hybrid-raid", "--limit", HYBRID, check=0).stdout
    summary = fleet(
        "plan", "builtin:hybrid-raid", "--limit", HYBRID, "--summary", "--serial-by", "datacenter",
        check=0,
    ).stdout  # fmt: skip
    assert len(summary.splitlines()) < 40 < len(full.splitlines())
    assert "1. 6 hosts: srv-001, srv-004, srv-007, srv-002, srv-005, srv-008" in summary
    assert "  array/create: 6 hosts:" in summary
    assert "a rollout needs --confirm 6 (or the names of those hosts)" in summary
    assert re.search(
        r"^  1: 1 host \(gra3 1\)\n  2: 2 hosts \(gra3 2\)\n  3: 1 host \(rbx8 1\)", summary, re.M
    )
    one = fleet("plan", "builtin:hybrid-raid", "--limit", HYBRID, "--host", "srv-005", check=0)
    assert one.stdout.count("\nhost ") == 1 and "host srv-005" in one.stdout
    assert "step create  DESTRUCTIVE  (timeout 10m)" in one.stdout
    assert "stage rescue [rescue]  (waits up to 2m)" in one.stdout  # reboot.timeout of the box

    wiping = plan_file(
        tmp_path,
        "name: wipe\nstages:\n  - name: s\n    steps:\n      - name: wipe\n"
        '        check: test -f "$HOME"/TID\n        apply: touch "$HOME"/TID\n'
        "        destructive: true\n",
    )
    for confirm, expect in (
        ((), "confirm with --confirm 2 (or the host names)"),
        (("--confirm", "3"), "on 2 host(s), not 3"),
        (("--confirm", "srv-001"), "not named: srv-002"),
    ):
        proc = fleet("rollout", str(wiping), "--limit", "srv-001,srv-002", *confirm)
        assert expect in one_line_error(proc)
    assert contacts.ssh == 0 and runs(fleet) == []
    fleet("rollout", str(wiping), "--limit", "srv-001,srv-002", "--confirm", "2", check=0)


# -- Found: terminal injection -------------------------------------------------------------------


def test_escape_sequences_from_inventory_plan_and_hosts_never_reach_the_terminal(
    box: Sandbox, tmp_path: Path
) -> None:
    evil = "\x1b]0;owned\x07\x1b[2J\x9b31m"
    server = next(s for s in box.servers if s.name == "srv-003")
    inventory = tmp_path / "evil.yaml"
    inventory.write_text(
        "all:\n  vars: {ansible_user: fleet-sandbox, ansible_port: 2222}\n  hosts:\n"
        f"    srv-003:\n      ansible_host: {server.address}\n"
        f'      fleet: {{labels: {{note: "{evil.encode("unicode_escape").decode()}"}}}}\n'
    )
    plan = plan_file(
        tmp_path,
        'name: "evil\\e[31m"\nstages:\n  - name: s\n    steps:\n'
        "      - name: say\n        apply: echo {{ labels.note }}; printf 'bad\\033[2J\\n' >&2; exit 4\n",
    )
    fleet = FleetCli(tmp_path / "state", box.config_path)
    shown = [
        fleet("-i", str(inventory), "inventory", "list"),
        fleet("-i", str(inventory), "plan", str(plan), "--limit", "srv-003"),
        fleet("-i", str(inventory), "plan", str(plan), "--summary"),
        fleet("-i", str(inventory), "run", "--limit", "srv-003", "printf 'x\\033]0;t\\007\\n'"),
        rolled := fleet("-i", str(inventory), "rollout", str(plan), "--output", "plain"),
        fleet("status"),
        fleet("status", runs(fleet)[0]),
        fleet("status", runs(fleet)[0], "srv-003"),
    ]
    assert rolled.returncode == 1, rolled.stderr  # the host failed (exit 4)
    for proc in shown:
        assert not RAW.search(proc.stdout + proc.stderr), (proc.args, proc.stdout, proc.stderr)
    text = "".join(p.stdout + p.stderr for p in shown)
    assert "\\x1b]0;owned\\x07\\x1b[2J\\x9b31m" in text  # shown, escaped
    assert "plan evil\\x1b[31m" in text
    assert "! bad\\x1b[2J" in shown[-1].stdout  # the step's kept stderr
    assert "srv-003 x\\x1b]0;t\\x07" in text  # fleet run's output


# -- Found: batches by topology ------------------------------------------------------------------


def test_one_datacenter_at_a_time(box: Sandbox, tmp_path: Path) -> None:
    fleet = FleetCli(tmp_path / "state", box.config_path)
    plan = plan_file(tmp_path, HELLO)
    fleet(
        "rollout", str(plan), "--limit", HYBRID, "--serial-by", "datacenter", "--max-per", "1",
        "--batches", "1,100%", "--concurrency", "4", check=0,
    )  # fmt: skip
    starts = [e for e in events_of(fleet, runs(fleet)[0]) if e.kind == "batch.start"]
    place = {s.name: s.datacenter for s in box.servers}
    units = [[place[h] for h in e.data["hosts"]] for e in starts]
    # gra3's three hybrid servers one at a time (--max-per 1), then rbx8's: never both at once
    assert units == [["gra3"]] * 3 + [["rbx8"]] * 3


# -- Found: the HTML report ------------------------------------------------------------------------


class Svg(HTMLParser):
    """The timeline's labels (class, x, text) and the hosts table's header."""

    def __init__(self) -> None:
        super().__init__()
        self.labels: list[tuple[str, float, float, str]] = []
        self.headers: list[str] = []
        self._text: tuple[str, float, float] | None = None
        self._th = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "text" and a.get("class") in ("bandlabel", "haltlinelabel", "resumelinelabel"):
            self._text = (str(a["class"]), float(a["x"] or 0), float(a["y"] or 0))
        self._th = tag == "th"

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self.labels.append((*self._text, data))
            self._text = None
        elif self._th:
            self.headers.append(data)
            self._th = False


def test_the_report_marks_halts_and_resumes_and_says_where_and_what_each_host_decided(
    box: Sandbox, tmp_path: Path
) -> None:
    fleet = FleetCli(tmp_path / "state", box.config_path)
    (tmp_path / "decide.py").write_text(
        "def pick(c):\n    return {'disks': ['/dev/sdb', '/dev/sdc'], 'level': 1}\n"
    )
    marker = f"ok-{tmp_path.name}"
    plan = plan_file(
        tmp_path,
        "name: decide\nstages:\n  - name: choose\n    kind: python\n    call: decide.py:pick\n"
        "  - name: s\n    steps:\n      - name: maybe\n"
        f'        apply: test -f "$HOME"/{marker} || [ {{{{ host.name }}}} != srv-005 ]\n',
    )
    hosts = "srv-001,srv-002,srv-004,srv-005,srv-007,srv-008"
    first = fleet("rollout", str(plan), "--limit", hosts, "--batches", "1,1,1,100%", "-c", "1")
    assert first.returncode == 2, first.stderr  # srv-005 fails; the budget halts the run
    run_id = runs(fleet)[0]
    fleet("quarantine", "clear", "srv-005", check=0)
    fleet("run", "--limit", "srv-005", f'touch "$HOME"/{marker}', check=0)
    resumed = fleet("resume", run_id, check=0)
    assert "over 2 sessions" in resumed.stderr
    page = tmp_path / "r.html"
    fleet("report", run_id, "--format", "html", "--out", str(page), check=0)
    html = page.read_text()
    svg = Svg()
    svg.feed(html)
    assert {c for c, *_ in svg.labels} >= {"bandlabel", "haltlinelabel", "resumelinelabel"}
    by_row: dict[float, list[tuple[float, float]]] = {}
    for _cls, x, y, text in svg.labels:
        by_row.setdefault(y, []).append((x, x + 6.5 * len(text)))
    for spans in by_row.values():  # no two labels of a row overlap
        spans.sort()
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), spans
    assert "(slow)" not in html  # every host was instant
    assert {"dc", "decided"} <= set(svg.headers)
    assert "disks: /dev/sdb /dev/sdc; level: 1" in html


def test_rollout_check_runs_only_the_checks_and_says_what_would_change(
    box: Sandbox, tmp_path: Path, contacts: Contacts
) -> None:
    fleet = FleetCli(tmp_path / "state", box.config_path)
    plan = plan_file(
        tmp_path,
        "name: c\nstages:\n  - name: s\n    steps:\n      - name: mark\n"
        '        check: test -f "$HOME"/TID\n        apply: touch "$HOME"/TID\n'
        "        destructive: true\n"
        "  - name: restart\n    kind: reboot\n  - name: after\n    steps:\n      - 'true'\n",
    )
    fleet("rollout", str(plan), "--limit", "srv-006", "--confirm", "1", check=0)
    before, api, ssh = runs(fleet), contacts.api, contacts.ssh
    proc = fleet("rollout", str(plan), "--limit", "srv-006,srv-009", "--check", check=0)
    lines = proc.stdout.splitlines()
    assert lines[0] == (
        "srv-006: would apply 1 (restart [reboot]), 1 not checked (after: after a reboot), "
        "1 converged"
    )
    assert lines[1].startswith("srv-009: would apply 2 (s/mark (destructive), restart [reboot])")
    assert lines[2] == (
        "would change 2 of 2 hosts; 0 converged; 0 could not be checked; nothing was changed"
    )
    assert runs(fleet) == before, "no run record"
    assert (contacts.api - api, contacts.ssh - ssh) == (0, 2)  # a session per host, no OVH call

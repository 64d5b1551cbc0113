"""Plain lines, the JSON stream and the reports (JSON, HTML in a real headless Chromium, JUnit)
of a real rollout on the sandbox that fails on two hosts and halts on its budget."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import struct
import subprocess
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from fleet.clock import utc_iso
from fleet.report import describe, event_dict
from fleet.sandbox.sandbox import Sandbox
from fleet.store.base import Event, RunRecord
from tests.conftest import REPO, FleetCli
from tests.integration.halting import (
    FAILING,
    HOSTS,
    journal,
    last_run_id,
    outcomes,
    rollout_args,
    write_plan,
)

pytestmark = pytest.mark.integration

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00 \S")
HEARTBEAT = re.compile(r"^\S+ (\S+ still (waiting|running) |still busy: )")
HOSTILE = 'fatal: no spare disk on {host} <b>&amp;</b> "quoted"'


@dataclass
class Halted:
    fleet: FleetCli
    proc: subprocess.CompletedProcess[str]
    run: RunRecord
    events: list[Event]


def halted_rollout(sandbox: Sandbox, base: Path, *extra: str) -> Halted:
    fleet = FleetCli(base / "state", sandbox.config_path)
    proc = fleet(*rollout_args(write_plan(base), *extra), check=2)
    run, events = journal(fleet, last_run_id(fleet))
    return Halted(fleet, proc, run, events)


@pytest.fixture(scope="module")
def plain(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Halted:
    return halted_rollout(sandbox, tmp_path_factory.mktemp("plain"))


@pytest.fixture(scope="module")
def as_json(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Halted:
    return halted_rollout(sandbox, tmp_path_factory.mktemp("json"), "--output", "json")


def host_of(line: str) -> str | None:
    words = line.split(" ")
    return words[1] if len(words) > 1 and words[1] in HOSTS else None


# -- the plain and JSON streams, line by line ----------------------------------------------------


def test_plain_lines_one_per_transition(plain: Halted) -> None:
    out = plain.proc.stdout
    assert not any((ord(c) < 32 and c != "\n") or 0x7F <= ord(c) < 0xA0 for c in out)
    lines = out.splitlines()
    assert all(STAMP.match(line) for line in lines), lines
    lines = [x for x in lines if not HEARTBEAT.match(x)]  # a slow machine may add some
    quiet = ("step.start", "host.ssh")  # shown with --verbose only
    expected = [f"{utc_iso(e.at)} {describe(e)}" for e in plain.events if e.kind not in quiet]
    assert Counter(lines) == Counter(expected), "one line per journal event but quiet ones"
    for host in HOSTS:  # threads interleave, but each host's lines keep their order
        assert [x for x in lines if host_of(x) == host] == [
            x for x in expected if host_of(x) == host
        ]
    run_id = plain.run.id
    assert lines[0].endswith(f" run {run_id} start")
    started = sum(1 for e in plain.events if e.kind == "host.start")
    assert lines[-1].endswith(
        f" failure budget spent: 2 of {started} started hosts failed"
        " (allowed: at most 1 failed hosts)"
    )
    assert f" run {run_id} end halted ok=" in lines[-1] and " failed=2 " in lines[-1]
    waits = [x for x in lines if " srv-041 waiting for OVH task " in x]
    assert waits and waits[0].endswith(" (hardReboot) restart/reboot")
    assert any(
        x.endswith(" srv-041 waiting for SSH with the disk host key restart/reboot") for x in lines
    )
    for host in FAILING:
        assert any(
            x.endswith(f" {host} end work/disk check failed (exit 3): checking spare disks")
            for x in lines
        )


def canonical(obj: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in obj.items() if k != "seq"}, sort_keys=True)


def test_json_stream_one_event_per_line(as_json: Halted) -> None:
    lines = as_json.proc.stdout.splitlines()
    objects = [json.loads(line) for line in lines]
    assert all(isinstance(o, dict) for o in objects)
    assert Counter(canonical(o) for o in objects) == Counter(
        canonical(event_dict(e)) for e in as_json.events
    ), "every journal event, step starts included, exactly once"
    assert objects[0]["kind"] == "run.start" and objects[-1]["kind"] == "run.end"
    assert objects[-1]["outcome"] == "halted"
    failed = [o for o in objects if o["kind"] == "step.end" and o.get("outcome") == "failed"]
    assert {o["host"] for o in failed} == set(FAILING)
    for o in failed:
        assert HOSTILE.format(host=o["host"]) in o["excerpt"]
        assert o["exit_code"] == 3


# -- reports -------------------------------------------------------------------------------------


def report(h: Halted, fmt: str, out: Path | None = None) -> str:
    args = ["report", h.run.id, "--format", fmt]
    proc = h.fleet(*args, *(["--out", str(out)] if out else []), check=0)
    return out.read_text() if out else proc.stdout


def test_json_report_agrees_with_the_journal(plain: Halted) -> None:
    doc = json.loads(report(plain, "json"))
    ended = outcomes(plain.events)
    assert doc["run"]["id"] == plain.run.id
    assert doc["run"]["owner"] == str(plain.run.owner)
    assert doc["run"]["plan_hash"] == plain.run.plan_hash
    assert doc["run"]["state"] == "halted" and "failure budget spent" in doc["run"]["reason"]
    assert set(doc["run"]["options"]) <= {
        "batches",
        "by",
        "concurrency",
        "max_failures",
        "max_ratio",
        "bake",
        "gate",
    }, "no plan or host records repeated"
    hosts = {h["name"]: h for h in doc["hosts"]}
    assert set(hosts) == set(HOSTS)
    states = {"ok": "done", "failed": "failed", "stopped": "stopped"}
    for name in HOSTS:
        assert hosts[name]["state"] == states.get(ended.get(name, ""), "waiting")
    assert doc["summary"]["budget"] == {"allowed": "at most 1 failed hosts", "failed": 2}
    assert doc["summary"]["outcomes"]["failed"] == 2
    assert [len(b["hosts"]) for b in doc["batches"]] == [1, 4]
    for name in FAILING:
        failed_steps = [s for s in hosts[name]["steps"] if s["outcome"] == "failed"]
        assert [s["stage"] + "/" + s["step"] for s in failed_steps] == ["work/disk check"]
        assert HOSTILE.format(host=name) in hosts[name]["output"]
    ends = [e for e in plain.events if e.kind == "step.end"]
    assert sum(len(h["steps"]) for h in doc["hosts"]) == len(ends)


def test_junit_report(plain: Halted, tmp_path: Path) -> None:
    text = report(plain, "junit", tmp_path / "junit.xml")
    root = ET.fromstring(text)
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert {c.get("name") for c in cases} == set(HOSTS)
    assert all(c.get("classname") == "halting" and float(c.get("time", "x")) >= 0 for c in cases)
    failed = {c.get("name"): c.find("failure") for c in cases if c.find("failure") is not None}
    assert set(failed) == set(FAILING)
    for name, node in failed.items():
        assert node.get("type") == "payload"
        assert node.get("message") == "work/disk check: work/disk check: apply exited 3"
        assert HOSTILE.format(host=name) in (node.text or "")
    not_done = [h for h in HOSTS if outcomes(plain.events).get(h) not in ("ok", "failed")]
    skipped = [c.get("name") for c in cases if c.find("skipped") is not None]
    assert sorted(skipped) == sorted(not_done)
    counts = {k: int(suite.get(k, "-1")) for k in ("tests", "failures", "errors", "skipped")}
    assert counts == {"tests": 5, "failures": 2, "errors": 0, "skipped": len(not_done)}
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["plan_hash"] == plain.run.plan_hash and props["state"] == "halted"
    assert props["owner"] == str(plain.run.owner)


def test_report_of_an_unknown_run_is_a_usage_error(plain: Halted) -> None:
    proc = plain.fleet("report", "r-nope", "--format", "html")
    assert proc.returncode == 3
    assert proc.stderr.splitlines() == [
        f"error: no run 'r-nope' in {plain.fleet.state / 'fleet.db'}",
        "hint: `fleet status` lists the runs",
    ]


def test_html_report_is_self_contained_and_escaped(plain: Halted, tmp_path: Path) -> None:
    text = report(plain, "html", tmp_path / "r.html")
    assert re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//|file:)""", text, re.I) is None
    assert "@import" not in text and "url(" not in text and "<link" not in text
    assert "<b>&amp;</b>" not in text, "output is shown as text, never as markup"
    assert "&lt;b&gt;&amp;amp;&lt;/b&gt; &quot;quoted&quot;" in text
    for host in HOSTS:
        assert f'data-host="{host}"' in text


# -- the HTML report in a real browser -----------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Debian's chromium; installed by scripts/install-browser.sh if missing and apt is here."""
    if not CHROMIUM.exists():
        if shutil.which("apt-get") is None:
            pytest.skip("chromium is not installed and there is no apt-get to install it")
        proc = subprocess.run(
            ["bash", str(REPO / "scripts" / "install-browser.sh")],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if proc.returncode != 0 or not CHROMIUM.exists():
            pytest.skip(f"chromium could not be installed: {proc.stderr[-500:]}")
    return CHROMIUM


def run_chromium(binary: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium as this machine requires; its whole process group dies on timeout."""
    command = [
        str(binary),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
    ]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "HOME": str(profile)},
    )
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


@dataclass
class Dom(HTMLParser):
    """What the test needs from the DOM Chromium dumped."""

    body: dict[str, str | None] = field(default_factory=dict)
    rows: list[str] = field(default_factory=list)
    bars: list[dict[str, str | None]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    pre_text: list[str] = field(default_factory=list)
    pre_tags: list[str] = field(default_factory=list)
    _in_pre: int = 0

    def __post_init__(self) -> None:
        super().__init__()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if self._in_pre:
            self.pre_tags.append(tag)
        if tag == "body":
            self.body = a
        elif tag == "g" and "row" in classes:
            self.rows.append(a.get("data-host") or "")
        elif tag == "rect" and "bar" in classes:
            self.bars.append(a)
        elif tag == "article" and "failure" in classes:
            self.failures.append(a.get("data-host") or "")
        elif tag == "pre":
            self._in_pre += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre":
            self._in_pre -= 1

    def handle_data(self, data: str) -> None:
        if self._in_pre:
            self.pre_text.append(data)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "a PNG file"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_html_report_in_headless_chromium(plain: Halted, chromium: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    report(plain, "html", page)
    doc = json.loads(report(plain, "json"))
    dumped = run_chromium(chromium, tmp_path / "profile-dom", "--dump-dom", page.as_uri())
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = Dom()
    dom.feed(dumped.stdout)
    assert dom.body.get("data-fleet-report") == "ready", "the page's script ran without error"
    assert sorted(dom.rows) == sorted(HOSTS), "one timeline row per host"
    assert len(dom.bars) == sum(len(h["steps"]) for h in doc["hosts"]), "one bar per step"
    failed_bars = [b for b in dom.bars if "failed" in (b.get("class") or "").split()]
    assert len(failed_bars) == len(FAILING)
    assert all(float(b.get("width") or 0) >= 2 for b in dom.bars)
    assert sorted(dom.failures) == sorted(FAILING)
    shown = "".join(dom.pre_text)
    for host in FAILING:
        assert HOSTILE.format(host=host) in shown, "the excerpt reads as the host wrote it"
    assert dom.pre_tags == [], "no markup from the output became elements"
    shot = tmp_path / "report.png"
    taken = run_chromium(
        chromium,
        tmp_path / "profile-shot",
        f"--screenshot={shot}",
        "--window-size=1400,1000",
        page.as_uri(),
    )
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert png_size(shot) == (1400, 1000)
    assert shot.stat().st_size > 20_000, "a screenshot with content, not a blank page"

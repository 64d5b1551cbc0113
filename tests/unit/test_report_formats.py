"""The HTML and JUnit reports from a journal written with hostile names and output: everything is
escaped, the page stays one self-contained file, the XML stays valid."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

from fleet.reports import render_report
from fleet.store.base import Event, Owner, RunRecord

T0 = datetime(2024, 3, 31, 0, 59, 0, tzinfo=UTC)
EVIL = '<script>alert("x")</script>&amp;'
HOSTS = ("ok-1", EVIL, "slow-1", "late-1")
OUTPUT = "line one\n</pre><img src=x onerror=alert(1)>\n\x1b[31mred\x1b[0m \x00nul\nlast: <b>&</b>"


def ev(kind: str, t: float, host: str | None = None, **fields: Any) -> Event:
    return Event(run_id="r1", kind=kind, at=T0 + timedelta(seconds=t), host=host, **fields)


def host_events(host: str, start: float, took: float, fail: bool = False) -> list[Event]:
    end = start + took
    out = [ev("host.start", start, host), ev("step.start", start, host, stage="prep", step="dir")]
    if not fail:
        out += [
            ev("step.end", end, host, stage="prep", step="dir", outcome="applied"),
            ev("host.end", end, host, outcome="ok"),
        ]
        return out
    return [
        *out,
        ev(
            "step.end",
            end,
            host,
            stage="prep",
            step="dir",
            outcome="failed",
            exit_code=2,
            excerpt=OUTPUT,
        ),
        ev(
            "host.end",
            end,
            host,
            stage="prep",
            step="dir",
            outcome="failed",
            excerpt="prep/dir: apply exited 2",
            data={"failure": "payload"},
        ),
    ]


def journal() -> tuple[RunRecord, list[Event]]:
    run = RunRecord(
        "r1",
        "demo <plan>",
        "x.yaml",
        "hash&1",
        HOSTS,
        {"max_failures": 0, "plan": {"k": "secret"}},
        Owner("o<p>", "m", 1),
        state="halted",
        reason="failure budget spent <now>",
    )
    events = [
        ev("run.start", 0, data={"batches": [1, 3]}),
        ev("batch.start", 0, data={"index": 1, "hosts": ["ok-1"]}),
    ]
    events += host_events("ok-1", 0, 1)
    events += [
        ev("batch.end", 1, data={"index": 1}),
        ev("batch.start", 1, data={"index": 2, "hosts": list(HOSTS[1:])}),
    ]
    events += host_events(EVIL, 1, 1, fail=True) + host_events("slow-1", 1, 30)
    events += [
        ev("batch.end", 31, data={"index": 2}),
        ev("run.end", 31, outcome="halted", excerpt="failure budget spent <now>"),
    ]
    return run, events


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed() -> tuple[str, Elements]:
    page = render_report("html", *journal())
    elements = Elements()
    elements.feed(page)
    return page, elements


def test_html_escapes_names_and_output() -> None:
    page, elements = parsed()
    tags = [t for t, _ in elements.tags]
    assert tags.count("script") == 1 and "img" not in tags and "b" not in tags
    text = "".join(elements.text)
    assert "last: <b>&</b>" in text and "</pre><img src=x onerror=alert(1)>" in text
    assert "\\x1b[31mred\\x1b[0m \\x00nul" in text, "control characters made visible"
    assert "\x1b" not in page and "\x00" not in page
    rows = [a.get("data-host") for t, a in elements.tags if t == "g"]
    assert rows == ["ok-1", EVIL, "slow-1", "late-1"], "batch order, unstarted hosts last"
    assert "failure budget spent <now>" in text and "o<p>@m pid 1" in text
    assert "secret" not in page, "the plan kept in the run record is not repeated"


def test_html_marks_the_slow_and_failing_hosts() -> None:
    _, elements = parsed()
    rows = {
        a.get("data-host"): (a.get("class") or "").split() for t, a in elements.tags if t == "g"
    }
    assert "slow" in rows["slow-1"] and "failed" in rows[EVIL]
    assert rows["late-1"] == ["row", "waiting"]
    bars = [a for t, a in elements.tags if t == "rect" and "bar" in (a.get("class") or "")]
    assert sorted((a.get("class") or "") for a in bars) == [
        "bar applied",
        "bar applied",
        "bar failed",
    ]
    halt = [a for t, a in elements.tags if t == "line" and a.get("class") == "haltline"]
    assert len(halt) == 1


def test_junit_is_valid_xml_with_a_failure_and_a_skip() -> None:
    root = ET.fromstring(render_report("junit", *journal()))
    suite = root.find("testsuite")
    assert suite is not None
    assert {k: suite.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "4",
        "failures": "1",
        "errors": "0",
        "skipped": "1",
    }
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == set(HOSTS)
    failure = cases[EVIL].find("failure")
    assert failure is not None and failure.get("message") == "prep/dir: prep/dir: apply exited 2"
    assert (
        failure.text is not None and "last: <b>&</b>" in failure.text and "\\x00nul" in failure.text
    )
    skipped = cases["late-1"].find("skipped")
    assert (
        skipped is not None
        and skipped.get("message") == "waiting: not started: failure budget spent <now>"
    )


def test_json_report_is_json_with_every_host() -> None:
    doc = json.loads(render_report("json", *journal()))
    assert [h["name"] for h in doc["hosts"]] == list(HOSTS)
    assert doc["run"]["options"] == {"max_failures": 0}
    assert doc["summary"]["duration_s"] == 31.0

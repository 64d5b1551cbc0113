"""The JUnit XML report: CI systems (Jenkins, GitLab, GitHub) show a rollout as test results.

One ``testsuite`` per run and one ``testcase`` per host (``classname`` = plan name, ``name`` =
host). A payload failure is a ``failure`` (the plan's command said no); an infrastructure or host
key failure is an ``error`` (the run could not test the host); hosts skipped, quarantined or never
started are ``skipped``. Each testcase's ``system-out`` lists its steps.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from fleet.reports.json import report_document
from fleet.store.base import Event, RunRecord

#: Characters XML 1.0 does not allow, even escaped: shown as \xNN instead.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_ERRORS = {"infrastructure", "hostkey"}


def xml_text(value: object) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


def render(run: RunRecord, events: list[Event]) -> str:
    doc = report_document(run, events)
    suites = ET.Element("testsuites", name="fleet")
    suite = _suite(doc)
    suites.append(suite)
    for key in ("tests", "failures", "errors", "skipped", "time"):
        suites.set(key, suite.get(key, "0"))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, "unicode") + "\n"


def _suite(doc: dict[str, Any]) -> ET.Element:
    run, summary = doc["run"], doc["summary"]
    cases = [_case(run, h) for h in doc["hosts"]]
    suite = ET.Element(
        "testsuite",
        name=xml_text(f"fleet run {run['id']} ({run['plan']})"),
        tests=str(len(cases)),
        failures=str(sum(1 for c in cases if c.find("failure") is not None)),
        errors=str(sum(1 for c in cases if c.find("error") is not None)),
        skipped=str(sum(1 for c in cases if c.find("skipped") is not None)),
        time=f"{summary['duration_s'] or 0:.3f}",
        timestamp=(summary["started_at"] or run["created_at"] or "")[:19],
    )
    props = ET.SubElement(suite, "properties")
    for key in ("plan", "plan_hash", "plan_source", "owner", "state", "reason"):
        if run.get(key) is not None:
            ET.SubElement(props, "property", name=key, value=xml_text(run[key]))
    ET.SubElement(props, "property", name="budget", value=xml_text(summary["budget"]["allowed"]))
    suite.extend(cases)
    return suite


def _case(run: dict[str, Any], host: dict[str, Any]) -> ET.Element:
    case = ET.Element(
        "testcase",
        classname=xml_text(run["plan"]),
        name=xml_text(host["name"]),
        time=f"{host['duration_s']:.3f}",
    )
    state, message = host["state"], host["message"] or ""
    if state == "failed":
        kind = "error" if host["failure"] in _ERRORS else "failure"
        where = host["where"] or "host"
        last = message.strip().splitlines()[-1:] or [state]
        node = ET.SubElement(
            case,
            kind,
            message=xml_text(f"{where}: {last[0][:300]}"),
            type=xml_text(host["failure"] or "payload"),
        )
        node.text = xml_text(host["output"] or message)
    elif state != "done":
        why = message or f"not started: {run['reason'] or 'the run ended before it'}"
        ET.SubElement(case, "skipped", message=xml_text(f"{state}: {why}"[:500]))
    steps = [_step_line(s) for s in host["steps"]]
    if steps:
        ET.SubElement(case, "system-out").text = xml_text("\n".join(steps))
    return case


def _step_line(step: dict[str, Any]) -> str:
    took = f" {step['duration_s']:.3f}s" if step["duration_s"] is not None else ""
    exit_code = f" exit {step['exit_code']}" if step["exit_code"] not in (None, 0) else ""
    return f"{step['start']} {step['stage']}/{step['step']} {step['outcome'] or 'running'}{took}{exit_code}"

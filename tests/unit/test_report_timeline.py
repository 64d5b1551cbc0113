"""The HTML timeline's pure parts: batch labels that never overlap, halt and resume marks, and
which hosts count as slow."""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Any

from fleet.reports.html import CHAR, Scale, _batch_bands, _session_marks, _slow_hosts

T = "2026-11-25T17:00:{:06.3f}+00:00"


def batch(number: int, start: float, end: float, session: int = 1) -> dict[str, Any]:
    return {
        "number": number,
        "index": number,
        "session": session,
        "hosts": ["h"],
        "start": T.format(start),
        "end": T.format(end),
    }


def labels(svg: str) -> list[tuple[float, float, str]]:
    found = re.findall(r'<text class="bandlabel" x="([\d.]+)" y="([\d.]+)">([^<]*)<', svg)
    return [(float(x), float(y), text) for x, y, text in found]


def test_short_batches_get_short_labels_on_two_rows_and_never_overlap() -> None:
    # one long batch, then eight of a tenth of a second each
    batches = [batch(1, 0, 40)] + [
        batch(i, 40 + (i - 2) * 0.1, 40.1 + (i - 2) * 0.1) for i in range(2, 10)
    ]
    svg = _batch_bands(batches, scale_of(batches), 300)
    shown = labels(svg)
    assert shown[0][2] == "batch 1"  # room for the full label
    rows: dict[float, list[tuple[float, float]]] = {}
    for x, y, text in shown:
        rows.setdefault(y, []).append((x, x + CHAR * len(text)))
    assert len(rows) == 2  # crowded: the second row is used
    for spans in rows.values():
        spans.sort()
        assert all(a[1] <= b[0] for a, b in pairwise(spans))
    assert svg.count("<rect") == 9 and svg.count("<title>") >= 9  # every band keeps its tooltip


def scale_of(batches: list[dict[str, Any]]) -> Scale:
    from fleet.clock import parse_utc

    times = [parse_utc(b[k]).timestamp() for b in batches for k in ("start", "end")]
    return Scale(min(times), max(times))


def test_halts_and_resumes_are_marked_with_their_reason() -> None:
    doc = {
        "sessions": [
            {"number": 1, "kind": "start", "start": T.format(0), "end": T.format(10),
             "outcome": "halted", "reason": "failure budget spent"},
            {"number": 2, "kind": "resume", "start": T.format(20), "end": T.format(30),
             "outcome": "done", "reason": None},
        ]
    }  # fmt: skip
    svg = _session_marks(doc, scale_of([batch(1, 0, 30)]), 300)
    assert svg.count('class="haltline"') == 1 and svg.count('class="resumeline"') == 1
    assert "halted: failure budget spent" in svg and "resumed (session 2)" in svg
    assert ">halted<" in svg and ">resumed<" in svg


def host(name: str, *seconds: float) -> dict[str, Any]:
    return {"name": name, "steps": [{"duration_s": s} for s in seconds]}


def test_instant_hosts_are_never_slow_and_a_halt_gap_does_not_count() -> None:
    quick = [host(f"q{i}", 0.002, 0.003) for i in range(5)]
    assert _slow_hosts([*quick, host("sub-second", 0.4, 0.3)]) == set()
    assert _slow_hosts([*quick, host("slow", 3.0)]) == {"slow"}
    # busy time, not the span from first to last step: a host resumed hours later is not slow
    even = [host(f"e{i}", 2.0, 2.0) for i in range(4)]
    assert _slow_hosts([*even, host("resumed", 2.0, 2.1)]) == set()

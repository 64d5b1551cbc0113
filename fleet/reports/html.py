"""The HTML report: one self-contained file (inline CSS, SVG and script; nothing fetched) that an
operator can mail to a colleague.

It shows the summary (hosts, outcomes, budget, duration, who ran it, plan and hash), the halt
reason, a Gantt-style timeline (one row per host, one bar per step, coloured by outcome, batches
as bands, failing and slow hosts marked), the failures with their output, and every host.

Everything that comes from the journal (host names, stage names, excerpts) is escaped; control
characters are shown as ``\\xNN``. The inline script (filtering) marks ``<body>`` with
``data-fleet-report="ready"`` when it ran, so a browser test can tell that it ran without error.
"""

from __future__ import annotations

import html
import statistics
from dataclasses import dataclass
from typing import Any

from fleet.clock import parse_utc
from fleet.escape import printable_lines
from fleet.reports.json import report_document
from fleet.reports.model import human_duration
from fleet.reports.records import decision_lines
from fleet.store.base import Event, RunRecord

ROW, TOP, LABEL, PLOT, BOTTOM = 20, 52, 190, 1000, 30
SLOW_FACTOR = 2.0  # a host slower than this many times the median stands out
SLOW_FLOOR = 1.0  # seconds: a host quicker than this is never "slow", whatever the median
CHAR = 6.5  # average width of a label character (px, 11px system font)
BATCH_ROWS = (TOP - 20, TOP - 8)  # label rows of the batch bands, used in turn when crowded
MARK_ROW = 12  # labels of halts and resumes


def esc(value: object) -> str:
    """Text for HTML content or a quoted attribute: escaped, control characters made visible."""
    return html.escape(printable_lines(value), quote=True)


def render(run: RunRecord, events: list[Event]) -> str:
    doc = report_document(run, events)
    sections = [
        _summary(doc),
        _halt(doc),
        _timeline(doc),
        _failures(doc),
        _hosts(doc),
        _records(doc),
        _outputs(doc),
        _gates(doc),
    ]
    title = esc(f"fleet run {doc['run']['id']} ({doc['run']['plan']})")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{CSS}</style></head>\n<body>\n<h1>{title}</h1>\n"
        + "\n".join(s for s in sections if s)
        + f"\n<script>{SCRIPT}</script>\n</body></html>\n"
    )


# -- summary -------------------------------------------------------------------------------------


def _summary(doc: dict[str, Any]) -> str:
    run, s = doc["run"], doc["summary"]
    waiting = "waiting" if run["state"] == "running" else "not started"
    outcomes = ", ".join(
        f"{waiting if k == 'waiting' else k} {v}" for k, v in s["outcomes"].items()
    )
    duration = human_duration(s["duration_s"]) if s["duration_s"] is not None else "-"
    options = ", ".join(f"{k}={v}" for k, v in run["options"].items() if v is not None)
    rows = [
        ("state", run["state"] + (f": {run['reason']}" if run["reason"] else "")),
        ("hosts", f"{s['hosts']} ({outcomes})"),
        ("failure budget", f"{s['budget']['allowed']}; {s['budget']['failed']} failed"),
        ("duration", f"{duration} ({s['started_at'] or '-'} to {s['ended_at'] or '-'})"),
        ("run by", run["owner"]),
        ("plan", f"{run['plan']} ({run['plan_source']})"),
        ("plan hash", run["plan_hash"]),
        ("batches", f"{s['batches']} over {s['sessions']} session(s)"),
        ("options", options),
    ]
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    return f'<section id="summary"><h2>Summary</h2><table class="kv">{body}</table></section>'


def _halt(doc: dict[str, Any]) -> str:
    run = doc["run"]
    if run["state"] in ("done", "running") or not run["reason"]:
        return ""
    return (
        f'<section id="halt" class="halt"><h2>Run {esc(run["state"])}</h2>'
        f"<p>{esc(run['reason'])}</p></section>"
    )


# -- timeline ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    """Maps instants (POSIX seconds) to x pixels."""

    t0: float
    t1: float

    def x(self, t: float) -> float:
        span = max(self.t1 - self.t0, 1e-3)
        return LABEL + (t - self.t0) / span * PLOT


def _ts(text: str | None) -> float | None:
    return parse_utc(text).timestamp() if text else None


def _extent(host: dict[str, Any]) -> tuple[float, float] | None:
    starts = [_ts(s["start"]) for s in host["steps"]]
    ends = [_ts(s["end"] or s["start"]) for s in host["steps"]]
    got_starts = [t for t in starts if t is not None]
    got_ends = [t for t in ends if t is not None]
    return (min(got_starts), max(got_ends)) if got_starts and got_ends else None


def _busy(host: dict[str, Any]) -> float:
    """Seconds a host spent in its steps: the sum of their durations, so that the time a halt
    kept it waiting between two sessions does not count."""
    return sum(s["duration_s"] or 0.0 for s in host["steps"])


def _slow_hosts(hosts: list[dict[str, Any]]) -> set[str]:
    """Hosts busy more than :data:`SLOW_FACTOR` times the median, and longer than
    :data:`SLOW_FLOOR`: a host that took a second is never slow, even beside instant ones."""
    lengths = {h["name"]: _busy(h) for h in hosts if h["steps"]}
    if len(lengths) < 3:
        return set()
    median = statistics.median(lengths.values())
    return {
        n
        for n, d in lengths.items()
        if d >= SLOW_FLOOR and d > SLOW_FACTOR * median and d - median > 0.5
    }


def _row_order(host: dict[str, Any]) -> tuple[float, float, str]:
    extent = _extent(host)
    return (host["batch"] or 1e9, extent[0] if extent else 1e18, host["name"])


def _timeline(doc: dict[str, Any]) -> str:
    hosts = sorted(doc["hosts"], key=_row_order)
    times = [t for h in hosts if (e := _extent(h)) for t in e]
    times += [t for b in doc["batches"] for t in (_ts(b["start"]), _ts(b["end"])) if t]
    ended = _ts(doc["summary"]["ended_at"])
    if ended:
        times.append(ended)
    if not times:
        return '<section id="timeline"><h2>Timeline</h2><p>No host started.</p></section>'
    scale = Scale(min(times), max(times))
    height = TOP + ROW * len(hosts) + BOTTOM
    slow = _slow_hosts(hosts)
    parts = [_batch_bands(doc["batches"], scale, height), _axis(scale, height)]
    parts += [_host_row(h, i, scale, h["name"] in slow) for i, h in enumerate(hosts)]
    parts.append(_session_marks(doc, scale, height))
    svg = (
        f'<svg class="timeline" width="{LABEL + PLOT + 20}" height="{height}" '
        f'viewBox="0 0 {LABEL + PLOT + 20} {height}" role="img" '
        f'aria-label="timeline of {len(hosts)} hosts">' + "".join(parts) + "</svg>"
    )
    return (
        '<section id="timeline"><h2>Timeline</h2>'
        '<p class="legend"><span class="sw applied"></span>applied '
        '<span class="sw converged"></span>already converged '
        '<span class="sw failed"></span>failed '
        '<span class="sw interrupted"></span>interrupted '
        '<span class="sw running"></span>unfinished '
        "&#x2014; bands are batches; a dashed red line marks a halt, a blue one a resume; "
        "hover a bar for its step</p>"
        f'<div class="scroll">{svg}</div></section>'
    )


def _batch_bands(batches: list[dict[str, Any]], scale: Scale, height: int) -> str:
    """A band per batch; its label is the longest of "batch 3 (resume 1)", "batch 3" and "3"
    that fits its band, on the first label row where it overlaps no other label (else only
    the band's tooltip names it)."""
    out, row_ends = [], [float("-inf")] * len(BATCH_ROWS)
    for b in batches:
        start = _ts(b["start"]) or scale.t0
        x0, x1 = scale.x(start), scale.x(_ts(b["end"]) or scale.t1)
        resumed = f" (resume {b['session'] - 1})" if b["session"] > 1 else ""
        title = f"batch {b['index']}{resumed}: {len(b['hosts'])} hosts"
        out.append(
            f'<rect class="band b{b["number"] % 2}" x="{x0:.1f}" y="{BATCH_ROWS[0] - 12}" '
            f'width="{max(x1 - x0, 1):.1f}" height="{height - BATCH_ROWS[0] + 12 - BOTTOM}">'
            f"<title>{esc(title)}</title></rect>"
        )
        room = max(x1 - x0, 0.0) - 4
        texts = (f"batch {b['index']}{resumed}", f"batch {b['index']}", str(b["index"]))
        label = next((t for t in texts if len(t) * CHAR <= room), texts[-1])
        row = next((i for i, end in enumerate(row_ends) if x0 + 2 >= end + 4), None)
        if row is None:
            continue
        row_ends[row] = x0 + 2 + len(label) * CHAR
        out.append(
            f'<text class="bandlabel" x="{x0 + 2:.1f}" y="{BATCH_ROWS[row]}">'
            f"{esc(label)}<title>{esc(title)}</title></text>"
        )
    return "".join(out)


def _axis(scale: Scale, height: int) -> str:
    out = []
    y = height - BOTTOM + 14
    for i in range(7):
        t = scale.t0 + (scale.t1 - scale.t0) * i / 6
        x = scale.x(t)
        out.append(
            f'<line class="tick" x1="{x:.1f}" y1="{TOP - 4}" x2="{x:.1f}" y2="{height - BOTTOM}"/>'
            f'<text class="ticklabel" x="{x:.1f}" y="{y}">+{esc(_tick(t - scale.t0, scale))}</text>'
        )
    return "".join(out)


def _tick(offset: float, scale: Scale) -> str:
    """Tick text: tenths of a second for short runs, where whole seconds would repeat."""
    if scale.t1 - scale.t0 < 30:
        return f"{offset:.1f}s"
    return human_duration(offset)


def _host_row(host: dict[str, Any], index: int, scale: Scale, slow: bool) -> str:
    y = TOP + index * ROW
    classes = f"row {host['state']}" + (" slow" if slow else "")
    label = (
        host["name"]
        + (" (slow)" if slow else "")
        + ("" if host["state"] == "done" else f" [{host['state']}]")
    )
    bars = "".join(_bar(host["name"], s, y, scale) for s in host["steps"])
    return (
        f'<g class="{esc(classes)}" data-host="{esc(host["name"])}">'
        f'<text class="hostlabel" x="{LABEL - 6}" y="{y + ROW - 6}">{esc(label)}</text>'
        f"{bars}</g>"
    )


def _bar(host: str, step: dict[str, Any], y: int, scale: Scale) -> str:
    start = _ts(step["start"]) or scale.t0
    end = _ts(step["end"]) or scale.t1
    x0, x1 = scale.x(start), scale.x(end)
    outcome = step["outcome"] or "running"
    took = human_duration(step["duration_s"]) if step["duration_s"] is not None else "unfinished"
    tip = f"{host} {step['stage']}/{step['step']}: {outcome}, {took}"
    if step["exit_code"] not in (None, 0):
        tip += f", exit {step['exit_code']}"
    width = max(x1 - x0, 2)
    label = ""
    if width > 7 * len(step["stage"]) + 8:  # the stage's name, where it fits
        label = (
            f'<text class="barlabel" x="{x0 + 4:.1f}" y="{y + ROW - 7}">{esc(step["stage"])}</text>'
        )
    return (
        f'<rect class="bar {esc(outcome)}" data-stage="{esc(step["stage"])}" x="{x0:.1f}" '
        f'y="{y + 3}" width="{width:.1f}" height="{ROW - 6}"><title>{esc(tip)}</title></rect>{label}'
    )


def _session_marks(doc: dict[str, Any], scale: Scale, height: int) -> str:
    """A dashed red line where a session ended without finishing the run (halted, failed,
    aborted), a blue one where a later session resumed it, each labelled above the bands."""
    marks: list[tuple[float, str, str, str]] = []
    for s in doc["sessions"]:
        start, end = _ts(s["start"]), _ts(s["end"])
        if s["kind"] == "resume" and start is not None:
            marks.append((start, "resumeline", "resumed", f"resumed (session {s['number']})"))
        if end is not None and s["outcome"] not in (None, "done"):
            tip = f"{s['outcome']}: {s['reason'] or ''}"
            marks.append((end, "haltline", str(s["outcome"]), tip))
    out, last_end = [], float("-inf")
    for at, cls, label, tip in sorted(marks):
        x = scale.x(at)
        out.append(
            f'<line class="{cls}" x1="{x:.1f}" y1="{MARK_ROW - 8}" x2="{x:.1f}" '
            f'y2="{height - BOTTOM}"><title>{esc(tip)}</title></line>'
        )
        if x + 3 >= last_end + 4:  # labels of marks close together would overlap: first wins
            out.append(
                f'<text class="{cls}label" x="{x + 3:.1f}" y="{MARK_ROW}">{esc(label)}'
                f"<title>{esc(tip)}</title></text>"
            )
            last_end = x + 3 + len(label) * CHAR
    return "".join(out)


# -- failures and hosts --------------------------------------------------------------------------


def _failures(doc: dict[str, Any]) -> str:
    failed = [h for h in doc["hosts"] if h["state"] == "failed"]
    if not failed:
        return ""
    items = []
    for h in failed:
        excerpt = h["output"] or h["message"] or ""
        items.append(
            f'<article class="failure" data-host="{esc(h["name"])}"><h3>{esc(h["name"])}</h3>'
            f"<p>{esc(h['where'] or 'host')} &#x2014; {esc(h['failure'] or 'failed')}: "
            f"{esc((h['message'] or '').strip().splitlines()[-1:][0] if h['message'] else '')}</p>"
            f"<pre>{esc(excerpt)}</pre></article>"
        )
    return f'<section id="failures"><h2>Failures ({len(failed)})</h2>{"".join(items)}</section>'


def _hosts(doc: dict[str, Any]) -> str:
    rows = []
    for h in sorted(doc["hosts"], key=_row_order):
        duration = human_duration(h["duration_s"]) if h["duration_s"] else "-"
        last = (h["message"] or "").strip().splitlines()[-1:] if h["state"] != "done" else []
        rows.append(
            f'<tr class="{esc(h["state"])}" data-host="{esc(h["name"])}"><td>{esc(h["name"])}</td>'
            f"<td>{esc(h['datacenter'] or '-')}</td>"
            f"<td>{esc(h['batch'] or '-')}</td><td>{esc(h['state'])}</td><td>{esc(duration)}</td>"
            f"<td>{len(h['steps'])}</td><td>{esc(h['where'] or '')}</td>"
            f"<td>{_facts(h['facts'])}</td>"
            f"<td>{esc(last[0][:300] if last else '')}</td></tr>"
        )
    return (
        '<section id="hosts"><h2>Hosts</h2><p class="filters"><label>filter '
        '<input id="filter" type="search" placeholder="host name"></label> '
        '<label><input id="onlyfailed" type="checkbox"> only hosts not done</label> '
        '<span id="shown"></span></p><table class="hosts"><thead><tr><th>host</th><th>dc</th>'
        "<th>batch</th><th>state</th><th>duration</th><th>steps</th><th>where</th>"
        "<th>decided</th><th>last message</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


#: Facts shown first in the "decided" column, when a plan's stages decided them.
KEY_FACTS = ("disks", "members", "level", "raid_level", "md_path", "mount", "filesystem")


def _facts(facts: dict[str, Any]) -> str:
    """What the host's python stages decided: the key facts in the cell, all on unfolding."""
    if not facts:
        return ""
    keys = [k for k in KEY_FACTS if k in facts] or sorted(facts)[:2]
    head = "; ".join(f"{k}: {_fact(facts[k])}" for k in keys)
    rows = "".join(
        f"<tr><th>{esc(k)}</th><td>{esc(_fact(v))}</td></tr>" for k, v in sorted(facts.items())
    )
    return (
        f'<details class="facts"><summary>{esc(head[:200])}</summary>'
        f'<table class="kv">{rows}</table></details>'
    )


def _fact(value: Any) -> str:
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def _records(doc: dict[str, Any]) -> str:
    """What each host's guard decided (disks taken and not, why) and what it identified."""
    items = []
    for h in sorted(doc["hosts"], key=lambda h: str(h["name"])):
        record = h.get("record") or {}
        if not record:
            continue
        ids = "".join(
            f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in record.items() if k != "decisions"
        )
        rows = "".join(
            f"<li>{esc(line)}</li>" for line in decision_lines(record.get("decisions") or {})
        )
        items.append(
            f'<article class="record" data-host="{esc(h["name"])}"><h3>{esc(h["name"])}</h3>'
            f"<dl>{ids}</dl><ul>{rows}</ul></article>"
        )
    if not items:
        return ""
    return f'<section id="records"><h2>Disks and identities</h2>{"".join(items)}</section>'


def _outputs(doc: dict[str, Any]) -> str:
    """What each host's steps printed (the journal's kept tail), one foldable block per host."""
    blocks = []
    for h in sorted(doc["hosts"], key=lambda h: h["name"]):
        steps = [s for s in h["steps"] if s.get("output")]
        if not steps:
            continue
        items = "".join(
            f"<h4>{esc(s['stage'])}/{esc(s['step'])}: {esc(s['outcome'] or '')}</h4>"
            f"<pre>{esc(_output_text(s['output']))}</pre>"
            for s in steps
        )
        blocks.append(
            f'<details class="output" data-host="{esc(h["name"])}"><summary>{esc(h["name"])} '
            f"({len(steps)} steps with output)</summary>{items}</details>"
        )
    if not blocks:
        return ""
    return f'<section id="output"><h2>Step output</h2>{"".join(blocks)}</section>'


def _output_text(output: dict[str, Any]) -> str:
    text = str(output.get("stdout", ""))
    if output.get("stderr"):
        text += "".join(f"stderr: {line}\n" for line in str(output["stderr"]).splitlines())
    if output.get("truncated"):
        text = "(the start was cut: the tail is kept)\n" + text
    return text


def _gates(doc: dict[str, Any]) -> str:
    if not doc["gates"]:
        return ""
    rows = "".join(
        f"<tr><td>{esc(g['batch'])}</td><td>{esc(g['outcome'])}</td><td>{esc(g['exit_code'])}</td>"
        f"<td><pre>{esc(g['excerpt'] or '')}</pre></td></tr>"
        for g in doc["gates"]
    )
    return (
        '<section id="gates"><h2>Health gates</h2><table class="hosts"><thead><tr><th>after batch'
        f"</th><th>outcome</th><th>exit</th><th>output</th></tr></thead><tbody>{rows}</tbody>"
        "</table></section>"
    )


CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table.kv th{text-align:left;padding-right:1em;color:#555;font-weight:600}
table.hosts{border-collapse:collapse}table.hosts td,table.hosts th{padding:2px 8px;
border-bottom:1px solid #eee;text-align:left;vertical-align:top}
tr.failed td{background:#fdecea}tr.dim,g.dim{opacity:.15}tr.hidden{display:none}
.halt{background:#fdecea;border-left:4px solid #d32f2f;padding:.2em 1em}
.output pre,.failure pre,td pre{background:#f6f6f6;padding:.5em;overflow:auto;max-height:20em;margin:0}
.scroll{overflow-x:auto}
svg.timeline text{font:11px system-ui,sans-serif}
.hostlabel{text-anchor:end;fill:#333}.row.failed .hostlabel{fill:#d32f2f;font-weight:700}
.row.slow .hostlabel{fill:#b26a00;font-weight:700}
.band.b0{fill:#eef3fb}.band.b1{fill:#f7f7f7}.bandlabel{fill:#456}
.tick{stroke:#ddd}.ticklabel{text-anchor:middle;fill:#777}
.haltline{stroke:#d32f2f;stroke-width:2;stroke-dasharray:4 3}.haltlinelabel{fill:#d32f2f}
.resumeline{stroke:#1565c0;stroke-width:2}.resumelinelabel{fill:#1565c0}
details.facts summary{cursor:pointer}details.facts table{font-size:12px}
.bar{stroke:#fff;stroke-width:.5}.barlabel{fill:#fff;pointer-events:none;font-size:10px}
rect.applied,.sw.applied{fill:#43a047;background:#43a047}
rect.converged,.sw.converged{fill:#a5d6a7;background:#a5d6a7}
rect.failed,.sw.failed{fill:#d32f2f;background:#d32f2f}
rect.interrupted,.sw.interrupted{fill:#fb8c00;background:#fb8c00}
rect.running,.sw.running{fill:#90a4ae;background:#90a4ae}
.sw{display:inline-block;width:12px;height:12px;margin:0 3px 0 10px;vertical-align:middle}
"""

SCRIPT = """
(function () {
  var filter = document.getElementById('filter');
  var only = document.getElementById('onlyfailed');
  var shown = document.getElementById('shown');
  function apply() {
    var text = filter.value.trim().toLowerCase();
    var count = 0;
    document.querySelectorAll('tr[data-host]').forEach(function (tr) {
      var name = tr.getAttribute('data-host').toLowerCase();
      var hide = (text && name.indexOf(text) < 0) || (only.checked && tr.className === 'done');
      tr.classList.toggle('hidden', !!hide);
      if (!hide) { count += 1; }
    });
    document.querySelectorAll('g.row[data-host]').forEach(function (g) {
      var name = g.getAttribute('data-host').toLowerCase();
      var dim = (text && name.indexOf(text) < 0) || (only.checked && g.classList.contains('done'));
      g.classList.toggle('dim', !!dim);
    });
    shown.textContent = count + ' shown';
  }
  filter.addEventListener('input', apply);
  only.addEventListener('change', apply);
  apply();
  document.body.setAttribute('data-fleet-report', 'ready');
})();
"""

"""Reports of a finished (or halted) run, built from its journal: JSON, HTML and JUnit XML.

All three read the same :class:`~fleet.reports.model.RunProgress`, the one the live view shows.
"""

from __future__ import annotations

from fleet.store.base import Event, RunRecord

FORMATS = ("json", "html", "junit")


def render_report(fmt: str, run: RunRecord, events: list[Event]) -> str:
    """The report of ``run`` in format ``fmt`` (one of :data:`FORMATS`), as text."""
    from fleet.reports import html, json, junit

    renderers = {"json": json.render, "html": html.render, "junit": junit.render}
    return renderers[fmt](run, events)

"""What the journal keeps of a step's output: the tail of each stream, capped.

Every step's stdout and stderr go into its ``step.end`` event (``data.output``), successful
steps included, so that ``fleet status RUN HOST``, ``--output json`` and the reports can show
what a step printed after the fact. The text is kept as the host sent it (decoded as UTF-8,
invalid bytes replaced); whoever shows it escapes control characters for its medium.
"""

from __future__ import annotations

from typing import Any

from fleet.transport.base import CommandResult

#: Characters kept per stream (the tail: the end of an output says how it went).
KEEP = 4096


def kept(result: CommandResult, *, limit: int = KEEP) -> dict[str, Any]:
    """``{"stdout": ..., "stderr": ..., "truncated": true}``, empty streams left out."""
    out: dict[str, Any] = {}
    for name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        if text:
            out[name] = text[-limit:]
            if len(text) > limit:
                out["truncated"] = True
    if result.truncated:
        out["truncated"] = True
    return out

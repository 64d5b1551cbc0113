"""Human output of list commands: plain tables, and progress lines for slow listings."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from fleet.escape import printable

if TYPE_CHECKING:
    from fleet.cli.app import App


def table(rows: list[list[str]], headers: list[str]) -> None:
    """Columns padded to their widest cell; every cell shown escaped (inventory values and
    remote messages may carry control characters)."""
    rows = [[printable(c) for c in row] for row in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    for row in [headers, *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())


class Progress:
    """Lines on standard error while a listing calls the OVH API once or twice per server (at
    60 requests a minute, 30 servers take a minute): one at the start with the estimate, then
    one at most every ``interval`` seconds (``output.heartbeat``), naming the rate limit when it
    holds calls back."""

    def __init__(
        self,
        what: str,
        total: int,
        *,
        calls_each: int,
        rate_per_minute: float,
        interval: float,
        pacing: Callable[[], str | None] = lambda: None,
        monotonic: Callable[[], float] = time.monotonic,
        estimate: bool = True,
    ) -> None:
        self.what, self.total, self.interval = what, total, interval
        self.pacing, self.monotonic = pacing, monotonic
        self.started = self.last = monotonic()
        seconds = total * calls_each / rate_per_minute * 60
        if not estimate:  # a cache may answer: only lines once it proves slow
            return
        if seconds >= interval:  # quick listings say nothing
            click.echo(
                f"{what}: {total} to fetch, {total * calls_each} API calls at "
                f"{rate_per_minute:g}/min: about {seconds:.0f}s",
                err=True,
            )
        else:
            self.last = float("inf")  # never due

    def done(self, count: int) -> None:
        now = self.monotonic()
        if now - self.last < self.interval or count >= self.total:
            return
        self.last = now
        note = self.pacing()
        elapsed = now - self.started
        line = f"{self.what}: {count} of {self.total} after {elapsed:.0f}s"
        if count:
            line += f", about {elapsed / count * (self.total - count):.0f}s left"
        click.echo(line + (f"; {note}" if note else ""), err=True)


def listing_progress(
    app: App, what: str, total: int, *, calls_each: int, estimate: bool = True
) -> Progress:
    """Progress of a listing that calls the API ``calls_each`` times per item (``estimate``:
    say up front how long it should take)."""
    s = app.settings
    return Progress(
        what,
        total,
        calls_each=calls_each,
        rate_per_minute=s.get("ovh.rate_limit"),
        interval=s.get("output.heartbeat"),
        pacing=app.pacing,
        estimate=estimate,
    )

"""Progress of long computations: one reporter for every command, engines report by callback.

Numerical code never prints. A long loop takes ``progress: ProgressFn | None`` and calls it
with a :class:`Status` after each unit of work (a product, a grid point, a step)::

    def lanczos_eigs(op, k, ..., progress=None):
        ...
        if progress is not None:
            progress(
                Status(done=hvps, total=max_hvps, estimate=theta[0], error=rel_res, target=tol)
            )

The command line opens one phase per piece of work and passes it down::

    reporter = Reporter()                       # bar on a terminal, else a line every 5 s
    with reporter.phase("top-5 eigenvalues", unit="products") as phase:
        eig = lanczos_eigs(op, 5, progress=phase)

On a terminal (stderr a TTY) a phase is a tqdm bar; otherwise it is a plain line on the
``landscape.progress`` logger every ``every_s`` seconds and one when the phase ends, e.g.::

    trace: 57/120 products, trace 2310 rel. stderr 0.018 (target 0.01), 3.1 s/product, ETA 3:37

``total`` is the count the phase is expected to reach, which a converging method may revise
as it goes (the trace from its current standard error, an eigenvalue run from the decay of
its residual); ``limit`` is the budget it stops at regardless. The ETA is taken from the
rate of this phase so far.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

log = logging.getLogger("landscape.progress")


@dataclass(frozen=True)
class Status:
    """Where one phase stands.

    ``done`` of ``total`` units (``total`` may be a revised projection, ``limit`` a hard
    budget); ``estimate`` the current value of what is computed, named ``name``; ``error`` its
    current error measure (named ``error_name``) to be brought below ``target``; ``note`` any
    short free text (e.g. ``"run 2/3"``).
    """

    done: int
    total: int | None = None
    limit: int | None = None
    estimate: float | None = None
    name: str = ""
    error: float | None = None
    error_name: str = "error"
    target: float | None = None
    note: str = ""


ProgressFn = Callable[[Status], None]


def report(progress: ProgressFn | None, **fields) -> None:
    """``progress(Status(**fields))`` when a callback is given (a one-line guard for engines)."""
    if progress is not None:
        progress(Status(**fields))


def projected_total(done: int, error: float, target: float, power: float, limit: int | None) -> int:
    """The count at which ``error ~ done^(-1/power)`` reaches ``target``.

    That is ``done (error/target)^power``.

    ``power=2`` is a Monte Carlo standard error (``1/sqrt(n)``). Capped at ``limit``.
    """
    if not (math.isfinite(error) and error > 0 and target > 0) or done <= 0:
        return limit if limit is not None else done
    needed = max(done, math.ceil(done * (error / target) ** power))
    return min(needed, limit) if limit is not None else needed


def geometric_total(history: list[float], target: float, limit: int | None, window: int = 5) -> int:
    """The count at which a geometrically decaying error (last ``window`` values of
    ``history``, one per unit) reaches ``target``; ``limit`` when it is not decaying."""
    done = len(history)
    recent = [e for e in history[-window:] if e > 0 and math.isfinite(e)]
    if done <= 1 or len(recent) < 2 or target <= 0:
        return limit if limit is not None else done
    rate = (math.log(recent[-1]) - math.log(recent[0])) / (len(recent) - 1)
    if recent[-1] <= target:
        return done
    if not rate < 0:
        return limit if limit is not None else done
    needed = done + math.ceil((math.log(target) - math.log(recent[-1])) / rate - 1e-9)
    return min(needed, limit) if limit is not None else needed


def clock(seconds: float) -> str:
    """``h:mm:ss`` or ``m:ss``; ``?`` when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:d}:{s:02d}"


def _number(value: float) -> str:
    return f"{value:.4g}"


def describe(status: Status) -> str:
    """The estimate and its error against the target, e.g.
    ``lambda1 41.3 rel. residual 2.1e-03 (target 1e-04)``; empty when there is none."""
    parts = []
    if status.estimate is not None:
        parts.append(f"{status.name} {_number(status.estimate)}".strip())
    if status.error is not None:
        # Two significant digits always ("7.0e-09", not "7e-09"; "0.020", not "0.02").
        text = f"{status.error_name} {status.error:#.2g}"
        if status.target is not None:
            text += f" (target {status.target:.2g})"
        parts.append(text)
    if status.note:
        parts.append(status.note)
    return ", ".join(parts)


class Phase:
    """One named piece of work; a :data:`ProgressFn` and a context manager.

    Use it as the callback (``phase(status)``), or for plain counting loops
    ``phase.advance()``, which adds one to ``done`` and keeps the other fields.
    """

    def __init__(
        self, reporter: Reporter, name: str, total: int | None, unit: str, initial: int
    ) -> None:
        self.reporter, self.name, self.unit = reporter, name, unit
        self.status = Status(done=initial, total=total)
        self.initial = initial
        self.started = reporter.clock()
        self.last_line = self.started
        self.lines = 0
        self.closed = False
        self.bar = reporter.make_bar(name, total, unit, initial)

    # ----------------------------------------------------------------- updates
    def __call__(self, status: Status) -> None:
        if status.total is None and self.status.total is not None and status.limit is None:
            status = Status(**{**status.__dict__, "total": self.status.total})
        previous = self.status.done
        self.status = status
        if not self.reporter.enabled:
            return
        if self.bar is not None:
            self._update_bar(previous)
            return
        now = self.reporter.clock()
        if now - self.last_line >= self.reporter.every_s:
            self.last_line = now
            self._line()

    def advance(self, n: int = 1, **fields) -> None:
        """``done += n``; ``fields`` replace those of the last status."""
        self(Status(**{**self.status.__dict__, **fields, "done": self.status.done + n}))

    # ----------------------------------------------------------------- derived
    @property
    def expected_total(self) -> int | None:
        """The count the phase is expected to reach; None while only a budget is known (a
        method's first stage, before it can project), so that no ETA is made up from it."""
        return self.status.total

    def seconds_per_unit(self) -> float:
        worked = self.status.done - self.initial
        return (self.reporter.clock() - self.started) / worked if worked > 0 else math.nan

    def eta(self) -> float:
        total = self.expected_total
        if total is None:
            return math.nan
        return max(total - self.status.done, 0) * self.seconds_per_unit()

    def text(self) -> str:
        """The plain line: name, count/total, estimate vs target, rate and ETA."""
        s, total = self.status, self.expected_total
        count = f"{s.done}/{total}" if total is not None else f"{s.done}"
        if s.limit is not None and s.total != s.limit:
            count += f" (limit {s.limit})"
        pieces = [f"{count} {self.unit}".rstrip()]
        detail = describe(s)
        if detail:
            pieces.append(detail)
        rate = self.seconds_per_unit()
        if math.isfinite(rate):
            pieces.append(f"{rate:.3g} s/{self.unit.rstrip('s') or 'unit'}")
            if total is not None:
                pieces.append(f"ETA {clock(self.eta())}")
        return f"{self.name}: " + ", ".join(pieces)

    # ----------------------------------------------------------------- output
    def _line(self) -> None:
        self.lines += 1
        log.info("%s", self.text())

    def _update_bar(self, previous: int) -> None:
        bar, s = self.bar, self.status
        total = self.expected_total
        if total is not None and bar.total != total:
            bar.total = max(total, s.done)
        bar.update(s.done - previous)
        detail = describe(s)
        if detail:
            bar.set_postfix_str(detail, refresh=False)

    def close(self) -> None:
        """End the phase: the bar closes, or a last plain line says where it ended."""
        if self.closed:
            return
        self.closed = True
        if not self.reporter.enabled:
            return
        if self.bar is not None:
            self.bar.close()
            return
        seconds = self.reporter.clock() - self.started
        detail = describe(self.status)
        log.info(
            "%s: %d %s in %.1f s%s",
            self.name,
            self.status.done,
            self.unit,
            seconds,
            f", {detail}" if detail else "",
        )

    def __enter__(self) -> Phase:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Reporter:
    """Opens :class:`Phase` objects that all look the same.

    ``enabled=False`` (``--quiet``) shows nothing; ``bar=None`` picks a tqdm bar when
    ``stream`` is a terminal, plain log lines every ``every_s`` seconds otherwise.
    """

    def __init__(
        self,
        enabled: bool = True,
        *,
        bar: bool | None = None,
        every_s: float = 5.0,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.bar = bool(enabled and (self.stream.isatty() if bar is None else bar))
        self.every_s = every_s
        self.clock = clock

    def phase(
        self, name: str, total: int | None = None, *, unit: str = "", initial: int = 0
    ) -> Phase:
        return Phase(self, name, total, unit, initial)

    def make_bar(self, name: str, total: int | None, unit: str, initial: int):
        if not self.bar:
            return None
        from tqdm import tqdm

        return tqdm(
            total=total,
            initial=initial,
            desc=name,
            unit=f" {unit}" if unit else "it",
            file=self.stream,
            dynamic_ncols=True,
            leave=True,
        )


def cli_reporter(enabled: bool | None = None, bar: bool | None = None) -> Reporter:
    """The reporter of a command: on unless ``--quiet`` turned the progress logger off."""
    if enabled is None:
        enabled = log.isEnabledFor(logging.INFO)
    return Reporter(enabled, bar=bar)

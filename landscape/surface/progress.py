"""Progress with an ETA on stderr: a tqdm bar on a terminal, else a log line every few seconds."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("landscape.surface")


class Progress:
    def __init__(self, total: int, *, initial: int = 0, desc: str = "points", every_s: float = 5.0,
                 enabled: bool = True) -> None:
        self.total, self.count, self.desc, self.every_s = total, initial, desc, every_s
        self.enabled = enabled
        self.start = time.monotonic()
        self.started_at = initial
        self.last_log = self.start
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, unit="pt", file=sys.stderr, leave=False)

    def update(self, n: int = 1) -> None:
        self.count += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if self.enabled and (now - self.last_log >= self.every_s or self.count == self.total):
            self.last_log = now
            done_here = self.count - self.started_at
            rate = done_here / max(now - self.start, 1e-9)
            eta = (self.total - self.count) / rate if rate > 0 else float("inf")
            log.info("%s: %d/%d (%.2f/s, ETA %s)", self.desc, self.count, self.total, rate, _clock(eta))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _clock(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:d}:{s:02d}"

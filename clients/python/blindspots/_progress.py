"""A minimal progress bar on stderr (the SDK avoids extra dependencies)."""
from __future__ import annotations

import sys
import time


class ProgressBar:
    def __init__(self, label: str, enabled: "bool | str" = "auto", width: int = 30):
        self.label = label
        # "auto": draw only on a terminal, so pipelines' logs stay clean.
        self.enabled = sys.stderr.isatty() if enabled == "auto" else bool(enabled)
        self.width = width
        self._last = 0.0
        self._shown = False

    def update(self, fraction: float, stage: str = "") -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and fraction < 1.0:
            return
        self._last = now
        filled = int(self.width * max(0.0, min(fraction, 1.0)))
        bar = "#" * filled + "-" * (self.width - filled)
        sys.stderr.write(f"\r{self.label} [{bar}] {fraction * 100:5.1f}% {stage[:40]:<40}")
        sys.stderr.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            sys.stderr.write("\n")
            sys.stderr.flush()

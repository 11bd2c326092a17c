"""Transfer progress: one line per blob and a total, redrawn in place on a terminal and
printed as plain lines (start, finish) otherwise, so logs stay readable."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


def human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.1f}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    return f"{n:.1f}GB"


class Progress:
    def __init__(self, verb: str, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.verb = verb
        self.out = stream or sys.stderr
        self.quiet = quiet
        self.tty = self.out.isatty() and not quiet
        self._lock = threading.Lock()
        self._items: dict[str, list[float]] = {}  # key -> [done, total, started, finished]
        self._notes: dict[str, str] = {}
        self._drawn = 0
        self._last = 0.0
        self.started = time.monotonic()

    def add(self, key: str, total: int, note: str = "") -> None:
        with self._lock:
            self._items[key] = [0, total, time.monotonic(), 0]
            self._notes[key] = note or "waiting"
        if not self.tty:
            self._line(f"{self.verb} {key[7:19]}: {human(total)}" + (f" ({note})" if note else ""))

    def update(self, key: str, n: int) -> None:
        with self._lock:
            item = self._items[key]
            item[0] += n
            self._notes[key] = "downloading" if self.verb == "Pulling" else "uploading"
            now = time.monotonic()
            if self.tty and now - self._last > 0.1:
                self._last = now
                self._redraw()

    def finish(self, key: str, note: str) -> None:
        with self._lock:
            item = self._items[key]
            item[3] = time.monotonic()
            self._notes[key] = note
            if self.tty:
                self._redraw()
        if not self.tty:
            took = max(item[3] - item[2], 1e-6)
            self._line(f"{key[7:19]}: {note} {human(item[0])} in {took:.2f}s ({human(item[0] / took)}/s)")

    def _rate(self, item: list[float]) -> str:
        end = item[3] or time.monotonic()
        return human(item[0] / max(end - item[2], 1e-6)) + "/s"

    def _redraw(self) -> None:
        lines = [
            f"{key[7:19]}: {self._notes[key]:<12} {human(i[0]):>9}/{human(i[1]):<9} {self._rate(i)}"
            for key, i in self._items.items()
        ]
        done = sum(i[0] for i in self._items.values())
        total = sum(i[1] for i in self._items.values())
        took = max(time.monotonic() - self.started, 1e-6)
        lines.append(f"total: {human(done)}/{human(total)} {human(done / took)}/s")
        up = f"\x1b[{self._drawn}F" if self._drawn else ""
        self.out.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
        self.out.flush()
        self._drawn = len(lines)

    def _line(self, text: str) -> None:
        if not self.quiet:
            with self._lock:
                print(text, file=self.out, flush=True)

    def close(self) -> None:
        done = sum(i[0] for i in self._items.values())
        took = max(time.monotonic() - self.started, 1e-6)
        if self.tty:
            with self._lock:
                self._redraw()
        elif self._items:
            self._line(f"total: {human(done)} in {took:.2f}s ({human(done / took)}/s)")

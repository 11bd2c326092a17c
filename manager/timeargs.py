"""Docker's time arguments (``--since``, ``--until`` of ``logs`` and ``events``), read as
the docker CLI's ``timetypes.GetTimestamp`` reads them: a Go duration back from now
(``10m``, ``1h30m``, ``1.5s``), an RFC 3339 date (with or without fraction and zone; none
means local time, as Go's ``time.ParseInLocation`` with ``time.Local``), a bare date, or
unix seconds with an optional fraction."""

from __future__ import annotations

import math
import re
import time
from datetime import datetime

from ocirt.manager.errors import ManagerError

_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}
_PART = r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)"
_DURATION = re.compile(rf"^([-+]?)((?:{_PART})+)$")
_UNIX = re.compile(r"^(\d+)(?:\.(\d{1,9}))?$")


def go_duration_ns(text: str) -> int | None:
    """Go's ``time.ParseDuration`` in nanoseconds; None if ``text`` is not a duration."""
    m = _DURATION.match(text)
    if m is None:
        return None
    total = sum(round(float(num) * _UNIT_NS[unit]) for num, unit in re.findall(_PART, m.group(2)))
    return -total if m.group(1) == "-" else total


def timestamp_ns(text: str, flag: str, now_ns: int | None = None) -> int:
    """``text`` as nanoseconds since the epoch; a bad value is one line naming ``flag``."""
    if now_ns is None:
        now_ns = time.time_ns()
    duration = go_duration_ns(text)
    if duration is not None:
        return now_ns - duration
    unix = _UNIX.match(text)
    if unix is not None:
        return int(unix.group(1)) * 10**9 + int((unix.group(2) or "0").ljust(9, "0"))
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise ManagerError(
            f"{flag}: invalid time {text!r} (RFC 3339, unix seconds or a duration such as 10m)"
        ) from None
    whole = math.floor(stamp.timestamp())  # a date without zone is local time, as docker's
    return whole * 10**9 + stamp.microsecond * 1000

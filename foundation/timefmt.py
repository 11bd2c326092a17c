"""RFC 3339 timestamps in UTC, the shapes runc, conmon and docker write.

Built on ``time.strftime`` rather than ``datetime``: ``datetime`` costs an import on the
runtime's hot path (``create`` stamps ``state.json``) and in every shim.
"""

from __future__ import annotations

import time

_second = -1
_second_text = ""


def rfc3339nano(ns: int) -> str:
    """UTC with all nine fraction digits, e.g. ``2026-01-02T03:04:05.000000001Z`` (Go's
    ``time.RFC3339Nano`` without trimming zeros, as runc's ``created`` and conmon's logs).
    The whole-second text is kept: a shim stamps every log record with it."""
    global _second, _second_text
    sec, frac = divmod(ns, 1_000_000_000)
    if sec != _second:
        _second, _second_text = sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return f"{_second_text}.{frac:09d}Z"


def rfc3339nano_now() -> str:
    return rfc3339nano(time.time_ns())


def rfc3339nano_of(seconds: float) -> str:
    """``rfc3339nano`` of a ``time.time()`` value (the manager records those)."""
    whole = int(seconds // 1)
    return rfc3339nano(whole * 1_000_000_000 + int((seconds - whole) * 1e9))


def rfc3339(seconds: float) -> str:
    """Whole seconds, e.g. ``2026-01-02T03:04:05Z`` (docker's volume and image dates)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))

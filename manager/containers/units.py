"""Sizes, rates and limits as docker's flags spell them (``512m``, ``1.5g``, ``1024``).

Every value is checked here, before anything is made: a limit the spec or the kernel cannot
hold (infinity, NaN, beyond 64 bits) is the user's error, named by its flag."""

from __future__ import annotations

import math
import os

from ocirt.foundation.units import parse_size
from ocirt.manager.errors import ManagerError

INT64_MAX = (1 << 63) - 1  # the spec's limits are int64
UINT64_MAX = (1 << 64) - 1
SECONDS_MAX = (1 << 31) - 1  # timeouts: what a wait or a timer accepts everywhere
MIN_CPUS = 0.01  # 1 ms per 100 ms period: the kernel's smallest CFS quota


def size(text: str, flag: str) -> int:
    """Bytes, as docker reads ``-m 512m`` or ``--log-opt max-size=10MiB`` (foundation/units.py)."""
    try:
        return parse_size(text)
    except ValueError as exc:
        raise ManagerError(f"{flag}: invalid size {text!r}: {exc}") from None


def _finite(number: str, flag: str, what: str, text: str) -> float:
    try:
        value = float(number)
    except ValueError:
        raise ManagerError(f"{flag}: invalid {what} {text!r}") from None
    if not math.isfinite(value):
        raise ManagerError(f"{flag}: invalid {what} {text!r}: not a finite number")
    return value


def integer(text: str, flag: str, low: int | None = None, high: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ManagerError(f"{flag}: {text!r} is not an integer") from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise ManagerError(f"{flag}: {value} is out of range {low}..{high}")
    return value


def cpus(text: str) -> float:
    """As docker: from 0.01 (the kernel's 1 ms quota) to the CPUs this host has."""
    value = _finite(text, "--cpus", "number", text)
    available = os.cpu_count() or 1
    if value < MIN_CPUS or value > available:
        raise ManagerError(f"--cpus: {text!r} is out of range 0.01..{available} (CPUs available)")
    return value


def cpu_list(text: str, flag: str) -> str:
    """``0-3,5``: each entry a number or an increasing range, as the kernel's cpuset takes."""
    for part in text.split(","):
        first, sep, last = part.partition("-")
        ends = [first, last] if sep else [first]
        if not all(e.isascii() and e.isdigit() for e in ends) or int(ends[0]) > int(ends[-1]):
            raise ManagerError(f"{flag}: invalid list {text!r} (e.g. 0-3,5)")
    return text


def key_value(text: str, flag: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ManagerError(f"{flag}: expected KEY=VALUE, got {text!r}")
    return key, value


def tmpfs_option(option: str, flag: str) -> str:
    """A tmpfs mount option, ``size=`` in bytes (or a percentage of memory) and ``mode=``
    in octal checked here, as docker does: the kernel's answer would only be EINVAL."""
    key, sep, value = option.partition("=")
    if sep and key == "size":
        if value.endswith("%") and value[:-1].isascii() and value[:-1].isdigit():
            return option
        return f"size={size(value, f'{flag} size')}"
    if sep and key == "mode" and not (value and value.isascii() and set(value) <= set("01234567")):
        raise ManagerError(f"{flag}: invalid mode {value!r}: expected octal")
    return option

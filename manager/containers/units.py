"""Sizes, rates and limits as docker's flags spell them (``512m``, ``1.5g``, ``1024``)."""

from __future__ import annotations

from ocirt.manager.errors import ManagerError

_SUFFIX = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def size(text: str, flag: str) -> int:
    """Bytes from ``N[bkmgt][b]``, binary multiples as docker reads them."""
    raw = text.strip().lower()
    if raw.endswith("b") and len(raw) > 1 and raw[-2] in "kmgt":
        raw = raw[:-1]
    unit = raw[-1] if raw and raw[-1] in _SUFFIX else ""
    number = raw[: len(raw) - len(unit)]
    try:
        value = float(number)
    except ValueError:
        raise ManagerError(f"{flag}: invalid size {text!r}") from None
    if value < 0:
        raise ManagerError(f"{flag}: invalid size {text!r}: negative")
    return int(value * _SUFFIX[unit])


def integer(text: str, flag: str, low: int | None = None, high: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ManagerError(f"{flag}: {text!r} is not an integer") from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise ManagerError(f"{flag}: {value} is out of range {low}..{high}")
    return value


def cpus(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ManagerError(f"--cpus: {text!r} is not a number") from None
    if value <= 0:
        raise ManagerError(f"--cpus: {text!r} must be positive")
    return value


def key_value(text: str, flag: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ManagerError(f"{flag}: expected KEY=VALUE, got {text!r}")
    return key, value

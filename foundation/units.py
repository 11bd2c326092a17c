"""Sizes as docker and runc read them: one parser for ``ocirtctl``'s flags, ``ocirt update``
and ``ocirt-shim --log-max-size``.

The grammar is docker/go-units' ``RAMInBytes`` (what runc's ``--memory`` flags and docker's
``-m`` use): digits with an optional fraction, one optional space, then an optional unit
``k m g t p`` with optional ``i`` and ``b`` in any case; every unit is a power of 1024
(``64m``, ``64MB``, ``64 MiB`` are all 64 MiB); ``b`` alone means bytes. Exponents,
signs, ``inf`` and ``nan`` are not sizes. go-units computes in float64; a whole number is
computed exactly here, so a size above 2**53 keeps its last digits. Above int64, the
spec's type, is refused. Hand-written rather than a regular expression: ``ocirt update``
would pay for importing ``re``.
"""

from __future__ import annotations

INT64_MAX = (1 << 63) - 1
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_DIGITS = "0123456789"


def parse_size(text: str) -> int:
    """Bytes; ``ValueError`` says what is wrong with ``text``."""
    end = 0
    while end < len(text) and (text[end] in _DIGITS or text[end] == "."):
        end += 1
    number, rest = text[:end], text[end:].removeprefix(" ")
    unit = rest[:1].lower() if rest[:1] and rest[:1].lower() in _UNITS else ""
    if not _is_number(number) or rest[len(unit) :].lower() not in ("", "i", "b", "ib"):
        raise ValueError("not a size (bytes, or with a unit: 512k, 64m, 1.5g, 2GiB)")
    if len(number.partition(".")[0].lstrip("0")) > 19:
        raise ValueError(f"above {INT64_MAX} bytes")
    value = float(number) * _UNITS[unit] if "." in number else int(number) * _UNITS[unit]
    if value > INT64_MAX:  # also a float's infinity, from 309 digits on
        raise ValueError(f"above {INT64_MAX} bytes")
    return int(value)


def _is_number(number: str) -> bool:
    """``\\d+(\\.\\d+)?``: go-units' pattern allows more dots, which its float parse refuses."""
    whole, dot, fraction = number.partition(".")
    if not whole or whole.strip(_DIGITS):
        return False
    return not dot or (fraction != "" and not fraction.strip(_DIGITS))

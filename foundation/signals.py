"""Signal names and numbers as ``kill`` accepts them (``TERM``, ``SIGTERM``, ``15``,
``RTMIN+3``), for ``ocirt kill`` and ``ocirtctl kill``/``--stop-signal``.

Built from ``_signal``'s constants: the ``signal`` module would import ``enum`` (5 ms).
"""

from __future__ import annotations

import _signal

from ocirt.foundation.errors import OcirtError

_NAMES = {
    name[3:]: getattr(_signal, name)
    for name in dir(_signal)
    if name.startswith("SIG") and not name.startswith(("SIG_", "SIGRT")) and name != "SIGIOT"
}


def parse(text: str) -> int:
    """A signal number; ``RTMIN+n`` and ``RTMAX-n`` as docker spells the realtime ones."""
    if text.isascii() and text.isdigit():
        number = int(text)
        if not 0 < number < _signal.NSIG:
            raise OcirtError(f"invalid signal {text!r}: out of range 1..{_signal.NSIG - 1}")
        return number
    name = text.upper().removeprefix("SIG")
    if name in _NAMES:
        return int(_NAMES[name])
    for base, sign in (("RTMIN", "+"), ("RTMAX", "-")):
        offset = name.removeprefix(base)
        if offset != name and (not offset or _is_offset(offset, sign)):
            n = int(getattr(_signal, f"SIG{base}")) + int(offset or 0)
            if _signal.SIGRTMIN <= n <= _signal.SIGRTMAX:
                return n
    raise OcirtError(f"unknown signal {text!r}")


def _is_offset(text: str, sign: str) -> bool:
    return text[:1] == sign and text[1:].isascii() and text[1:].isdigit()

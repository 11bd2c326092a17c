"""Signal names and numbers as ``kill`` accepts them (``TERM``, ``SIGTERM``, ``15``).

Built from ``_signal``'s constants: the ``signal`` module would import ``enum`` (5 ms).
"""

from __future__ import annotations

import _signal
import os

from ocirt.runtime.errors import OcirtError

_NAMES = {
    name[3:]: getattr(_signal, name)
    for name in dir(_signal)
    if name.startswith("SIG") and not name.startswith(("SIG_", "SIGRT")) and name != "SIGIOT"
}


def parse(text: str) -> int:
    if text.isdigit():
        number = int(text)
        if not 0 < number < _signal.NSIG:
            raise OcirtError(f"invalid signal {text!r}: out of range 1..{_signal.NSIG - 1}")
        return number
    name = text.upper().removeprefix("SIG")
    if name in _NAMES:
        return int(_NAMES[name])
    for base, sign in (("RTMIN", 1), ("RTMAX", -1)):
        if name.startswith(base):
            offset = name[len(base) :].lstrip("+-")
            n = int(getattr(_signal, f"SIG{base}")) + sign * int(offset or 0)
            if offset.isdigit() or not offset:
                return n
    raise OcirtError(f"unknown signal {text!r}")


FORWARDED = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGCONT")


class Relay:
    """Passes the signals a foreground ``run``/``exec``/``restore`` receives on to its
    container process. Installed before that process exists: an ``exec``'d program runs the
    moment it is started, and a SIGTERM arriving before the handlers would kill ocirt
    instead of reaching the program. Signals caught before the pid is known are held."""

    def __init__(self) -> None:
        self.pid = 0
        self.pending: list[int] = []
        for name in FORWARDED:
            _signal.signal(getattr(_signal, name), self._caught)

    def _caught(self, signum: int, _frame: object) -> None:
        if not self.pid:
            self.pending.append(signum)
            return
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def target(self, pid: int) -> None:
        self.pid = pid
        held, self.pending = self.pending, []
        for signum in held:
            self._caught(signum, None)

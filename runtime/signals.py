"""Signals a foreground ``run``/``exec``/``restore`` passes on to its container process.

``_signal`` rather than ``signal``, which would import ``enum`` (5 ms)."""

from __future__ import annotations

import _signal
import os

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


def wait_for_exit(pid: int) -> int:
    """Reap every orphan re-parented to us until the init itself is reaped."""
    while True:
        try:
            reaped, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255
        if reaped == pid:
            if os.WIFSIGNALED(status):
                return 128 + os.WTERMSIG(status)
            return os.WEXITSTATUS(status)

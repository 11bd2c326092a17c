"""Healthchecks on the container's own timer: the shim runs the check through the runtime
(``exec --detach``, as any exec), keeps docker's ``State.Health`` (status, failing streak,
the last five results) in ``health.json``, and runs the manager's health command when the
status changes, which records docker's ``health_status`` event.

docker's rules: a check that exits 0 is healthy and clears the streak; any other exit (or a
check past its timeout, killed, exit code -1) adds to the streak, except during the start
period while nothing has succeeded yet; ``Retries`` failures in a row make it unhealthy.
"""

from __future__ import annotations

import os
import time

from ocirt.foundation import fastjson
from ocirt.foundation.timefmt import rfc3339nano
from ocirt.shim.execs import Exec
from ocirt.shim.runtime import RuntimeFailed

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ocirt.shim.server import Shim

MAX_OUTPUT = 4096  # docker keeps the first 4 KiB of a check's output
KEEP = 5  # results in Log
FILE = "health.json"
_SECOND = 1_000_000_000


class Probe(Exec):
    """One check: an exec whose output is kept for the result instead of sent to a client."""

    def __init__(self, shim: Shim, seq: int, health: Health) -> None:
        super().__init__(shim, None, seq)  # type: ignore[arg-type]
        self.health = health
        self.output = b""
        self.started = time.time_ns()
        self.deadline = time.monotonic() + health.config["Timeout"] / _SECOND
        self.timed_out = False

    def _deliver(self, fd: int, data: bytes) -> None:
        self.output = (self.output + data)[:MAX_OUTPUT]

    def exited(self, status: int) -> None:
        self._drain()
        if self.timed_out:
            code = -1
        else:
            code = os.waitstatus_to_exitcode(status)
            code = 128 - code if code < 0 else code
        self.health.finished(self, code)


class Health:
    def __init__(self, shim: Shim, config: dict[str, Any], command: list[str]) -> None:
        self.shim = shim
        self.config = config
        self.command = command
        self.status = "starting"
        self.streak = 0
        self.log: list[dict[str, Any]] = []
        self.began = time.monotonic()
        self.next_at = self.began + config["Interval"] / _SECOND
        self.probe: Probe | None = None
        self.succeeded = False
        self._write()

    def args(self) -> list[str]:
        test = self.config["Test"]
        return ["/bin/sh", "-c", test[1]] if test[0] == "CMD-SHELL" else list(test[1:])

    def wait(self) -> float:
        """Seconds until the next thing to do: start a check, or end one past its timeout."""
        due: float = self.probe.deadline if self.probe is not None else self.next_at
        return max(0.0, due - time.monotonic())

    def tick(self) -> None:
        now = time.monotonic()
        if self.probe is not None:
            if now >= self.probe.deadline and not self.probe.timed_out:
                self.probe.timed_out = True
                try:
                    os.kill(self.probe.pid, 9)
                except ProcessLookupError:
                    pass
            return
        if now >= self.next_at:
            self._start()

    def _start(self) -> None:
        self.shim.exec_seq += 1
        probe = Probe(self.shim, self.shim.exec_seq, self)
        try:
            probe.start({"args": self.args()})
        except (RuntimeFailed, OSError) as exc:
            self.probe = probe
            probe.output = str(exc).encode()[:MAX_OUTPUT]
            self.finished(probe, -1)
            return
        self.probe = probe
        self.shim.execs[probe.pid] = probe

    def finished(self, probe: Probe, code: int) -> None:
        self.probe = None
        self.next_at = time.monotonic() + self.config["Interval"] / _SECOND
        output = probe.output.decode("utf-8", "replace")
        if probe.timed_out:
            output = f"Health check exceeded timeout ({self.config['Timeout'] / _SECOND:g}s)"
        entry = {"Start": rfc3339nano(probe.started), "End": rfc3339nano(time.time_ns())}
        self.log = [*self.log, entry | {"ExitCode": code, "Output": output}][-KEEP:]
        before = self.status
        if code == 0:
            self.succeeded, self.streak, self.status = True, 0, "healthy"
        elif self.succeeded or time.monotonic() - self.began >= self.config["StartPeriod"] / _SECOND:
            self.streak += 1
            if self.streak >= self.config["Retries"]:
                self.status = "unhealthy"
        self._write()
        if self.status != before:
            self._announce()

    def _write(self) -> None:
        doc = {"Status": self.status, "FailingStreak": self.streak, "Log": self.log}
        tmp = self.shim.path(FILE + ".tmp")
        with open(tmp, "w") as f:
            f.write(fastjson.dumps(doc))
        os.replace(tmp, self.shim.path(FILE))

    def _announce(self) -> None:
        if not self.command:
            return
        argv = [*self.command, self.status]
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        actions = [(os.POSIX_SPAWN_DUP2, null, n) for n in range(3)]
        try:
            pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions)
        except OSError:
            return
        finally:
            os.close(null)
        self.shim.reaped.pop(pid, None)

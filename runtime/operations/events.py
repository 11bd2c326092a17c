"""``ocirt events``: the container's stats once (``--stats``), or a stream of JSON lines:
a ``stats`` event every ``--interval`` (default 5s, first one after one interval, as in
runc) and an ``oom`` event when the memory cgroup runs out of memory, until the
container's init exits (status 0).

OOM wake-ups come from the kernel, not from polling: on cgroup v1 an eventfd registered
on ``memory.oom_control`` through ``cgroup.event_control`` (one event per notification,
as runc reports them); on v2 ``memory.events`` signals POLLPRI when it changes, and an
event is reported when its ``oom_kill`` count grows. The init's pidfd says when to stop.
"""

from __future__ import annotations

import os
import select
import sys
import time

from ocirt.foundation import fastjson
from ocirt.runtime import state as statemod
from ocirt.runtime.errors import OcirtError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ocirt.runtime.api import Runtime
    from ocirt.runtime.cgroups import Cgroup
    from ocirt.runtime.log import Log

DEFAULT_INTERVAL = 5.0
# Go's time.ParseDuration units, in seconds
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_NUMBER = "0123456789."


def events_container(rt: Runtime, container_id: str, stats: bool, interval: float) -> None:
    from ocirt.runtime.cgroups import load_cgroup

    if interval <= 0:
        raise OcirtError("--interval: must be greater than 0")
    st = statemod.load(rt.root, container_id)
    if st.status in (statemod.STOPPED, statemod.CREATING) or not st.cgroup:
        raise OcirtError(f"container {st.id!r} is not running")
    cg = load_cgroup(st.cgroup)
    if stats:
        emit(stats_event(st.id, cg))
        return
    stream(st, cg, interval, rt.log)


def parse_duration(text: str) -> float:
    """Go's duration syntax (``5s``, ``250ms``, ``1m30s``, ``1.5h``), in seconds."""
    rest = text[1:] if text[:1] in ("+", "-") else text
    sign = -1.0 if text[:1] == "-" else 1.0
    if not rest:
        raise OcirtError(f"--interval: invalid duration {text!r} (like 5s, 500ms or 1m30s)")
    if rest == "0":
        return 0.0
    total = 0.0
    while rest:
        end = 0
        while end < len(rest) and rest[end] in _NUMBER:
            end += 1
        number, rest = rest[:end], rest[end:]
        end = 0
        while end < len(rest) and rest[end] not in _NUMBER:
            end += 1
        unit, rest = rest[:end], rest[end:]
        try:
            total += float(number) * _UNITS[unit]
        except (ValueError, KeyError):
            raise OcirtError(f"--interval: invalid duration {text!r} (like 5s, 500ms or 1m30s)") from None
    return sign * total


def emit(event: dict[str, Any]) -> None:
    sys.stdout.write(fastjson.dumps(event) + "\n")
    sys.stdout.flush()


def stats_event(container_id: str, cg: Cgroup) -> dict[str, Any]:
    from ocirt.runtime.stats import read_stats

    return {"type": "stats", "id": container_id, "data": read_stats(cg)}


def stream(st: statemod.State, cg: Cgroup, interval: float, log: Log) -> None:
    try:
        pidfd = os.pidfd_open(st.pid)
    except ProcessLookupError:
        raise OcirtError(f"container {st.id!r} is not running") from None
    watch = None
    try:
        if not statemod.init_alive(st):
            return
        watch = OomWatch.open(cg)
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if watch is not None:
            poller.register(watch.fd, watch.mask)
        _loop(st.id, cg, interval, poller, pidfd, watch, log)
    finally:
        os.close(pidfd)
        if watch is not None:
            watch.close()


def _loop(
    cid: str, cg: Cgroup, interval: float, poller: select.poll, pidfd: int, watch: OomWatch | None, log: Log
) -> None:
    next_stats = time.monotonic() + interval
    while True:
        wait = max(next_stats - time.monotonic(), 0.0)
        ready = {fd for fd, _ in poller.poll(wait * 1000)}
        if watch is not None and (watch.fd in ready or pidfd in ready):
            for _ in range(watch.fired()):
                emit({"type": "oom", "id": cid})
        if pidfd in ready:
            return
        now = time.monotonic()
        if now >= next_stats:
            next_stats = max(next_stats + interval, now)
            try:
                emit(stats_event(cid, cg))
            except OSError as exc:
                log.warning(f"reading the stats of {cid}: {exc.strerror}: {exc.filename}")


class OomWatch:
    """A pollable fd (``fd``, ``mask``) that wakes on an OOM in the memory cgroup."""

    __slots__ = ("_kills", "_others", "fd", "mask", "version")

    def __init__(self, fd: int, mask: int, version: int, others: list[int]) -> None:
        self.fd, self.mask, self.version = fd, mask, version
        self._others = others
        self._kills = self._oom_kills() if version == 2 else 0

    @classmethod
    def open(cls, cg: Cgroup) -> OomWatch | None:
        """None where the container has no memory cgroup to watch."""
        if cg.version == 2:
            try:
                fd = os.open(os.path.join(cg.paths[""], "memory.events"), os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return None
            return cls(fd, select.POLLPRI, 2, [])
        memory = cg.paths.get("memory")
        return None if memory is None else _open_v1(memory)

    def fired(self) -> int:
        """How many OOM events happened since the last call."""
        if self.version == 1:
            try:
                return 1 if os.eventfd_read(self.fd) else 0
            except BlockingIOError:
                return 0
        kills = self._oom_kills()
        grown, self._kills = kills > self._kills, kills
        return int(grown)

    def _oom_kills(self) -> int:
        for line in os.pread(self.fd, 4096, 0).decode().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def close(self) -> None:
        for fd in (self.fd, *self._others):
            os.close(fd)


def _open_v1(memory: str) -> OomWatch | None:
    """cgroup-v1 memory.rst: write "<eventfd> <fd of memory.oom_control>" to cgroup.event_control."""
    from ocirt.runtime.cgroups import write_file

    try:
        control = os.open(os.path.join(memory, "memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
    try:
        write_file(os.path.join(memory, "cgroup.event_control"), f"{efd} {control}")
    except OSError as exc:
        os.close(efd)
        os.close(control)
        raise OcirtError(f"watching OOM events: {memory}/cgroup.event_control: {exc.strerror}") from None
    return OomWatch(efd, select.POLLIN, 1, [control])

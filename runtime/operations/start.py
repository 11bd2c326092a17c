"""``ocirt start``: release a created container's init by reading its exec fifo."""

from __future__ import annotations

import os
import select

from ocirt.runtime import state as statemod
from ocirt.runtime.errors import OcirtError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ocirt.runtime.log import Log


def start_container(st: statemod.State, log: Log) -> None:
    if st.status == statemod.STOPPED:
        raise OcirtError(f"cannot start container {st.id!r}: it has stopped")
    if st.status != statemod.CREATED:
        raise OcirtError(f"cannot start container {st.id!r}: it is {st.status}, not created")
    try:
        fd = os.open(st.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise OcirtError(f"cannot start container {st.id!r}: it was started already") from None
    try:
        verdict = _await_init(st, fd)
    finally:
        os.close(fd)
    try:
        os.unlink(st.fifo)
    except FileNotFoundError:
        pass
    if verdict != b"0":
        raise OcirtError(verdict[1:].decode(errors="replace"))
    poststart = st.config.get("hooks", {}).get("poststart")
    if poststart:
        _run_poststart(st, poststart, log)


def _run_poststart(st: statemod.State, poststart: list[Any], log: Log) -> None:
    """runtime-spec 1.3: a failing poststart hook is an error; the container is stopped and
    the lifecycle goes on at its destruction (and poststop hooks). Before 1.3 it was a warning."""
    from ocirt.runtime import hooks
    from ocirt.runtime.operations.delete import undo
    from ocirt.specs.config import parse_hooks

    entries = parse_hooks({"poststart": poststart})["poststart"]
    try:
        hooks.run_all(entries, hooks.state_document(st, statemod.RUNNING))
    except OcirtError as exc:
        undo(st, log, exc)
        raise


def _await_init(st: statemod.State, fd: int) -> bytes:
    """A non-blocking open cannot hang on a dead init; poll until it writes, or dies.
    Init writes ``0`` when its program may run, or ``1`` and why it may not."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while True:
        if poller.poll(100):
            try:
                data = os.read(fd, 4096)
            except BlockingIOError:
                continue
            if data:
                return data
        if not statemod.init_alive(st):
            raise OcirtError(f"cannot start container {st.id!r}: its init process has exited")

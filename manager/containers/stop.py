"""``stop``, ``kill``, ``restart``, ``pause`` and ``unpause``.

``stop`` and ``kill`` first mark the container as stopped by the user, under its lock, so
the exit that follows never triggers the restart policy, whichever process sees it first.
"""

from __future__ import annotations

import time

from ocirt.foundation.signals import parse
from ocirt.manager import db
from ocirt.manager.containers import exits, layout, liveness, start, store
from ocirt.manager.containers.runtime import Context
from ocirt.manager.containers.state import ContainerState
from ocirt.manager.containers.store import Container
from ocirt.manager.errors import ManagerError
from ocirt.runtime.errors import OcirtError
from ocirt.shim.client import ShimError

DEFAULT_TIMEOUT = 10
SIGKILL = 9


def signal_number(text: str) -> int:
    try:
        return parse(text)
    except OcirtError as exc:
        raise ManagerError(str(exc)) from None


def _mark_stopping(ctx: Context, ref: str) -> Container | None:
    """The container, flagged as stopped by the user; None if it is not running."""
    conn = db.connect(ctx.root)
    c = store.get(conn, ref)
    with layout.locked(ctx.root, c.id):
        c = store.get(conn, c.id)
        if not c.state.can_stop:
            return None
        c.stopped_by_user = True
        with db.transaction(conn):
            store.save(conn, c)
    if c.state is ContainerState.PAUSED:
        ctx.run("resume", c.id, check=False)
    return c


def stop(ctx: Context, ref: str, timeout: int | None = None) -> None:
    """The stop signal, then SIGKILL to every process after ``timeout`` seconds."""
    c = _mark_stopping(ctx, ref)
    if c is None:
        return
    if timeout is None:
        timeout = c.options.stop_timeout if c.options.stop_timeout is not None else DEFAULT_TIMEOUT
    if not _polite(ctx, c, timeout):
        _kill_all(ctx, c)
    exits.finish(ctx, c.id)
    store.event(ctx.root, c, "stop")


def kill_now(ctx: Context, ref: str) -> None:
    """``rm -f`` of a running container: SIGKILL at once, and no ``stop`` event (docker's
    ``rm -f`` kills, it does not stop)."""
    c = _mark_stopping(ctx, ref)
    if c is not None:
        _kill_all(ctx, c)
        exits.finish(ctx, c.id)


def _polite(ctx: Context, c: Container, timeout: int) -> bool:
    """The stop signal; whether the container exited within ``timeout`` seconds."""
    if timeout <= 0:
        return False
    client = start.shim_client(ctx, c)
    number = signal_number(c.plan.get("stop_signal") or "TERM")
    store.event(ctx.root, c, "kill", {"signal": str(number)})
    try:
        client.kill(number)
        client.wait(timeout=timeout)
    except (ShimError, OSError):
        return False
    return True


def _kill_all(ctx: Context, c: Container) -> None:
    """SIGKILL to every process of the container, through the runtime if the shim is gone."""
    client = start.shim_client(ctx, c)
    store.event(ctx.root, c, "kill", {"signal": str(SIGKILL)})
    try:
        client.kill(SIGKILL, all=True)
        client.wait(timeout=30)
    except (ShimError, OSError):
        ctx.run("kill", "--all", c.id, "KILL", check=False)
        _wait_gone(c, 10.0)


def _wait_gone(c: Container, timeout: float) -> None:
    """Without a shim nobody reaps the init at once: wait until it is gone or a zombie (or
    its pid names another process by now)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and liveness.alive(c):
        time.sleep(0.05)


def kill(ctx: Context, ref: str, signal: str = "KILL") -> None:
    number = signal_number(signal)
    c = _mark_stopping(ctx, ref)
    if c is None:
        raise ManagerError(f"container {ref} is not running")
    store.event(ctx.root, c, "kill", {"signal": str(number)})  # before: the die may come at once
    try:
        start.shim_client(ctx, c).kill(number)
    except ShimError as exc:
        raise ManagerError(f"kill {c.name}: {exc}") from None


def restart(ctx: Context, ref: str, timeout: int | None = None) -> None:
    stop(ctx, ref, timeout)
    c, _ = start.start(ctx, ref)
    store.event(ctx.root, c, "restart")


def pause(ctx: Context, ref: str, resume: bool = False) -> None:
    conn = db.connect(ctx.root)
    c = store.get(conn, ref)
    with layout.locked(ctx.root, c.id):
        c = store.get(conn, c.id)
        running, paused = ContainerState.RUNNING, ContainerState.PAUSED
        want, op, target = (paused, "resume", running) if resume else (running, "pause", paused)
        if not (c.state.can_unpause if resume else c.state.can_pause):
            raise ManagerError(f"container {c.name} is {c.state}, not {want}")
        ctx.run(op, c.id)
        c.state = c.state.to(target)
        with db.transaction(conn):
            store.save(conn, c)
    store.event(ctx.root, c, "unpause" if resume else "pause")

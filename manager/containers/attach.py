"""The terminal side of ``run`` (foreground), ``start -a``, ``attach`` and ``exec``: stdio
through the shim's socket, the local terminal in raw mode when the container has a tty,
and Ctrl-p Ctrl-q to detach, as the seed describes."""

from __future__ import annotations

import os
import sys
import termios
import tty
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from ocirt.manager import db
from ocirt.manager.containers import exits, start, status, store
from ocirt.manager.containers.runtime import Context
from ocirt.manager.containers.store import Container
from ocirt.manager.errors import ManagerError, start_failure
from ocirt.shim.client import ShimClient, ShimError

T = TypeVar("T")


@contextmanager
def raw_terminal(enabled: bool) -> Iterator[tuple[int, int] | None]:
    """Raw mode on stdin while attached to a tty container; the window size to pass on, or
    None for a terminal whose size reads 0x0 (a serial line, a fresh pty): docker skips
    that resize instead of failing."""
    if not enabled or not os.isatty(0):
        yield None
        return
    saved = termios.tcgetattr(0)
    size = os.get_terminal_size(0)
    tty.setraw(0)
    try:
        yield (size.lines, size.columns) if size.lines and size.columns else None
    finally:
        termios.tcsetattr(0, termios.TCSADRAIN, saved)


def _guard(what: str, call: Callable[[], T]) -> T:
    try:
        return call()
    except ShimError as exc:
        raise start_failure(what, str(exc)) if what == "exec" else ManagerError(f"{what}: {exc}") from None
    except OSError as exc:
        raise ManagerError(f"{what}: {exc}") from None


def run_foreground(ctx: Context, ref: str, stdin: bool | None = None) -> int:
    """Start ``ref`` with output (and stdin with ``-i``) attached from its first byte."""
    store.event(ctx.root, store.get(db.connect(ctx.root), ref), "attach")  # before start, as docker's
    c, handle = start.start(ctx, ref, no_start=True)
    client = handle.client
    with_stdin = c.options.interactive if stdin is None else stdin
    with raw_terminal(c.options.tty and with_stdin) as size:

        def go() -> None:
            if size is not None:
                client.resize(*size)
            client.start()

        result = _guard("attach", lambda: client.attach(stdin=0 if with_stdin else None, on_attached=go))
    if result is None:
        return 0
    exits.finish(ctx, c.id)
    return result.exit_code


def attach_container(ctx: Context, ref: str, stdin: bool) -> int:
    c = status.refresh(ctx, store.get(db.connect(ctx.root), ref))
    if not c.state.can_exec:
        raise ManagerError(f"container {c.name} is not running")
    client = start.shim_client(ctx, c)
    store.event(ctx.root, c, "attach")
    with_stdin = stdin and c.options.interactive
    with raw_terminal(c.options.tty and with_stdin) as size:
        if size is not None:
            _guard("attach", lambda: client.resize(*size))
        result = _guard("attach", lambda: client.attach(stdin=0 if with_stdin else None))
    if result is None:
        return 0
    exits.finish(ctx, c.id)
    return result.exit_code


def exec_in(
    ctx: Context,
    c: Container,
    command: list[str],
    interactive: bool,
    terminal: bool,
    env: list[str],
    user: str | None,
    cwd: str | None,
) -> int:
    client: ShimClient = start.shim_client(ctx, c)
    with raw_terminal(terminal and interactive) as size:
        return _guard(
            "exec",
            lambda: client.exec(
                command,
                tty=terminal,
                stdin=0 if interactive else None,
                stdout=sys.stdout.fileno(),
                stderr=sys.stderr.fileno(),
                env=env,
                user=user,
                cwd=cwd,
                size=size,
            ),
        )

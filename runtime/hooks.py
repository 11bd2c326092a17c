"""OCI hooks: when each kind runs, and how one hook is run.

``prestart`` (deprecated) and ``createRuntime`` run in the runtime's namespaces while init
waits before pivot_root; ``createContainer`` runs in init at that same point, in the
container's namespaces; ``startContainer`` runs in init after ``start`` released it and
before the program; ``poststart`` in ``start``; ``poststop`` after the container is gone.
A failing hook before the program, or (runtime-spec 1.3) a failing ``poststart`` hook, fails
the operation and the container is destroyed; ``poststop`` failures are warnings. A hook
without ``env`` inherits the runtime's environment, as runc's do.

Only ``os``, ``select`` and ``time`` are used, imported at the top: ``startContainer``
hooks run after pivot_root, when the host's Python library is no longer visible.
"""

from __future__ import annotations

import os
import select
import time

from ocirt.foundation import fastjson
from ocirt.runtime.errors import OcirtError
from ocirt.specs.config import HOOK_KINDS, Hook

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ocirt.runtime.state import State

KINDS = HOOK_KINDS
_OUTPUT_LIMIT = 4096


def state_document(st: State, status: str) -> dict[str, Any]:
    """The state document hooks read on stdin; the pid is added where the hook runs."""
    return {
        "ociVersion": st.oci_version,
        "id": st.id,
        "status": status,
        "pid": st.pid,
        "bundle": st.bundle,
        "annotations": st.annotations,
    }


def run_all(hooks: list[Hook], state: dict[str, Any]) -> None:
    """Run hooks in order; the first failure raises, naming the hook."""
    payload = fastjson.dumps(state).encode()
    for hook in hooks:
        run_one(hook, payload)


def warn_all(hooks: list[Hook], state: dict[str, Any], warn: Any) -> None:
    """For ``poststop``: a failure is reported and the rest still run."""
    payload = fastjson.dumps(state).encode()
    for hook in hooks:
        try:
            run_one(hook, payload)
        except OcirtError as err:
            warn(str(err))


def run_one(hook: Hook, payload: bytes) -> None:
    stdin_r, stdin_w = os.pipe()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        _child(hook, stdin_r, out_w)
    os.close(stdin_r)
    os.close(out_w)
    try:
        status, output = _wait(pid, out_r, stdin_w, payload, hook.timeout)
    finally:
        os.close(out_r)
    if status is None:
        raise OcirtError(f"{hook.field} ({hook.path}): timed out after {hook.timeout}s")
    if status != 0:
        text = output.decode(errors="replace").strip().replace("\n", " | ")
        raise OcirtError(f"{hook.field} ({hook.path}): {_describe(status)}" + (f": {text}" if text else ""))


def _child(hook: Hook, stdin_r: int, out_w: int) -> None:
    try:
        os.dup2(stdin_r, 0)
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        env = os.environ if hook.env is None else dict(e.partition("=")[::2] for e in hook.env)
        os.execve(hook.path, hook.args, env)
    except OSError as exc:
        os.write(2, f"exec: {exc.strerror}".encode())
    finally:
        os._exit(127)


def _wait(
    pid: int, out_r: int, stdin_w: int, payload: bytes, timeout: int | None
) -> tuple[int | None, bytes]:
    """The state is fed to stdin within the timed wait: it can be more than a pipe holds
    (large annotations), and a hook that never reads it must still time out."""
    deadline = None if timeout is None else time.monotonic() + timeout
    poller = select.poll()
    poller.register(out_r, select.POLLIN | select.POLLHUP)
    os.set_blocking(stdin_w, False)
    poller.register(stdin_w, select.POLLOUT)
    pending = memoryview(payload)
    output = b""
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status), output + _drain(out_r)
            if deadline is not None and time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                return None, output
            for fd, _ in poller.poll(10):
                if fd == stdin_w:
                    pending = _feed(stdin_w, pending)
                    if not pending:
                        poller.unregister(stdin_w)
                        os.close(stdin_w)
                        stdin_w = -1
                    continue
                chunk = os.read(out_r, 65536)
                output = (output + chunk)[-_OUTPUT_LIMIT:]
                if not chunk:
                    poller.unregister(out_r)
    finally:
        if stdin_w >= 0:
            os.close(stdin_w)


def _feed(fd: int, pending: memoryview) -> memoryview:
    """What is left to write; a hook may exit without reading its stdin: not our failure."""
    try:
        return pending[os.write(fd, pending) :]
    except BlockingIOError:
        return pending
    except BrokenPipeError:
        return pending[:0]


def _drain(fd: int) -> bytes:
    os.set_blocking(fd, False)
    try:
        return os.read(fd, _OUTPUT_LIMIT)
    except BlockingIOError:
        return b""


def _describe(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exit status {code}"

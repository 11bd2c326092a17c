"""``ocirt run``: create and start, then (unless ``--detach``) wait and exit as the container.

In the foreground ocirt is a child subreaper, so the init (a grandchild once the
intermediate process exits) is re-parented to it and can be reaped for its exit status;
signals that ocirt receives are passed on to the init, as runc does. With
``process.terminal`` ocirt receives the container's pty master itself and proxies it to its
own terminal (see ``console.proxy``).
"""

from __future__ import annotations

import os

from ocirt.runtime import syscalls
from ocirt.runtime.console import OwnConsole, proxy
from ocirt.runtime.operations.create import create_container
from ocirt.runtime.operations.delete import remove_container, undo
from ocirt.runtime.operations.start import start_container
from ocirt.runtime.signals import wait_for_exit

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ocirt.runtime.api import RunOptions, Runtime


def run_container(rt: Runtime, container_id: str, options: RunOptions) -> int:
    detach, log = options.detach, rt.log
    own = None if detach else OwnConsole()
    if own is not None:
        syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)
    try:
        st = create_container(rt, container_id, options, own)
    except BaseException:
        if own is not None:
            own.close()
        raise
    if detach:
        start_container(st, log)
        return 0
    forward_signals(st.pid)
    master = None
    try:
        master = own.receive() if own is not None else None
        start_container(st, log)
        log.debug(f"started {st.id}")
        if master is not None:
            proxy(master, st.pid)
        status = wait_for_exit(st.pid)
        log.debug(f"{st.id} exited with status {status}")
    except BaseException as exc:
        undo(st, log, exc)
        raise
    finally:
        if master is not None:
            os.close(master)
    if not options.keep:
        remove_container(st, log)
        log.debug(f"removed {st.id}")
    return status


def forward_signals(pid: int) -> None:
    from ocirt.runtime.signals import Relay

    Relay().target(pid)

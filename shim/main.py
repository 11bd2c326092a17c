"""``ocirt-shim``: check the arguments, detach, set the container up, report, then serve.

The process a manager starts exits at once; its child starts a new session and forks the
shim proper, so the shim belongs to no manager's session or process group and outlives it.
That child is forked by the shim zygote when one is in use (``zygote.py``: shared memory),
else by this process. The manager learns the container's pid (or the runtime's error)
from ``--sync-fd``.
"""

from __future__ import annotations

import os
import sys

from ocirt.shim.args import PROG, UsageError
from ocirt.shim.lifecycle import detach_stdio, prepare, serve


def entry() -> None:
    if sys.argv[1:2] == ["--zygote"] and len(sys.argv) == 3:
        from ocirt.shim import zygote

        zygote.serve(sys.argv[2])
        return
    try:
        opts = prepare(sys.argv[1:])
    except UsageError as exc:
        sys.stderr.write(f"{PROG}: {exc}\n")
        sys.exit(2)
    from ocirt.shim import zygote

    path = zygote.socket_path()
    try:
        if path is not None and zygote.hand_over(path, sys.argv[1:], opts.sync_fd):
            os._exit(0)
    except zygote.ZygoteError as exc:
        sys.stderr.write(f"{PROG}: {exc}\n")
        sys.exit(1)
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    detach_stdio()
    os._exit(serve(opts))

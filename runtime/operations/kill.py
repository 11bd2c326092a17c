"""``ocirt kill``: a signal to the init, or with ``--all`` to every process of the cgroup."""

from __future__ import annotations

import os

from ocirt.runtime import signals
from ocirt.runtime import state as statemod
from ocirt.runtime.errors import OcirtError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ocirt.runtime.cli import Args
    from ocirt.runtime.log import Log


def main(opts: Args, args: Args, log: Log) -> int:
    st = statemod.load(opts.root or statemod.DEFAULT_ROOT, args.positional[0])
    signum = signals.parse(args.positional[1] if len(args.positional) > 1 else "SIGTERM")
    if args.all:
        from ocirt.runtime.cgroups import load_cgroup

        if st.status == statemod.STOPPED and not st.cgroup:
            raise OcirtError(f"container {st.id!r} is not running")
        load_cgroup(st.cgroup).kill_all(signum)
        return 0
    if st.status not in (statemod.CREATED, statemod.RUNNING, statemod.PAUSED):
        raise OcirtError(f"container {st.id!r} is not running")
    try:
        os.kill(st.pid, signum)
    except ProcessLookupError:
        raise OcirtError(f"container {st.id!r} is not running") from None
    return 0

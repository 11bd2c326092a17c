"""``ocirt resume``: thaw a paused container."""

from __future__ import annotations

from ocirt.runtime import state as statemod
from ocirt.runtime.errors import OcirtError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ocirt.runtime.cli import Args
    from ocirt.runtime.log import Log


def main(opts: Args, args: Args, log: Log) -> int:
    from ocirt.runtime.cgroups import load_cgroup

    st = statemod.load(opts.root or statemod.DEFAULT_ROOT, args.positional[0])
    if st.status != statemod.PAUSED:
        raise OcirtError(f"container {st.id!r} is not paused (it is {st.status})")
    load_cgroup(st.cgroup).thaw()
    log.debug(f"resumed {st.id}")
    return 0

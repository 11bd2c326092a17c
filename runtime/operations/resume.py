"""``ocirt resume``: thaw a paused container."""

from __future__ import annotations

from ocirt.runtime import state as statemod
from ocirt.runtime.errors import OcirtError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ocirt.runtime.api import Runtime


def resume_container(rt: Runtime, container_id: str) -> None:
    from ocirt.runtime.cgroups import load_cgroup

    st = statemod.load(rt.root, container_id)
    if st.status != statemod.PAUSED:
        raise OcirtError(f"container {st.id!r} is not paused (it is {st.status})")
    load_cgroup(st.cgroup).thaw()
    rt.log.debug(f"resumed {st.id}")

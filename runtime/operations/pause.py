"""``ocirt pause``: freeze every process of a running container (v1 freezer or ``cgroup.freeze``).

runc also pauses a created container, but ``state`` reports a created container as
``created`` whether frozen or not, so it could never be resumed by status: only a running
container is paused here.
"""

from __future__ import annotations

from ocirt.runtime import state as statemod
from ocirt.runtime.errors import OcirtError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ocirt.runtime.api import Runtime


def pause_container(rt: Runtime, container_id: str) -> None:
    from ocirt.runtime.cgroups import load_cgroup

    st = statemod.load(rt.root, container_id)
    if st.status != statemod.RUNNING:
        detail = "" if st.status == statemod.STOPPED else f" (it is {st.status})"
        raise OcirtError(f"container {st.id!r} is not running{detail}")
    if not st.cgroup:
        raise OcirtError(f"container {st.id!r} has no cgroup to freeze (rootless, none delegated)")
    load_cgroup(st.cgroup).freeze()
    rt.log.debug(f"paused {st.id}")

"""``ocirt kill``: a signal to the init, or with ``--all`` to every process of the cgroup."""

from __future__ import annotations

import os

from ocirt.foundation import signals
from ocirt.runtime import state as statemod
from ocirt.runtime.errors import OcirtError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ocirt.runtime.api import Runtime


def kill_container(rt: Runtime, container_id: str, text: str, all: bool) -> None:
    st = statemod.load(rt.root, container_id)
    # 0 only checks that the init is alive, as kill(2) and runc allow
    signum = 0 if text == "0" else signals.parse(text)
    if all:
        from ocirt.runtime.cgroups import load_cgroup

        if not st.cgroup:
            _kill_tree(st, signum)
        else:
            load_cgroup(st.cgroup).kill_all(signum)
        return
    if st.status not in (statemod.CREATED, statemod.RUNNING, statemod.PAUSED):
        raise _not_running(st.id)
    try:
        os.kill(st.pid, signum)
    except ProcessLookupError:
        raise _not_running(st.id) from None


def _kill_tree(st: statemod.State, signum: int) -> None:
    """No cgroup of its own (rootless, none delegated): the init and its descendants."""
    if st.status == statemod.STOPPED:
        raise _not_running(st.id)
    for pid in statemod.process_tree(st.pid):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            continue


def _not_running(cid: str) -> OcirtError:
    """In runc's words: containerd's shim (and so Docker) reads "container not running" as
    a process that already finished, a NotFound it expects, rather than a failed kill."""
    return OcirtError(f"cannot signal container {cid!r}: container not running")

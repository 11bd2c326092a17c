"""``ocirt delete``: remove a stopped (or created) container; ``--force`` kills it first.
``remove_container`` is the one way a container goes: delete, a failed create or start,
``run``'s end, checkpoint and restore all use it."""

from __future__ import annotations

import os

from ocirt.runtime import state as statemod
from ocirt.runtime.errors import CleanupError, OcirtError

CREATE_PATIENCE = 5.0  # seconds; a create takes a fraction of one

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ocirt.runtime.api import Runtime
    from ocirt.runtime.log import Log


def delete_container(rt: Runtime, container_id: str, force: bool) -> None:
    # a create in progress finishes (or fails) first, unless stuck; then its whole container goes
    statemod.lock(statemod.state_dir(rt.root, container_id), patience=CREATE_PATIENCE)
    try:
        st = statemod.load(rt.root, container_id)
    except OcirtError:
        if force:
            return
        raise
    if st.status in (statemod.RUNNING, statemod.PAUSED) and not force:
        raise OcirtError(f"cannot delete container {st.id!r} that is not stopped: {st.status} (use --force)")
    remove_container(st, rt.log)


def undo(st: statemod.State, log: Log, failure: BaseException) -> None:
    """Remove what a failed step left. Its own failure is raised together with the first
    (``CleanupError``), never instead of it; an interrupt stays an interrupt."""
    try:
        remove_container(st, log)
    except Exception as exc:
        if not isinstance(failure, Exception):
            log.error(f"cleaning up {st.id}: {exc}")
            return
        raise CleanupError(failure, exc) from failure


def remove_container(st: statemod.State, log: Log) -> None:
    """Undo a container: processes, cgroup, state directory, then the poststop hooks;
    safe on partial state."""
    cgroup = None
    if st.cgroup:
        from ocirt.runtime.cgroups import load_cgroup

        cgroup = load_cgroup(st.cgroup)
    if cgroup is not None and cgroup.frozen():
        cgroup.kill_all(9)  # a frozen init dies only once thawed, which this does
    if st.pid and statemod.init_alive(st):
        from ocirt.runtime.process.parent import kill_and_wait

        if cgroup is None:  # rootless without a cgroup: its descendants are all we know of
            for pid in reversed(statemod.process_tree(st.pid)[1:]):
                kill_and_wait(pid)
        kill_and_wait(st.pid)
    failure = None
    if cgroup is not None:
        try:
            if not st.config.get("own_pid_ns", False) or cgroup.pids():
                cgroup.kill_all(9)
            cgroup.destroy()
        except OcirtError as exc:
            # as runc: the state goes anyway, or a cgroup that cannot go keeps the container
            # undeletable forever; the error is still reported
            failure = exc
    poststop = st.config.get("hooks", {}).get("poststop")
    if _remove_state_dir(st) and poststop:
        from ocirt.runtime import hooks
        from ocirt.specs.config import parse_hooks

        hooks.warn_all(
            parse_hooks({"poststop": poststop})["poststop"],
            hooks.state_document(st, statemod.STOPPED),
            log.warning,
        )
    if failure is not None:
        raise failure


def _remove_state_dir(st: statemod.State) -> bool:
    """False when another removal got there first."""
    for name in (statemod.FIFO, statemod.STATE_FILE, f".{statemod.STATE_FILE}.tmp"):
        try:
            os.unlink(os.path.join(st.dir, name))
        except FileNotFoundError:
            pass
    try:
        os.rmdir(st.dir)
    except FileNotFoundError:
        return False  # removed already, poststop hooks included (a failed poststart, then ``run``)
    return True

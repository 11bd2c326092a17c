"""``ocirt checkpoint``: save a running container's processes to CRIU images.

As with runc, the container is gone afterwards (CRIU stops its processes; the cgroup and
state are removed as by ``delete``) unless ``--leave-running`` or ``--pre-dump``. The
image directory (``--image-path``, default ``./checkpoint``) is removed again when the dump
fails and ocirt created it.
"""

from __future__ import annotations

import os
import shutil

from ocirt.runtime import criu
from ocirt.runtime import state as statemod
from ocirt.runtime.errors import OcirtError, SpecError
from ocirt.runtime.operations.create import load_bundle
from ocirt.runtime.operations.delete import remove_container

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ocirt.runtime.api import CheckpointOptions, Runtime
    from ocirt.runtime.cgroups import Cgroup


def checkpoint_container(rt: Runtime, container_id: str, args: CheckpointOptions) -> None:
    log = rt.log
    st = statemod.load(rt.root, container_id)
    binary = criu.find(rt.criu)
    if st.status not in (statemod.RUNNING, statemod.PAUSED):
        raise OcirtError(f"container {st.id!r} is not running ({st.status})")
    argv = [binary, "pre-dump" if args.pre_dump else "dump", "-t", str(st.pid), *criu.shared_flags(args.criu)]
    if args.pre_dump or args.parent_path:
        criu.require_dirty_tracking(binary, "--pre-dump" if args.pre_dump else "--parent-path")
    if args.leave_running and not args.pre_dump:
        argv.append("--leave-running")
    if args.parent_path:
        argv += ["--prev-images-dir", args.parent_path, "--track-mem"]
    _, cfg = load_bundle(st.bundle)
    if cfg.process is not None and cfg.process.terminal:
        raise SpecError("process.terminal", "a container with a terminal cannot be checkpointed by ocirt")
    cgroup = _cgroup(st)
    cgroup_paths = cgroup.paths if cgroup is not None else {}
    for dest, _source in criu.bind_mounts(cfg, st.bundle) + criu.cgroup_binds(cfg, cgroup_paths):
        argv += ["--external", f"mnt[{dest}]:{dest}"]
    argv += ["--external", "mnt[]"]
    # CRIU freezes the tree through the cgroup when it can, so no task forks away meanwhile
    freezer = cgroup_paths.get("freezer" if cgroup is not None and cgroup.version == 1 else "")
    if freezer:
        argv += ["--freeze-cgroup", freezer]
    images = os.path.abspath(args.criu.image_path or "checkpoint")
    work = os.path.abspath(args.criu.work_path or images)
    made = [d for d, flag in ((images, "--image-path"), (work, "--work-path")) if criu.make_dir(d, flag)]
    try:
        keys = criu.stdio_keys(st.pid)
        argv += [arg for key in keys if key.startswith("file[") for arg in ("--external", key)]
        criu.save_stdio(images, keys)
        argv += ["-D", images, "-W", work, "-o", "dump.log", "-v4", "--root", os.path.realpath(st.rootfs)]
        log.debug(f"running {' '.join(argv)}")
        criu.run(argv, os.path.join(work, "dump.log"), "dump")
    except BaseException:
        for d in made:
            shutil.rmtree(d, ignore_errors=True)
        raise
    if not (args.leave_running or args.pre_dump):
        remove_container(st, log)
        log.debug(f"checkpointed {st.id} to {images}; container removed")


def _cgroup(st: statemod.State) -> Cgroup | None:
    if not st.cgroup:
        return None
    from ocirt.runtime.cgroups import load_cgroup

    return load_cgroup(st.cgroup)

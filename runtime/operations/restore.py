"""``ocirt restore``: a new container whose processes are rebuilt by CRIU from a checkpoint.

The container is made as by ``create`` (state directory, cgroup from the bundle's
``linux.cgroupsPath`` and resources), but CRIU, not ocirt, builds its namespaces, mounts
and processes. CRIU runs in a child that first joins that cgroup (the restored tree is
forked from CRIU, so it starts there; ``--cgroup-root`` maps the dumped cgroups onto it)
and a private mount namespace, where the rootfs is bound onto ``<state>/criu-root`` as
CRIU's ``--root`` (it must be a mount point): the bind vanishes with CRIU, and no mount is
ever left on the host. The restored init is ocirt's child (``--restore-sibling``): in the
foreground ocirt waits for it, passes signals on and removes the container afterwards,
like ``run``. Hooks other than ``poststop`` are not run. runc's ``--no-pivot`` and
``--no-subreaper`` are accepted and change nothing: CRIU sets up the root itself, and the
init is ocirt's own child without a subreaper.
"""

from __future__ import annotations

import os
import shutil

from ocirt.foundation import procfs, timefmt
from ocirt.runtime import criu, syscalls
from ocirt.runtime import state as statemod
from ocirt.runtime.errors import OcirtError, SpecError
from ocirt.runtime.operations.create import load_bundle, write_pid_file
from ocirt.runtime.operations.delete import remove_container

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from ocirt.runtime.api import RestoreOptions, Runtime
    from ocirt.runtime.cgroups import Cgroup
    from ocirt.runtime.log import Log
    from ocirt.specs.config import Config

# CRIU gets ocirt's stdio at these fds, its own being /dev/null (helpers print there)
_STDIO_BASE = 10
_ROOT_MNT = "criu-root"
_PID_FILE = "criu.pid"


def restore_container(rt: Runtime, container_id: str, args: RestoreOptions) -> int:
    root, log = rt.root, rt.log
    sdir = statemod.state_dir(root, container_id)
    binary = criu.find(rt.criu)
    shared = criu.shared_flags(args.criu)
    if args.console_socket:
        raise OcirtError("--console-socket: restoring a container with a terminal is not supported by ocirt")
    images = os.path.abspath(args.criu.image_path or "checkpoint")
    if not os.path.isfile(os.path.join(images, "inventory.img")):
        raise OcirtError(f"--image-path: {images} holds no checkpoint (no inventory.img)")
    keys = criu.load_stdio(images)
    bundle, cfg = load_bundle(args.bundle)
    _check_supported(cfg)
    try:
        os.makedirs(root, 0o711, exist_ok=True)
        os.mkdir(sdir, 0o711)
    except FileExistsError:
        raise OcirtError(f"container with id {container_id!r} already exists") from None
    st = statemod.State(sdir, container_id)
    work = os.path.abspath(args.criu.work_path or images)
    work_made = False
    try:
        work_made = criu.make_dir(work, "--work-path")
        argv = [binary, "restore", "-D", images, "-W", work, "-o", "restore.log", "-v4", *shared]
        argv += _inherit_stdio(keys)
        _restore(st, cfg, bundle, argv, rt.systemd_cgroup, log)
        if args.pid_file:
            write_pid_file(args.pid_file, st.pid)
    except BaseException:
        remove_container(st, log)
        if work_made:
            shutil.rmtree(work, ignore_errors=True)
        raise
    log.debug(f"restored {st.id} with init pid {st.pid}")
    if args.detach:
        return 0
    return _foreground(st, log)


def _inherit_stdio(keys: list[str]) -> list[str]:
    """ocirt's stdio in place of the dumped one. CRIU knows a file by its inode, so fds that
    had one file at the dump (``</dev/null >/dev/null``) get one back: stdout is preferred,
    then stderr, then stdin.

    CRIU names an external file's descriptor ``ile[..]`` (the first character cut, as from a
    path). Matching that name hands ocirt's fd over as it is; ``file[..]`` would make CRIU
    also compare its size with the dumped file's, which another log file never matches."""
    argv: list[str] = []
    done = set()
    for fd in (1, 2, 0):
        key = keys[fd] if fd < len(keys) else ""
        if key and key not in done:
            done.add(key)
            name = key[1:] if key.startswith("file[") else key
            argv += ["--inherit-fd", f"fd[{_STDIO_BASE + fd}]:{name}"]
    return argv


def _check_supported(cfg: Config) -> None:
    if cfg.process is not None and cfg.process.terminal:
        raise SpecError("process.terminal", "a container with a terminal cannot be restored by ocirt")
    for ns in cfg.linux.namespaces:
        if ns.path:
            raise SpecError(
                "linux.namespaces", f"restoring into an existing {ns.type} namespace is not supported"
            )


def _restore(st: statemod.State, cfg: Config, bundle: str, argv: list[str], systemd: bool, log: Log) -> None:
    from ocirt.runtime.cgroups import open_cgroup

    st.bundle, st.oci_version, st.annotations = bundle, cfg.oci_version, cfg.annotations
    st.rootfs = os.path.join(bundle, cfg.root.path)
    st.created = timefmt.rfc3339nano_now()
    st.config = {
        "own_pid_ns": cfg.linux.namespace("pid") is not None,
        "hooks": {"poststop": cfg.raw["hooks"]["poststop"]} if "poststop" in cfg.hooks else {},
        "resources": cfg.linux.resources or {},
    }
    cgroup = open_cgroup(cfg.linux.cgroups_path, st.id, systemd)
    st.cgroup = cgroup.to_state()
    st.save()
    cgroup.create()
    cgroup.apply(cfg.linux.resources)
    rootfs = os.path.realpath(st.rootfs)
    binds = criu.bind_mounts(cfg, bundle)
    _make_mountpoints(rootfs, binds)
    binds += criu.cgroup_binds(cfg, cgroup.paths)
    argv += [arg for dest, source in binds for arg in ("--external", f"mnt[{dest}]:{source}")]
    argv += ["--external", "mnt[]"]
    mnt, pid_file = os.path.join(st.dir, _ROOT_MNT), os.path.join(st.dir, _PID_FILE)
    argv += ["--root", mnt, "--restore-detached", "--restore-sibling", "--pidfile", pid_file]
    os.mkdir(mnt)
    try:
        log.debug(f"running {' '.join(argv)}")
        _run_criu(argv, cgroup, rootfs, mnt, os.path.join(argv[argv.index("-W") + 1], "restore.log"))
        with open(pid_file) as f:
            st.pid = int(f.read().strip())
    finally:
        os.rmdir(mnt)
        if os.path.exists(pid_file):
            os.unlink(pid_file)
    start = procfs.start_ticks(st.pid)
    if start is None:
        raise OcirtError(f"the restored init (pid {st.pid}) exited at once")
    st.pid_start = start
    st.save()


def _make_mountpoints(rootfs: str, binds: list[tuple[str, str]]) -> None:
    """A bind needs its mount point in the rootfs, as on create; made without leaving it."""
    from ocirt.runtime import paths

    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for dest, source in binds:
            make = paths.mkdir_all if os.path.isdir(source) else paths.make_file
            try:
                os.close(make(root_fd, dest))
            except OSError as exc:
                raise OcirtError(f"mount point {dest} in {rootfs}: {exc.strerror}") from None
    finally:
        os.close(root_fd)


def _run_criu(argv: list[str], cgroup: Cgroup, rootfs: str, mnt: str, log_path: str) -> None:
    """Fork CRIU as described above; an error before its exec comes back over a pipe."""
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(err_r)
        _exec_criu(argv, cgroup, rootfs, mnt, err_w)
    os.close(err_w)
    with os.fdopen(err_r, "rb") as f:
        early = f.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if early:
        raise OcirtError(f"starting criu: {early}")
    if status != 0:
        raise OcirtError(f"criu restore failed: {criu.last_error(log_path)}")


def _exec_criu(argv: list[str], cgroup: Cgroup, rootfs: str, mnt: str, err_w: int) -> NoReturn:
    try:
        cgroup.join()
        argv = argv + _cgroup_roots()
        syscalls.unshare(syscalls.CLONE_NEWNS)
        syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
        syscalls.mount(rootfs, mnt, None, syscalls.MS_BIND | syscalls.MS_REC)
        for fd in range(3):
            try:
                os.dup2(fd, _STDIO_BASE + fd)
            except OSError:
                pass  # a closed stdio: CRIU reports the missing fd if it needs it
        null = os.open("/dev/null", os.O_RDWR)
        for fd in range(3):
            os.dup2(null, fd)
        os.execv(argv[0], argv)
    except BaseException as exc:
        os.write(err_w, str(exc).encode())
    finally:
        os._exit(127)


def _cgroup_roots() -> list[str]:
    """Each hierarchy's dumped root becomes this process's cgroup there, the container's;
    the unified hierarchy (no controller named) is the default for the rest."""
    roots = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            roots += ["--cgroup-root", f"{controllers}:{path}" if controllers else path]
    return roots


def _foreground(st: statemod.State, log: Log) -> int:
    from ocirt.runtime.operations.run import forward_signals
    from ocirt.runtime.signals import wait_for_exit

    forward_signals(st.pid)
    try:
        status = wait_for_exit(st.pid)
    finally:
        remove_container(st, log)
    return status

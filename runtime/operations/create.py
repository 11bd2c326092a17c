"""``ocirt create``: everything up to an init process blocked before its program.

What is made is undone in reverse on any failure: a failed create leaves no state
directory, cgroup, mount or process behind.
"""

from __future__ import annotations

import os

from ocirt.foundation import timefmt
from ocirt.runtime import state as statemod
from ocirt.runtime.errors import OcirtError, SpecError
from ocirt.runtime.operations.delete import undo

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ocirt.runtime.api import CreateOptions, Runtime
    from ocirt.runtime.cgroups import Cgroup
    from ocirt.runtime.console import OwnConsole
    from ocirt.runtime.namespaces import Plan
    from ocirt.runtime.process.launch import Launch, Prepared
    from ocirt.specs.config import Config

# Fields checked (and applied) by runtime/procattrs.py and runtime/lsm.py, imported only when present.
_PROC_ATTRS = ("scheduler", "ioPriority", "execCPUAffinity")
_LSM_FIELDS = (("process", "apparmorProfile"), ("process", "selinuxLabel"), ("linux", "mountLabel"))


def load_bundle(bundle: str | None) -> tuple[str, Config]:
    from ocirt.specs.config import load_config

    path = os.path.abspath(bundle or ".")
    try:
        with open(os.path.join(path, "config.json"), "rb") as f:
            text = f.read().decode()
    except OSError as exc:
        raise OcirtError(f"bundle {path}: config.json: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise OcirtError(f"bundle {path}: config.json: not UTF-8 text") from None
    return path, load_config(text)


def _check_supported(cfg: Config, console_socket: str | None, detach: bool) -> None:
    from ocirt.runtime.features import NOT_YET

    for section, key in NOT_YET:
        parent = cfg.raw.get(section)
        value = parent if key is None else (parent or {}).get(key)
        if value:
            field = section if key is None else f"{section}.{key}"
            raise SpecError(field, "not supported by this version of ocirt")
    _check_process_attrs(cfg)
    from ocirt.runtime import console  # not at the top: ``delete`` imports this module too

    console.check_request(cfg.process, console_socket, detach)
    if cfg.linux.namespace("mount") is None:
        # runc's rule: they would mask or write-protect the host's own paths
        for field, paths in (
            ("maskedPaths", cfg.linux.masked_paths),
            ("readonlyPaths", cfg.linux.readonly_paths),
        ):
            if paths:
                raise SpecError(
                    f"linux.{field}", "needs a mount namespace (it would change the host's paths)"
                )


def _check_process_attrs(cfg: Config) -> None:
    """Scheduler, I/O priority, affinity, personality, memory policy, labels and Intel RDT: checked here,
    so that a bad value or a host without the feature fails before anything exists."""
    proc = cfg.process.raw if cfg.process is not None else {}
    linux = cfg.linux.raw
    if any(k in proc for k in _PROC_ATTRS) or "personality" in linux:
        from ocirt.runtime import procattrs

        procattrs.parse(proc, linux.get("personality"))
    if linux.get("memoryPolicy") is not None:
        from ocirt.runtime import mempolicy

        mempolicy.parse(linux["memoryPolicy"])
    if "intelRdt" in linux or any((linux if s == "linux" else proc).get(k) for s, k in _LSM_FIELDS):
        from ocirt.runtime import lsm

        lsm.check_process(proc)
        lsm.check_linux(linux)


def create_container(
    rt: Runtime, container_id: str, options: CreateOptions, own_console: OwnConsole | None = None
) -> statemod.State:
    """``own_console`` is ``run``'s in the foreground: a terminal's master is sent to it."""
    sdir = statemod.state_dir(rt.root, container_id)
    rt.log.debug(f"create {container_id}: reading the bundle")  # a phase mark for bench/lifecycle.py
    prepared = _prepare(rt, options, own_console is None)
    rt.log.debug(f"create {container_id}: bundle checked")
    try:
        os.makedirs(rt.root, 0o711, exist_ok=True)
        os.mkdir(sdir, 0o711)
    except FileExistsError:
        prepared.close()
        raise OcirtError(f"container with id {container_id!r} already exists") from None
    except BaseException:
        prepared.close()
        raise
    st = statemod.State(sdir, container_id)
    statemod.lock(sdir)
    try:
        _create_in(st, prepared, rt, options, own_console)
    except BaseException as exc:
        rt.log.debug(f"create {container_id} failed; cleaning up")
        undo(st, rt.log, exc)
        raise
    finally:
        statemod.unlock()
    return st


def _prepare(rt: Runtime, options: CreateOptions, detach: bool) -> Prepared:
    """Everything checked and compiled from the bundle before anything of the container exists."""
    from ocirt.runtime.process.launch import Prepared

    bundle, cfg = load_bundle(options.bundle)
    _check_supported(cfg, options.console_socket, detach)
    if cfg.process is not None and cfg.process.terminal:
        from ocirt.runtime import console

        console.reserve_stdio()
    caps = None
    if cfg.process is not None and cfg.process.capabilities is not None:
        from ocirt.runtime.capabilities import CapabilitySets

        caps = CapabilitySets(cfg.process.capabilities, rt.log.warning)
    seccomp_filter = None
    if cfg.linux.raw.get("seccomp") is not None:
        from ocirt.runtime import seccomp

        seccomp_filter = seccomp.compile_profile(cfg.linux.raw["seccomp"], cfg.process, caps, rt.log)
    from ocirt.runtime.namespaces import Plan

    try:
        plan = Plan(cfg.linux)
    except BaseException:
        if seccomp_filter is not None:
            seccomp_filter.close()
        raise
    return Prepared(cfg, bundle, plan, caps, seccomp_filter)


def _create_in(
    st: statemod.State,
    prepared: Prepared,
    rt: Runtime,
    options: CreateOptions,
    own_console: OwnConsole | None,
) -> None:
    from ocirt.runtime import console, hooks
    from ocirt.runtime.cgroups import open_cgroup, rootless_view
    from ocirt.runtime.process import parent
    from ocirt.runtime.process.launch import Launch
    from ocirt.runtime.syscalls import CLONE_NEWPID

    cfg, bundle, log = prepared.config, prepared.bundle, rt.log
    st.bundle, st.oci_version, st.annotations = bundle, cfg.oci_version, cfg.annotations
    st.rootfs = os.path.join(bundle, cfg.root.path)
    st.created = timefmt.rfc3339nano_now()
    st.config = {
        "own_pid_ns": bool(prepared.plan.new & CLONE_NEWPID),
        "hooks": cfg.raw.get("hooks") or {},
        "resources": cfg.linux.resources or {},
    }
    cgroup = open_cgroup(cfg.linux.cgroups_path, st.id, rt.systemd_cgroup)
    if rt.is_rootless():
        cgroup = rootless_view(cgroup) or _undelegated(cgroup, cfg.linux.resources)
    st.cgroup = cgroup.to_state()
    st.save()

    resources = cfg.linux.resources

    def make_cgroup(pid: int) -> None:
        """systemd's scope starts with the first process in it, before any limit is set;
        pids.limit waits for the runtime's last fork (``limit_pids``)."""
        early = {k: v for k, v in resources.items() if k != "pids"} if resources else resources
        if rt.systemd_cgroup:
            from ocirt.runtime.cgroups.systemd import start

            start(cgroup, cfg.linux.cgroups_path or "", st.id, pid, early or {})
            st.cgroup = cgroup.to_state()
            st.save()
        cgroup.create()
        cgroup.apply(early)
        log.debug(f"cgroup {cgroup.paths} ready")

    os.mkfifo(st.fifo, 0o622)
    os.chmod(st.fifo, 0o622)
    state_fd = os.open(st.dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    console_sock = None
    launch: Launch | None = None
    try:
        console_sock = console.socket_for(cfg.process, options.console_socket, own_console)
        launch = Launch(
            prepared, options, cgroup.paths, state_fd, hooks.state_document(st, statemod.CREATING)
        )
        launch.console = console_sock
        _mount_sources(launch, cfg, bundle, prepared.plan)
        st.pid, st.pid_start = parent.spawn(launch, cgroup, make_cgroup)
        cgroup.limit_pids(resources)
    finally:
        os.close(state_fd)
        if launch is not None:
            for fd in launch.idmap_fds.values():
                os.close(fd)
        if prepared.seccomp is not None:
            prepared.seccomp.close()
        if console_sock is not None:
            console_sock.close()
    st.save()
    st.status = statemod.CREATED
    if options.pid_file:
        write_pid_file(options.pid_file, st.pid)
    log.debug(f"created {st.id} with init pid {st.pid}")


def _undelegated(cgroup: Cgroup, resources: dict[str, Any] | None) -> Cgroup:
    """runc's rootless rule: without a cgroup this user may write, run without one, unless
    the config asks for limits (device rules aside: a user namespace cannot mknod)."""
    from ocirt.runtime.cgroups import callers_cgroup

    limits = sorted(k for k, v in (resources or {}).items() if v and k != "devices")
    if limits:
        where = cgroup.paths.get(limits[0]) or (cgroup.dirs() or ["the cgroup tree"])[0]
        raise SpecError(
            f"linux.resources.{limits[0]}",
            f"needs a cgroup delegated to uid {os.geteuid()} when rootless ({where} is not writable)",
        )
    return callers_cgroup()


def _mount_sources(launch: Launch, cfg: Config, bundle: str, plan: Plan) -> None:
    """What the host's root must open for init: idmapped trees, and in a user namespace
    the bind sources its root may not reach."""
    idmapped = any(m.idmapped() for m in cfg.mounts)
    privileged_userns = plan.has("user") and os.geteuid() == 0
    if not (idmapped or privileged_userns):
        return
    from ocirt.runtime import mounts
    from ocirt.runtime.idmapped import idmapped_trees

    if idmapped:
        launch.idmap_fds = idmapped_trees(cfg.mounts, bundle, cfg.linux)
    if privileged_userns:
        launch.bind_sources = mounts.bind_sources(cfg.mounts, bundle)


def write_pid_file(path: str, pid: int) -> None:
    """Written atomically, as managers poll for it."""
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp")
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.rename(tmp, path)

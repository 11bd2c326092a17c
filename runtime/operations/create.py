"""``ocirt create``: everything up to an init process blocked before its program.

What is made is undone in reverse on any failure: a failed create leaves no state
directory, cgroup, mount or process behind.
"""

from __future__ import annotations

import os

from ocirt.foundation import timefmt
from ocirt.runtime import state as statemod
from ocirt.runtime.errors import OcirtError, SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ocirt.runtime.capabilities import CapabilitySets
    from ocirt.runtime.cgroups import Cgroup
    from ocirt.runtime.cli import Args
    from ocirt.runtime.console import OwnConsole
    from ocirt.runtime.log import Log
    from ocirt.runtime.namespaces import Plan
    from ocirt.runtime.process.launch import Launch
    from ocirt.runtime.seccomp import Filter
    from ocirt.specs.config import Config, Hook

# Fields checked (and applied) by runtime/procattrs.py and runtime/lsm.py, imported only when present.
_PROC_ATTRS = ("scheduler", "ioPriority", "execCPUAffinity")
_LSM_FIELDS = (("process", "apparmorProfile"), ("process", "selinuxLabel"), ("linux", "mountLabel"))


def main(opts: Args, args: Args, log: Log) -> int:
    create_container(opts, args, log)
    return 0


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


def _check_supported(cfg: Config, args: Args, detach: bool) -> None:
    from ocirt.runtime.features import NOT_YET

    for section, key in NOT_YET:
        parent = cfg.raw.get(section)
        value = parent if key is None else (parent or {}).get(key)
        if value:
            field = section if key is None else f"{section}.{key}"
            raise SpecError(field, "not supported by this version of ocirt")
    _check_process_attrs(cfg)
    from ocirt.runtime import console  # not at the top: ``delete`` imports this module too

    console.check_request(cfg.process, args.console_socket, detach)
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
    opts: Args, args: Args, log: Log, own_console: OwnConsole | None = None
) -> statemod.State:
    """``own_console`` is ``run``'s in the foreground: a terminal's master is sent to it."""
    return _create(opts, args, log, own_console)


def _create(opts: Args, args: Args, log: Log, own_console: OwnConsole | None) -> statemod.State:
    root = opts.root or statemod.DEFAULT_ROOT
    container_id = args.positional[0]
    sdir = statemod.state_dir(root, container_id)
    log.debug(f"create {container_id}: reading the bundle")  # a phase mark for bench/lifecycle.py
    bundle, cfg = load_bundle(args.bundle)
    _check_supported(cfg, args, own_console is None)
    if cfg.process is not None and cfg.process.terminal:
        from ocirt.runtime import console

        console.reserve_stdio()
    hook_table = cfg.hooks
    caps = None
    if cfg.process is not None and cfg.process.capabilities is not None:
        from ocirt.runtime.capabilities import CapabilitySets

        caps = CapabilitySets(cfg.process.capabilities, log.warning)
    seccomp_filter = None
    if cfg.linux.raw.get("seccomp") is not None:
        from ocirt.runtime import seccomp

        seccomp_filter = seccomp.compile_profile(cfg.linux.raw["seccomp"], cfg.process, caps, log)
    from ocirt.runtime.namespaces import Plan

    log.debug(f"create {container_id}: bundle checked")
    plan = Plan(cfg.linux)
    try:
        os.makedirs(root, 0o711, exist_ok=True)
        os.mkdir(sdir, 0o711)
    except FileExistsError:
        plan.close()
        raise OcirtError(f"container with id {container_id!r} already exists") from None
    except BaseException:
        plan.close()
        raise
    st = statemod.State(sdir, container_id)
    statemod.lock(sdir)
    try:
        _create_in(st, cfg, bundle, caps, plan, hook_table, opts, args, log, own_console, seccomp_filter)
    except BaseException:
        log.debug(f"create {container_id} failed; cleaning up")
        remove_container(st, log)
        raise
    finally:
        statemod.unlock()
    return st


def _create_in(
    st: statemod.State,
    cfg: Config,
    bundle: str,
    caps: CapabilitySets | None,
    plan: Plan,
    hook_table: dict[str, list[Hook]],
    opts: Args,
    args: Args,
    log: Log,
    own_console: OwnConsole | None,
    seccomp_filter: Filter | None,
) -> None:
    from ocirt.runtime import console
    from ocirt.runtime.cgroups import open_cgroup, rootless_view
    from ocirt.runtime.cli import rootless
    from ocirt.runtime.process import parent
    from ocirt.runtime.process.launch import Launch
    from ocirt.runtime.syscalls import CLONE_NEWPID

    st.bundle, st.oci_version, st.annotations = bundle, cfg.oci_version, cfg.annotations
    st.rootfs = os.path.join(bundle, cfg.root.path)
    st.created = timefmt.rfc3339nano_now()
    st.config = {
        "own_pid_ns": bool(plan.new & CLONE_NEWPID),
        "hooks": cfg.raw.get("hooks") or {},
        "resources": cfg.linux.resources or {},
    }
    cgroup = open_cgroup(cfg.linux.cgroups_path, st.id, bool(opts.systemd_cgroup))
    if rootless(opts):
        cgroup = rootless_view(cgroup) or _undelegated(cgroup, cfg.linux.resources)
    st.cgroup = cgroup.to_state()
    st.save()

    resources = cfg.linux.resources

    def make_cgroup(pid: int) -> None:
        """systemd's scope starts with the first process in it, before any limit is set;
        pids.limit waits for the runtime's last fork (``limit_pids``)."""
        early = {k: v for k, v in resources.items() if k != "pids"} if resources else resources
        if opts.systemd_cgroup:
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
        console_sock = console.socket_for(cfg.process, args.console_socket, own_console)
        launch = Launch(
            cfg,
            bundle,
            plan,
            caps,
            cgroup.paths,
            state_fd,
            bool(args.no_pivot),
            bool(args.no_new_keyring),
            args.preserve_fds or 0,
            hook_table,
            hook_state(st, statemod.CREATING),
        )
        launch.console = console_sock
        launch.seccomp = seccomp_filter
        _mount_sources(launch, cfg, bundle, plan)
        st.pid, st.pid_start = parent.spawn(launch, cgroup, make_cgroup)
        cgroup.limit_pids(resources)
    finally:
        os.close(state_fd)
        if launch is not None:
            for fd in launch.idmap_fds.values():
                os.close(fd)
        if seccomp_filter is not None:
            seccomp_filter.close()
        if console_sock is not None:
            console_sock.close()
    st.save()
    st.status = statemod.CREATED
    if args.pid_file:
        write_pid_file(args.pid_file, st.pid)
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


def hook_state(st: statemod.State, status: str) -> dict[str, Any]:
    """The state document hooks read on stdin; the pid is added where the hook runs."""
    return {
        "ociVersion": st.oci_version,
        "id": st.id,
        "status": status,
        "pid": st.pid,
        "bundle": st.bundle,
        "annotations": st.annotations,
    }


def write_pid_file(path: str, pid: int) -> None:
    """Written atomically, as managers poll for it."""
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp")
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.rename(tmp, path)


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
            parse_hooks({"poststop": poststop})["poststop"], hook_state(st, statemod.STOPPED), log.warning
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

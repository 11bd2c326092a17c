"""The container's init process, from the new namespaces to ``execve``.

It reports ``ready`` to ``ocirt create`` only once everything that can fail has been done,
including finding the program, so that ``create`` fails with the real reason and ``start``
only has to release it. Then it blocks opening the exec fifo until ``ocirt start`` reads it.

Every module it needs is imported at the top: after pivot_root the host's Python library
is out of sight, so a lazy import would fail.
"""

from __future__ import annotations

import _signal
import _socket
import errno
import fcntl
import os
import struct

from ocirt.runtime import console, hooks, lsm, mempolicy, procattrs, rootfs, seccomp, syscalls
from ocirt.runtime.errors import OcirtError, SpecError
from ocirt.runtime.process import become, channel
from ocirt.runtime.process.launch import describe
from ocirt.runtime.state import FIFO

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from ocirt.runtime.process.channel import Channel
    from ocirt.runtime.process.launch import Launch
    from ocirt.specs.config import Config, Process

_KEYRING_PERM = 0x3F3F0000  # possessor and owner: view, read, write, search, link, setattr


def run(launch: Launch, chan: Channel) -> NoReturn:
    try:
        path, env = _prepare(launch, chan)
        chan.send(channel.READY)
        chan.close()
        _wait_for_start(launch)
    except BaseException as exc:
        try:
            chan.send(channel.ERROR, msg=describe(exc))
        finally:
            os._exit(1)
    _exec(path, launch.config.process, env)  # type: ignore[arg-type]


def _prepare(launch: Launch, chan: Channel) -> tuple[str, list[str]]:
    cfg = launch.config
    proc = cfg.process
    if proc is None:
        raise SpecError("process", "is required to create a container")
    _install_exit_handlers()
    become.fds_for_exec(launch.preserve_fds)
    if launch.plan.new & syscalls.CLONE_NEWCGROUP:
        syscalls.unshare(syscalls.CLONE_NEWCGROUP)
    before_pivot = (lambda: _create_hooks(launch, chan)) if launch.needs_create_hooks() else None
    rootfs.setup_rootfs(
        cfg,
        launch.bundle,
        no_pivot=launch.no_pivot,
        cgroup_paths=launch.cgroup_paths,
        cgroupns=launch.plan.has("cgroup"),
        userns=launch.plan.has("user"),
        before_pivot=before_pivot,
        bind_fds=launch.bind_fds,
        idmap_fds=launch.idmap_fds,
        mount_ns=launch.plan.has("mount"),
    )
    if launch.console is not None:
        console.setup(launch.console, proc)
    else:
        os.setsid()  # as runc: the container is not in the caller's job control
    _make_cwd(proc.cwd)
    _set_names(cfg)
    _write_sysctls(cfg, launch)
    rootfs.finalize_rootfs(cfg)
    if launch.plan.new & syscalls.CLONE_NEWNET:
        _loopback_up()
    become.set_rlimits(proc)
    if not launch.no_new_keyring:
        _new_session_keyring(launch.hook_state["id"])
    procattrs.apply(procattrs.parse(proc.raw, cfg.linux.raw.get("personality")))
    if cfg.linux.raw.get("memoryPolicy") is not None:
        mempolicy.apply(mempolicy.parse(cfg.linux.raw["memoryPolicy"]))
    lsm.apply_labels(proc.raw)
    seccomp.load(launch.seccomp, launch.hook_state, early=True)
    env = become.with_home(proc.env, proc.user.uid)
    become.switch_user(launch.caps, proc)
    path = become.find_program(proc.args[0], env)
    become.enter_cwd(proc.cwd)
    return path, env


def _create_hooks(launch: Launch, chan: Channel) -> None:
    """The parent runs the runtime-namespace hooks while we wait; ours see our own pid."""
    chan.send(channel.HOOKS)
    chan.expect(channel.HOOKED, "ocirt create")
    hooks.run_all(launch.hooks.get("createContainer", []), {**launch.hook_state, "pid": os.getpid()})


def _new_session_keyring(container_id: str) -> None:
    """As runc: the container must not share the caller's session keyring. A kernel without
    keyrings (ENOSYS) is tolerated, as the protection is best effort."""
    try:
        syscalls.join_session_keyring(f"_ses.{container_id}", _KEYRING_PERM)
    except OSError as exc:
        if exc.errno != errno.ENOSYS:
            raise OcirtError(f"joining a new session keyring: {exc.strerror}") from None


def _install_exit_handlers() -> None:
    """Until execve, a ``kill`` of a created container must end it; init ignores signals
    it has no handler for when it is pid 1 of a new pid namespace."""

    def _die(signum: int, _frame: object) -> None:
        os._exit(128 + signum)

    for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"):
        _signal.signal(getattr(_signal, name), _die)


def _make_cwd(cwd: str) -> None:
    """Like runc, create a missing working directory (after pivot_root: inside the rootfs)."""
    try:
        os.makedirs(cwd, 0o755, exist_ok=True)
    except OSError as exc:
        raise SpecError("process.cwd", f"{cwd}: {exc.strerror}") from None


def _set_names(cfg: Config) -> None:
    if cfg.hostname is not None:
        syscalls.sethostname(cfg.hostname)
    if cfg.domainname is not None:
        syscalls.setdomainname(cfg.domainname)


_SYSCTL_NS = (
    ("net.", "network"),
    ("kernel.shm", "ipc"),
    ("kernel.msg", "ipc"),
    ("kernel.sem", "ipc"),
    ("fs.mqueue.", "ipc"),
    ("kernel.hostname", "uts"),
    ("kernel.domainname", "uts"),
)


def _write_sysctls(cfg: Config, launch: Launch) -> None:
    """Only namespaced sysctls are allowed: any other would change the host."""
    for key, value in cfg.linux.sysctl.items():
        field = f"linux.sysctl.{key}"
        # sysctl(8)'s slash form keeps dots inside a component (net/ipv4/conf/eth0.1/forwarding)
        path = key if "/" in key else key.replace(".", "/")
        dotted = key.replace("/", ".") if "/" in key else key
        kind = next((ns for prefix, ns in _SYSCTL_NS if dotted.startswith(prefix)), None)
        if kind is None:
            raise SpecError(field, "not a namespaced sysctl: it would change the host")
        if not launch.plan.has(kind):
            raise SpecError(field, f"needs a {kind} namespace of the container's own")
        if kind in launch.plan.host_joined:
            raise SpecError(
                field, f"linux.namespaces joins the host's {kind} namespace: it would change the host"
            )
        if any(part in ("", ".", "..") for part in path.split("/")):
            raise SpecError(field, "invalid sysctl name")
        _check_name_sysctl(cfg, field, dotted, value)
        try:
            with open("/proc/sys/" + path, "w") as f:
                f.write(value)
        except OSError as exc:
            raise SpecError(field, f"cannot write {value!r}: {exc.strerror}") from None


def _check_name_sysctl(cfg: Config, field: str, dotted: str, value: str) -> None:
    """``kernel.hostname`` and ``kernel.domainname`` may only repeat the config's own field."""
    for name, wanted in (("hostname", cfg.hostname), ("domainname", cfg.domainname)):
        if dotted == f"kernel.{name}" and wanted is not None and wanted != value:
            raise SpecError(field, f"{value!r} conflicts with {name} {wanted!r}")


def _loopback_up() -> None:
    """runc brings ``lo`` up in a new network namespace; an ioctl avoids netlink here."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock.fileno(), siocgifflags, req))[1]
        fcntl.ioctl(sock.fileno(), siocsifflags, struct.pack("16sH14x", b"lo", flags | iff_up))
    finally:
        sock.close()


def _wait_for_start(launch: Launch) -> None:
    """Opening the fifo for writing blocks until ``ocirt start`` opens it for reading; what we
    write tells ``start`` whether the ``startContainer`` hooks let the program run. The fifo
    is opened by name in the state directory held since before pivot_root: the container
    need not mount a /proc for us to reach it."""
    fd = os.open(FIFO, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=launch.state_fd)
    os.close(launch.state_fd)
    try:
        state = {**launch.hook_state, "pid": os.getpid(), "status": "created"}
        seccomp.load(launch.seccomp, launch.hook_state, early=False)
        hooks.run_all(launch.hooks.get("startContainer", []), state)
    except BaseException as exc:
        os.write(fd, ("1" + describe(exc))[:4000].encode())
        os._exit(1)
    os.write(fd, b"0")
    os.close(fd)


def _exec(path: str, proc: Process, env: list[str]) -> NoReturn:
    become.restore_signals()
    environ = {}
    for entry in env:
        key, _, value = entry.partition("=")
        environ[key] = value
    try:
        os.execve(path, proc.args, environ)
    except OSError as exc:
        os.write(2, f"ocirt: exec {path}: {exc.strerror}\n".encode())
    os._exit(127)

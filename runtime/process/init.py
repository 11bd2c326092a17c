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
import resource
import stat
import struct

from ocirt.runtime import console, hooks, lsm, mempolicy, paths, procattrs, rootfs, seccomp, syscalls
from ocirt.runtime.errors import OcirtError, SpecError
from ocirt.runtime.process import channel
from ocirt.runtime.process.launch import describe
from ocirt.runtime.state import FIFO

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from ocirt.runtime.capabilities import CapabilitySets
    from ocirt.runtime.process.channel import Channel
    from ocirt.runtime.process.launch import Launch
    from ocirt.specs.config import Config, Process

_KEYRING_PERM = 0x3F3F0000  # possessor and owner: view, read, write, search, link, setattr
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


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
    fds_for_exec(launch.preserve_fds)
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
    set_rlimits(proc)
    if not launch.no_new_keyring:
        _new_session_keyring(launch.hook_state["id"])
    procattrs.apply(procattrs.parse(proc.raw, cfg.linux.raw.get("personality")))
    if cfg.linux.raw.get("memoryPolicy") is not None:
        mempolicy.apply(mempolicy.parse(cfg.linux.raw["memoryPolicy"]))
    lsm.apply_labels(proc.raw)
    seccomp.load(launch.seccomp, launch.hook_state, early=True)
    env = with_home(proc.env, proc.user.uid)
    switch_user(launch.caps, proc)
    path = find_program(proc.args[0], env)
    enter_cwd(proc.cwd)
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


def fds_for_exec(preserve: int) -> None:
    """Nothing but stdio and ``--preserve-fds`` may reach the container program, and the
    caller's other descriptors are closed now: held until ``execve``, a created container
    would keep the caller's locks and pipes. They are the inheritable ones (the caller
    could pass no other through its execve); the runtime opens its own close-on-exec."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd < 3:
            continue
        try:
            if fd < 3 + preserve:
                os.set_inheritable(fd, True)
            elif os.get_inheritable(fd):
                os.close(fd)
        except OSError:
            continue  # the listing's own descriptor, closed by now


def _make_cwd(cwd: str) -> None:
    """Like runc, create a missing working directory (after pivot_root: inside the rootfs)."""
    try:
        os.makedirs(cwd, 0o755, exist_ok=True)
    except OSError as exc:
        raise SpecError("process.cwd", f"{cwd}: {exc.strerror}") from None


def enter_cwd(cwd: str) -> None:
    """``chdir``, then refuse a cwd the kernel places outside our root: ``/proc/self/fd/N``
    through a host directory held by an inherited fd would start the program on the host
    (CVE-2024-21626). getcwd(3) fails with ENOENT for an unreachable cwd, runc's check too."""
    try:
        os.chdir(cwd)
    except OSError as exc:
        raise SpecError("process.cwd", f"{cwd}: {exc.strerror}") from None
    try:
        os.getcwd()
    except FileNotFoundError:
        raise SpecError("process.cwd", f"{cwd}: outside the container's root filesystem") from None


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


def set_rlimits(proc: Process) -> None:
    for i, lim in enumerate(proc.rlimits):
        number = getattr(resource, lim.type, None)
        if number is None:
            raise SpecError(f"process.rlimits[{i}].type", f"unknown rlimit {lim.type!r}")
        try:
            resource.setrlimit(number, (_as_c_long(lim.soft), _as_c_long(lim.hard)))
        except (OSError, ValueError) as exc:
            current = resource.getrlimit(number)
            raise SpecError(
                f"process.rlimits[{i}]",
                f"{lim.type} soft={lim.soft} hard={lim.hard}: {exc} "
                f"(current hard limit {current[1]}; raising it needs CAP_SYS_RESOURCE)",
            ) from None


def _as_c_long(value: int) -> int:
    """The spec's limits are the kernel's unsigned 64 bits (2**64 - 1 is RLIM_INFINITY, as
    runc writes it); ``resource`` takes a signed C long, which it casts back to rlim_t."""
    return value - 2**64 if value >= 2**63 else value


def set_oom_score_adj(proc: Process) -> None:
    """Called before joining a user namespace: once non-dumpable (see docs/architecture.md)
    our /proc/self files belong to the host's root, whom a user namespace may not map."""
    if proc.oom_score_adj is None:
        return
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(proc.oom_score_adj))
    except OSError as exc:
        raise SpecError(
            "process.oomScoreAdj",
            f"cannot set {proc.oom_score_adj}: {exc.strerror} (lowering it needs CAP_SYS_RESOURCE)",
        ) from None


def switch_user(caps: CapabilitySets | None, proc: Process) -> None:
    user = proc.user
    if caps is not None:
        caps.drop_bounding()
        syscalls.prctl(syscalls.PR_SET_KEEPCAPS, 1)
    if not _setgroups_denied():
        os.setgroups(user.additional_gids)
    try:
        os.setresgid(user.gid, user.gid, user.gid)
        os.setresuid(user.uid, user.uid, user.uid)
    except OSError as exc:
        raise SpecError(
            "process.user", f"cannot switch to uid {user.uid} gid {user.gid}: {exc.strerror}"
        ) from None
    if caps is not None:
        syscalls.prctl(syscalls.PR_SET_KEEPCAPS, 0)
        caps.apply_after_setuid()
    if proc.no_new_privileges:
        syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)
    os.umask(0o022 if user.umask is None else user.umask)


def _setgroups_denied() -> bool:
    try:
        with open("/proc/self/setgroups") as f:
            return f.read().strip() == "deny"
    except OSError:
        return False


def with_home(env: list[str], uid: int) -> list[str]:
    """As runc: without ``HOME`` in the env, the uid's home from the container's own
    ``/etc/passwd``, else ``/``. Called with ``/`` the container's root, before the user
    switch; the file is opened in that root and never through a /proc magic link."""
    if any(e.startswith("HOME=") for e in env):
        return env
    home = "/"
    for line in _passwd_text().splitlines():
        fields = line.split(":")
        if len(fields) >= 6 and fields[2] == str(uid):  # an empty home field too, as runc
            home = fields[5]
            break
    return [*env, f"HOME={home}"]


def _passwd_text() -> str:
    """A FIFO or device planted at /etc/passwd must not block or feed us: regular files only."""
    try:
        root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fd = paths.open_in_root(root, "/etc/passwd", os.O_RDONLY | os.O_NONBLOCK)
        finally:
            os.close(root)
    except OSError:
        return ""
    with open(fd, encoding="utf-8", errors="replace") as f:
        return f.read(4 << 20) if stat.S_ISREG(os.fstat(fd).st_mode) else ""


def find_program(name: str, env: list[str]) -> str:
    """Find ``args[0]`` as execvp would, so the error can name what was missing."""
    if "/" in name:
        _check_executable(name)
        return name
    path = next((e[5:] for e in env if e.startswith("PATH=")), DEFAULT_PATH)
    for directory in path.split(":"):
        candidate = os.path.join(directory or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise SpecError("process.args[0]", f"{name!r}: executable file not found in $PATH ({path})")


def _check_executable(path: str) -> None:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise SpecError("process.args[0]", f"{path}: {exc.strerror.lower()}") from None  # type: ignore[union-attr]
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        kind = "a directory" if os.path.isdir(path) else f"mode {st.st_mode & 0o7777:o}"
        raise SpecError("process.args[0]", f"{path}: permission denied (not executable: {kind})")


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
    restore_signals()
    environ = {}
    for entry in env:
        key, _, value = entry.partition("=")
        environ[key] = value
    try:
        os.execve(path, proc.args, environ)
    except OSError as exc:
        os.write(2, f"ocirt: exec {path}: {exc.strerror}\n".encode())
    os._exit(127)


def restore_signals() -> None:
    """Python ignores SIGPIPE and SIGXFSZ; ignored signals would survive execve."""
    for name in ("SIGPIPE", "SIGXFSZ", "SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"):
        _signal.signal(getattr(_signal, name), _signal.SIG_DFL)

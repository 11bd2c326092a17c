"""Becoming the container's program: descriptors, limits, credentials, working directory
and ``args[0]``, the steps init and ``exec``'s joining process share before ``execve``.

Its own module so that ``exec``'s joining process, whose imports the parent waits for,
imports only these and not init's rootfs, mounts, devices and hooks.
"""

from __future__ import annotations

import _signal
import os
import resource
import stat

from ocirt.runtime import paths, syscalls
from ocirt.runtime.errors import SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ocirt.runtime.capabilities import CapabilitySets
    from ocirt.specs.config import Process

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


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


def restore_signals() -> None:
    """Python ignores SIGPIPE and SIGXFSZ; ignored signals would survive execve."""
    for name in ("SIGPIPE", "SIGXFSZ", "SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"):
        _signal.signal(getattr(_signal, name), _signal.SIG_DFL)

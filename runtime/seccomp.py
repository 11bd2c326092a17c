"""``linux.seccomp``: built by libseccomp in ``ocirt create``, loaded by the container's init.

The profile becomes a filter in the parent before anything is created, and libseccomp
compiles it to BPF there, so a bad entry fails ``create`` naming its field. Init is a fork
of that parent: it inherits the program and only hands it to seccomp(2), as runc does with
the program it exports from libseccomp; compiling a large profile takes milliseconds that
``start`` would otherwise pay.

When init loads it matters, because every syscall init makes afterwards must pass the
filter. runc loads it before the exec fifo handshake; we load it after the handshake,
when only the fifo write, the signal resets and ``execve`` are left, so a profile has to
permit little more than the container's program needs (the ``startContainer`` hooks run
under it, as in runc). A failure there still reaches ``ocirt start`` through the fifo.
Loading needs no_new_privs or CAP_SYS_ADMIN, though: when the process gets neither, the
filter is loaded, as runc does, just before the switch to the container's user drops
CAP_SYS_ADMIN, and init's remaining setup runs under it. no_new_privs is never set for the
filter's sake, so that ``noNewPrivileges: false`` keeps its meaning.

With ``SCMP_ACT_NOTIFY`` init sends the notify fd and the container process state to the
agent at ``listenerPath`` itself. That path is on the host, out of init's sight after
pivot_root, so the parent opens it (O_PATH) for init to connect through
``/proc/self/fd``, and opens the host's ``/proc`` so init can tell the agent its pid as
the runtime sees it.
"""

from __future__ import annotations

import _socket
import os
import stat
import struct

from ocirt.foundation import fastjson
from ocirt.runtime import syscalls
from ocirt.runtime.errors import OcirtError, SpecError
from ocirt.specs.config import SPEC_VERSION

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ocirt.runtime.capabilities import CapabilitySets
    from ocirt.runtime.log import Log
    from ocirt.specs.config import Process

ACTIONS = {
    "SCMP_ACT_KILL": syscalls.SCMP_ACT_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": syscalls.SCMP_ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": syscalls.SCMP_ACT_KILL_PROCESS,
    "SCMP_ACT_TRAP": syscalls.SCMP_ACT_TRAP,
    "SCMP_ACT_ERRNO": syscalls.SCMP_ACT_ERRNO,
    "SCMP_ACT_TRACE": syscalls.SCMP_ACT_TRACE,
    "SCMP_ACT_ALLOW": syscalls.SCMP_ACT_ALLOW,
    "SCMP_ACT_LOG": syscalls.SCMP_ACT_LOG,
    "SCMP_ACT_NOTIFY": syscalls.SCMP_ACT_NOTIFY,
}
OPERATORS = {
    "SCMP_CMP_NE": syscalls.SCMP_CMP_NE,
    "SCMP_CMP_LT": syscalls.SCMP_CMP_LT,
    "SCMP_CMP_LE": syscalls.SCMP_CMP_LE,
    "SCMP_CMP_EQ": syscalls.SCMP_CMP_EQ,
    "SCMP_CMP_GE": syscalls.SCMP_CMP_GE,
    "SCMP_CMP_GT": syscalls.SCMP_CMP_GT,
    "SCMP_CMP_MASKED_EQ": syscalls.SCMP_CMP_MASKED_EQ,
}
FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": syscalls.SECCOMP_FILTER_FLAG_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": syscalls.SECCOMP_FILTER_FLAG_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": syscalls.SECCOMP_FILTER_FLAG_SPEC_ALLOW,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": syscalls.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
}
_WITH_ERRNO = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")
_EPERM, _EEXIST = 1, 17
_CAP_SYS_ADMIN = 21
_MAX_ARGS = 6
_BPF_MAXINSNS, _BPF_INSN_SIZE = 4096, 8
_UINT64 = (1 << 64) - 1
_NOTIFY_API_LEVEL = 6  # libseccomp >= 2.5 with Linux >= 5.7: notify and TSYNC together
# Init needs it to hand the notify fd to the agent: a notification there would never be answered.
_NOT_FOR_NOTIFY = ("sendmsg",)


class Listener:
    """The agent's socket, held open from the host for init to reach after pivot_root."""

    __slots__ = ("metadata", "path", "path_fd", "payload", "proc_fd", "sock")

    def __init__(self, path: str, metadata: str | None, field: str) -> None:
        self.path, self.metadata = path, metadata
        self.sock: _socket.socket | None = None
        self.payload = b""
        try:
            self.path_fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError as exc:
            raise SpecError(f"{field}.listenerPath", f"{path}: {exc.strerror}") from None
        if not stat.S_ISSOCK(os.fstat(self.path_fd).st_mode):
            os.close(self.path_fd)
            raise SpecError(f"{field}.listenerPath", f"{path}: not a unix socket")
        self.proc_fd = os.open("/proc", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        for fd in (self.path_fd, self.proc_fd):
            if fd >= 0:
                os.close(fd)
        self.path_fd = self.proc_fd = -1
        if self.sock is not None:
            self.sock.close()

    def connect(self, state: dict[str, Any]) -> None:
        """Connect and build the message before the filter is loaded: only sendmsg is left."""
        pid = int(os.readlink("self", dir_fd=self.proc_fd))
        doc: dict[str, Any] = {"ociVersion": SPEC_VERSION, "fds": ["seccompFd"], "pid": pid}
        if self.metadata is not None:
            doc["metadata"] = self.metadata
        doc["state"] = {**state, "pid": pid}
        self.payload = fastjson.dumps(doc).encode()
        self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            # through the host's /proc held since before pivot_root: the container's may be absent
            os.fchdir(self.proc_fd)
            self.sock.connect(f"self/fd/{self.path_fd}")
        except OSError as exc:
            self.close()
            raise OcirtError(f"linux.seccomp.listenerPath: connect to {self.path}: {exc.strerror}") from None
        finally:
            os.fchdir(cwd)
            os.close(cwd)
        for fd in (self.path_fd, self.proc_fd):
            os.close(fd)
        self.path_fd = self.proc_fd = -1

    def send(self, notify_fd: int) -> None:
        """One state per connection, the fd with its first bytes, then the connection is closed."""
        sock, payload = self.sock, self.payload
        assert sock is not None, "connect() first"
        try:
            sent = sock.sendmsg(
                [payload], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack("i", notify_fd))]
            )
            while sent < len(payload):
                sent += sock.send(payload[sent:])
        except OSError as exc:
            raise OcirtError(f"linux.seccomp.listenerPath: send to {self.path}: {exc.strerror}") from None
        finally:
            self.close()
            os.close(notify_fd)


class Filter:
    """A compiled filter; ``early`` means it must be loaded before the switch to the user."""

    __slots__ = ("early", "flags", "listener", "program")

    def __init__(self, program: bytes, flags: int, early: bool, listener: Listener | None) -> None:
        self.program, self.flags, self.early, self.listener = program, flags, early, listener

    def close(self) -> None:
        """The parent's copies of the listener fds, once init holds its own."""
        if self.listener is not None:
            self.listener.close()

    def load(self, state: dict[str, Any]) -> None:
        if self.listener is not None:
            self.listener.connect(state)
        try:
            notify_fd = syscalls.seccomp_set_filter(self.flags, self.program)
        except OSError as exc:
            self.close()
            hint = " (it needs process.noNewPrivileges or CAP_SYS_ADMIN)" if exc.errno == 13 else ""
            raise OcirtError(f"linux.seccomp: cannot load the filter: {_why(exc)}{hint}") from None
        if self.listener is not None:
            self.listener.send(notify_fd)


def load(filt: Filter | None, state: dict[str, Any], early: bool) -> None:
    """Init calls this at both of its points; the filter is loaded at the one chosen for it."""
    if filt is None or filt.early != early:
        return
    filt.load({**state, "status": "creating" if early else "created"})


def compile_profile(
    raw: Any, proc: Process | None, caps: CapabilitySets | None, log: Log, field: str = "linux.seccomp"
) -> Filter:
    """Build and compile the filter; every mistake is a SpecError naming its field."""
    if not isinstance(raw, dict):
        raise SpecError(field, "must be an object")
    if raw.get("defaultAction") == "SCMP_ACT_NOTIFY":
        raise SpecError(f"{field}.defaultAction", "SCMP_ACT_NOTIFY cannot be the default action")
    default = _action(raw, "defaultAction", "defaultErrnoRet", field)
    try:
        ctx = syscalls.seccomp_init(default)
    except OSError:
        raise SpecError(f"{field}.defaultAction", f"{raw['defaultAction']} is not supported here") from None
    _add_architectures(ctx, _list(raw, "architectures", field), field)
    rules = _list(raw, "syscalls", field)
    notify = False
    for i, rule in enumerate(rules):
        notify = _add_rule(ctx, rule, default, f"{field}.syscalls[{i}]", log) or notify
    if len(rules) > 32:
        try:
            syscalls.seccomp_attr_set(ctx, syscalls.SCMP_FLTATR_CTL_OPTIMIZE, 2)
        except OSError:
            log.debug("seccomp: libseccomp cannot build a binary tree; using a linear filter")
    program = _compile(ctx, field)
    flags = _flags(_list(raw, "flags", field), notify, field)
    listener = _listener(raw, notify, field)
    return Filter(program, flags, _needs_early_load(proc, caps), listener)


def _needs_early_load(proc: Process | None, caps: CapabilitySets | None) -> bool:
    """Without no_new_privs, seccomp(2) needs CAP_SYS_ADMIN: does the program keep it?"""
    if proc is None or proc.no_new_privileges:
        return False
    if caps is not None:
        return not caps.effective >> _CAP_SYS_ADMIN & 1
    return proc.user.uid != 0


def _list(raw: dict[str, Any], key: str, field: str) -> list[Any]:
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpecError(f"{field}.{key}", "must be an array")
    return value


def _uint(value: Any, field: str, limit: int) -> int:
    if value is None:
        raise SpecError(field, "is required")
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
        raise SpecError(field, f"must be an integer from 0 to {limit}, got {value!r}")
    return value


def _action(raw: dict[str, Any], key: str, errno_key: str, field: str) -> int:
    name = raw.get(key)
    if name is None:
        raise SpecError(f"{field}.{key}", "is required")
    base = ACTIONS.get(name) if isinstance(name, str) else None
    if base is None:
        raise SpecError(f"{field}.{key}", f"unknown action {name!r}")
    errno = raw.get(errno_key)
    if errno is None:
        return base | _EPERM if name in _WITH_ERRNO else base
    if name not in _WITH_ERRNO:
        raise SpecError(
            f"{field}.{errno_key}", f"{name} returns no errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)"
        )
    return base | _uint(errno, f"{field}.{errno_key}", 0xFFFF)


def _add_architectures(ctx: object, names: list[Any], field: str) -> None:
    for i, name in enumerate(names):
        where = f"{field}.architectures[{i}]"
        token = 0
        if isinstance(name, str) and name.startswith("SCMP_ARCH_") and name.isupper():
            token = syscalls.seccomp_arch_resolve_name(name[len("SCMP_ARCH_") :].lower())
        if not token:
            raise SpecError(where, f"unknown architecture {name!r}")
        try:
            syscalls.seccomp_arch_add(ctx, token)
        except OSError as exc:
            if exc.errno != _EEXIST:
                raise SpecError(where, f"{name}: {_why(exc)}") from None


def _flags(names: list[Any], notify: bool, field: str) -> int:
    """seccomp(2)'s flags, each checked against the kernel (a probe that loads nothing)."""
    with_listener = syscalls.SECCOMP_FILTER_FLAG_NEW_LISTENER if notify else 0
    flags = with_listener
    for i, name in enumerate(names):
        where = f"{field}.flags[{i}]"
        flag = FLAGS.get(name) if isinstance(name, str) else None
        if flag is None:
            raise SpecError(where, f"unknown flag {name!r}")
        if flag == syscalls.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV and not notify:
            raise SpecError(where, f"{name} applies to SCMP_ACT_NOTIFY only, and no rule uses it")
        if flag == syscalls.SECCOMP_FILTER_FLAG_TSYNC and notify:
            flag |= syscalls.SECCOMP_FILTER_FLAG_TSYNC_ESRCH  # the kernel's price for both
        if not syscalls.seccomp_flags_known(flag | with_listener):
            raise SpecError(where, f"{name} is not supported by this kernel")
        flags |= flag
    return flags


def _add_rule(ctx: object, rule: Any, default: int, field: str, log: Log) -> bool:
    """Add one ``syscalls[]`` entry; return whether it added a SCMP_ACT_NOTIFY rule."""
    if not isinstance(rule, dict):
        raise SpecError(field, "must be an object")
    names = rule.get("names")
    if not isinstance(names, list) or not names:
        raise SpecError(f"{field}.names", "is required and must list at least one syscall")
    action = _action(rule, "action", "errnoRet", field)
    notify = rule["action"] == "SCMP_ACT_NOTIFY"
    if notify and syscalls.seccomp_api_get() < _NOTIFY_API_LEVEL:
        raise SpecError(f"{field}.action", "SCMP_ACT_NOTIFY needs libseccomp 2.5 and Linux 5.7 or later")
    groups = _conditions(_list(rule, "args", field), f"{field}.args")
    added = False
    for j, name in enumerate(names):
        where = f"{field}.names[{j}]"
        if not isinstance(name, str) or not name:
            raise SpecError(where, f"must be a syscall name, got {name!r}")
        if notify and name in _NOT_FOR_NOTIFY:
            raise SpecError(
                where, f"SCMP_ACT_NOTIFY cannot be used for {name}: ocirt needs it to reach the agent"
            )
        number = syscalls.seccomp_syscall_resolve_name(name)
        if number == -1:
            log.debug(f"seccomp: {where}: unknown syscall {name!r} skipped")
            continue
        if action == default:
            continue  # libseccomp refuses a rule that repeats the default, and it changes nothing
        for conds in groups:
            try:
                syscalls.seccomp_rule_add(ctx, action, number, conds)
            except OSError as exc:
                raise SpecError(where, f"{name}: {_why(exc)}") from None
        added = True
    return notify and added


def _conditions(args: list[Any], field: str) -> list[list[tuple[int, int, int, int]]]:
    """The rules to add for ``args``: one with all conditions AND-ed, or, as runc does when
    an argument is tested twice (libseccomp cannot AND those), one rule per condition."""
    conds = []
    for k, arg in enumerate(args):
        where = f"{field}[{k}]"
        if not isinstance(arg, dict):
            raise SpecError(where, "must be an object")
        index = _uint(arg.get("index"), f"{where}.index", _MAX_ARGS - 1)
        value = _uint(arg.get("value"), f"{where}.value", _UINT64)
        value_two = _uint(arg.get("valueTwo", 0), f"{where}.valueTwo", _UINT64)
        op = OPERATORS.get(arg.get("op"))  # type: ignore[arg-type]
        if op is None:
            raise SpecError(f"{where}.op", f"unknown operator {arg.get('op')!r}")
        conds.append((index, op, value, value_two))
    if len({c[0] for c in conds}) < len(conds):
        return [[c] for c in conds]
    return [conds]


def _compile(ctx: object, field: str) -> bytes:
    """The BPF program, checked against the kernel's size limit."""
    fd = os.memfd_create("ocirt-seccomp", os.MFD_CLOEXEC)
    try:
        syscalls.seccomp_export_bpf(ctx, fd)
        program = os.pread(fd, os.fstat(fd).st_size, 0)
    except OSError as exc:
        raise SpecError(field, f"cannot compile the filter: {_why(exc)}") from None
    finally:
        os.close(fd)
    size = len(program) // _BPF_INSN_SIZE
    if size > _BPF_MAXINSNS:
        raise SpecError(
            field, f"the filter compiles to {size} BPF instructions; the kernel takes {_BPF_MAXINSNS}"
        )
    return program


def _listener(raw: dict[str, Any], notify: bool, field: str) -> Listener | None:
    path, metadata = raw.get("listenerPath"), raw.get("listenerMetadata")
    if path is not None and not isinstance(path, str):
        raise SpecError(f"{field}.listenerPath", "must be a string")
    if metadata is not None and not isinstance(metadata, str):
        raise SpecError(f"{field}.listenerMetadata", "must be a string")
    if metadata is not None and not path:
        raise SpecError(f"{field}.listenerMetadata", "must not be set without listenerPath")
    if not notify:
        return None
    if not path:
        raise SpecError(f"{field}.listenerPath", "is required with SCMP_ACT_NOTIFY: no agent would answer")
    return Listener(path, metadata, field)


def _why(exc: OSError) -> str:
    """libseccomp's errors carry the function's name; users need the reason alone."""
    return os.strerror(exc.errno or 0)

"""``ocirt exec``: run one more process in a created or running container, as runc does.

The process is the container's own ``process`` from its bundle's config.json with the
command line and the flags laid over it (``--env`` appended, ``--cap`` added, ``--user``
replaced), or a whole ``--process`` file taken as it is. It joins every namespace of the
container's init that differs from ours and the container's cgroup, and runs under the
container's seccomp filter (see ``process/exec.py``). In the foreground ocirt is a child
subreaper that waits for it, passes signals on, proxies its terminal (``--tty``), and exits
with its status; ``--detach`` returns once it has started.
"""

from __future__ import annotations

import _socket
import os

from ocirt.runtime import console, syscalls
from ocirt.runtime import state as statemod
from ocirt.runtime.errors import OcirtError, SpecError
from ocirt.runtime.process import channel
from ocirt.runtime.signals import Relay

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ocirt.runtime.api import ExecOptions, Runtime
    from ocirt.runtime.log import Log
    from ocirt.runtime.process.channel import Channel
    from ocirt.specs.config import Config, Process

# Checked (and applied) by runtime/procattrs.py and runtime/lsm.py, imported only when present.
_PROC_ATTRS = ("scheduler", "ioPriority", "execCPUAffinity")
_LABELS = ("apparmorProfile", "selinuxLabel")


def exec_container(rt: Runtime, container_id: str, options: ExecOptions) -> int:
    args, log = options, rt.log
    own = None if args.detach else console.OwnConsole()
    relay = None if args.detach else Relay()
    try:
        pid = _start(rt.root, container_id, args, log, own)
        master = own.receive() if own is not None else None
    except BaseException:
        if own is not None:
            own.close()
        raise
    if relay is None:
        return 0
    from ocirt.runtime.signals import wait_for_exit

    relay.target(pid)
    if master is not None:
        try:
            console.proxy(master, pid)
        finally:
            os.close(master)
    return wait_for_exit(pid)


def _start(root: str, container_id: str, args: ExecOptions, log: Log, own: console.OwnConsole | None) -> int:
    """Everything up to the process's execve; return its host pid."""
    st = statemod.load(root, container_id)
    _check_status(st)
    _check_flags(args)
    if not args.detach:
        syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)
    ours, child = _fork_joiner(st, args.preserve_fds or 0, log)
    log.debug(f"exec in {st.id}: joining process forked")  # a phase mark for bench/lifecycle.py
    try:
        pid = _launch(st, args, own, ours, child, log)
    finally:
        ours.close()
    log.debug(f"exec in {st.id}: started pid {pid}")
    if args.pid_file:
        from ocirt.runtime.operations.create import write_pid_file

        write_pid_file(args.pid_file, pid)
    return pid


def _launch(
    st: statemod.State, args: ExecOptions, own: console.OwnConsole | None, ours: Channel, child: int, log: Log
) -> int:
    """Tell the joining process what to become (it joins the cgroup itself); return the
    host pid of the process once it has called execve. On failure nothing is left running.

    The joining process was forked first, so that its imports overlap with reading and
    checking the process.
    """
    pid = 0
    try:
        go, proc = _job(st, args, own)
        _initial_affinity(child, go)
        _go(ours, go, console.socket_for(proc, args.console_socket, own))
        log.debug(f"exec in {st.id}: go sent")
        pid = int(ours.expect(channel.PID, "ocirt exec's joining process")["pid"])
        log.debug(f"exec in {st.id}: joined, forked pid {pid}")
        _reap(child)
        child = 0
        _await_execve(ours)
    except BaseException:
        from ocirt.runtime.process.parent import kill_and_wait

        for target in (pid, child):
            if target:
                kill_and_wait(target)
                _reap(target, os.WNOHANG)
        raise
    return pid


def _job(
    st: statemod.State, args: ExecOptions, own: console.OwnConsole | None
) -> tuple[dict[str, Any], Process]:
    """The ``go`` message: the process, where it came from, the container's seccomp profile
    and state (for a notify listener)."""
    from ocirt.runtime.hooks import state_document

    cfg = _container_config(st)
    proc, raw, origin = _process(cfg, args)
    if own is not None and proc.terminal and proc.console_size is None:
        raw["consoleSize"] = _own_terminal_size()
    personality = cfg.linux.raw.get("personality")
    if any(k in raw for k in _PROC_ATTRS) or personality is not None:
        from ocirt.runtime import procattrs

        try:
            procattrs.parse(raw, personality)
        except SpecError as exc:
            raise OcirtError(f"{origin}: {str(exc).removeprefix('config.json: ')}") from None
    go = {
        "process": raw,
        "origin": origin,
        "seccomp": cfg.linux.raw.get("seccomp"),
        "personality": personality,
        "state": state_document(st, st.status),
    }
    return go, proc


def _initial_affinity(child: int, go: dict[str, Any]) -> None:
    """``execCPUAffinity.initial``: the joining process's CPUs before it enters the cgroup."""
    initial = (go["process"].get("execCPUAffinity") or {}).get("initial")
    if initial is None:
        return
    from ocirt.runtime import procattrs

    field = "process.execCPUAffinity.initial"
    try:
        procattrs.set_affinity(child, procattrs.parse_cpu_list(initial, field), field)
    except SpecError as exc:
        raise OcirtError(f"{go['origin']}: {str(exc).removeprefix('config.json: ')}") from None


def _own_terminal_size() -> dict[str, int] | None:
    """In the foreground the pty starts at our terminal's size, before the program can ask;
    ``console.proxy`` follows it from then on."""
    import fcntl
    import struct

    try:
        rows, cols = struct.unpack("HHHH", fcntl.ioctl(0, syscalls.TIOCGWINSZ, bytes(8)))[:2]
    except OSError:
        return None
    return {"height": rows, "width": cols}


def _go(ours: Channel, go: dict[str, Any], tty: _socket.socket | None) -> None:
    """What the joining process needs (see ``process/exec.py``), then the socket its
    terminal's master is to be sent over, if any."""
    try:
        ours.send(channel.GO, **go, terminal=tty is not None)
        if tty is not None:
            console.send_fd(ours.sock, tty.fileno(), b"console")
    except BrokenPipeError:
        pass  # the joining process failed: expect() reads why
    finally:
        if tty is not None:
            tty.close()


def _await_execve(ours: Channel) -> None:
    """The channel closes on execve; before that, only an error can come."""
    msg = ours.recv()
    if msg is not None:
        kind = msg["type"]
        raise OcirtError(msg["msg"] if kind == channel.ERROR else f"ocirt exec: unexpected message {kind!r}")


def _check_status(st: statemod.State) -> None:
    if st.status in (statemod.CREATED, statemod.RUNNING):
        return
    if st.status == statemod.PAUSED:
        raise OcirtError(f"cannot exec in container {st.id!r}: it is paused (resume it first)")
    if st.status == statemod.STOPPED:
        raise OcirtError(f"cannot exec in container {st.id!r}: it has stopped")
    raise OcirtError(f"cannot exec in container {st.id!r}: it is {st.status}")


def _check_flags(args: ExecOptions) -> None:
    if args.apparmor or args.process_label:
        from ocirt.runtime import lsm

        if args.apparmor and not lsm.apparmor_enabled():
            raise OcirtError("--apparmor: AppArmor is not enabled on this host")
        if args.process_label and not lsm.selinux_enabled():
            raise OcirtError("--process-label: SELinux is not enabled on this host")
    if args.preserve_fds is not None and args.preserve_fds < 0:
        raise OcirtError("--preserve-fds: must not be negative")
    if args.process and args.command:
        raise OcirtError(f"exec: a command ({args.command[0]!r}) cannot be given with --process")
    if not args.process and not args.command:
        raise OcirtError("exec: missing command (or --process FILE)")


def _container_config(st: statemod.State) -> Config:
    """Read again from the bundle, as runc keeps it in its state: the base of the process,
    and the seccomp filter every process of the container gets."""
    from ocirt.runtime.operations.create import load_bundle

    return load_bundle(st.bundle)[1]


def _process(cfg: Config, args: ExecOptions) -> tuple[Process, dict[str, Any], str]:
    """The process to run, checked as the child will read it (``raw``, with its env merged),
    and how errors name its origin."""
    from ocirt.specs.config import Process, check_document

    if args.process:
        origin = f"--process {args.process}"
        raw = _read_process_file(args.process)
    else:
        if cfg.process is None:
            raise SpecError("process", "missing: the container has no process to start from (use --process)")
        origin = "exec"
        raw = _overridden(cfg.process.raw, args)
    try:
        check_document(raw, "process")
        proc = Process(raw)
    except SpecError as exc:
        raise OcirtError(f"{origin}: {str(exc).removeprefix('config.json: ')}") from None
    console.check_request(proc, args.console_socket, bool(args.detach))
    if any(raw.get(k) for k in _LABELS):
        from ocirt.runtime import lsm

        try:
            lsm.check_process(raw)
        except SpecError as exc:
            raise OcirtError(f"{origin}: {str(exc).removeprefix('config.json: ')}") from None
    proc.env = _dedup_env(proc.env)
    return proc, {**raw, "env": proc.env}, origin


def _read_process_file(path: str) -> dict[str, Any]:
    from ocirt.foundation import fastjson

    try:
        with open(path, "rb") as f:
            raw = fastjson.loads(f.read().decode())
    except OSError as exc:
        raise OcirtError(f"--process {path}: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise OcirtError(f"--process {path}: not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise OcirtError(f"--process {path}: must be a JSON object")
    return raw


def _overridden(base: dict[str, Any], args: ExecOptions) -> dict[str, Any]:
    """runc's rules: args replaced, env appended, caps added, user and gids laid over."""
    raw = {**base, "args": list(args.command), "terminal": bool(args.tty)}
    raw["env"] = [*(base.get("env") or []), *args.env]
    if args.cwd:
        raw["cwd"] = args.cwd
    if args.no_new_privs:
        raw["noNewPrivileges"] = True
    if args.apparmor:
        raw["apparmorProfile"] = args.apparmor
    if args.process_label:
        raw["selinuxLabel"] = args.process_label
    if args.cap and base.get("capabilities") is not None:
        raw["capabilities"] = _added_caps(base["capabilities"], args.cap)
    raw["user"] = _overridden_user(base.get("user") or {}, args)
    return raw


def _added_caps(base: dict[str, list[str]], added: list[str]) -> dict[str, list[str]]:
    """Like runc, ``--cap`` never touches the inheritable set; ambient takes a cap only where
    it is inheritable already, the one case in which the kernel lets it be raised."""
    from ocirt.runtime.capabilities import NAMES

    caps = {key: list(value or []) for key, value in base.items()}
    for name in added:
        cap = name.upper() if name.upper().startswith("CAP_") else "CAP_" + name.upper()
        if cap not in NAMES:
            raise OcirtError(f"--cap {name}: unknown capability")
        for key in ("bounding", "effective", "permitted"):
            caps.setdefault(key, []).append(cap)
        if cap in caps.get("inheritable", []):
            caps.setdefault("ambient", []).append(cap)
    return caps


def _overridden_user(base: dict[str, Any], args: ExecOptions) -> dict[str, Any]:
    user = dict(base)
    if args.user:
        uid, colon, gid = args.user.partition(":")
        if not uid.isdigit() or (colon and not gid.isdigit()):
            raise OcirtError(f"--user {args.user}: expected uid or uid:gid (numbers)")
        user["uid"] = int(uid)
        if colon:
            user["gid"] = int(gid)
    if args.additional_gids:
        gids = list(user.get("additionalGids") or [])
        for text in args.additional_gids:
            if not text.isdigit():
                raise OcirtError(f"--additional-gids {text}: expected a non-negative integer")
            gids.append(int(text))
        user["additionalGids"] = gids
    return user


def _dedup_env(env: list[str]) -> list[str]:
    """A later ``KEY=`` wins, so $PATH lookup and the program see the same value."""
    merged: dict[str, str] = {}
    for entry in env:
        merged[entry.partition("=")[0]] = entry
    return list(merged.values())


def _fork_joiner(st: statemod.State, preserve_fds: int, log: Log) -> tuple[Channel, int]:
    """The joining process, forked as early as possible (see ``_launch``); the namespaces
    are opened here, where a bad container fails before anything runs."""
    namespaces = _open_namespaces(st)
    ours, theirs = channel.pair()
    try:
        child = os.fork()
        if child == 0:
            try:
                ours.close()
                from ocirt.runtime.process import exec as joining

                joining.run(namespaces, st.cgroup, preserve_fds, theirs, log)
            finally:
                os._exit(1)
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
        for _, fd in namespaces:
            os.close(fd)
    return ours, child


def _open_namespaces(st: statemod.State) -> list[tuple[str, int]]:
    """The init's namespaces that differ from ours, opened now and checked to be its own:
    a pid reused since ``load`` would fail the start time check afterwards."""
    from ocirt.runtime.namespaces import JOIN_ORDER, PROC_NAMES

    opened: list[tuple[str, int]] = []
    try:
        for kind in JOIN_ORDER:
            name = PROC_NAMES[kind]
            try:
                ours = os.stat(f"/proc/self/ns/{name}")
            except FileNotFoundError:
                continue  # a namespace type this kernel lacks
            fd = _open_ns(st, name)
            theirs = os.fstat(fd)
            if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino):
                os.close(fd)
                continue
            opened.append((kind, fd))
        if not statemod.init_alive(st):
            raise OcirtError(f"cannot exec in container {st.id!r}: it has stopped")
    except BaseException:
        for _, fd in opened:
            os.close(fd)
        raise
    return opened


def _open_ns(st: statemod.State, name: str) -> int:
    try:
        return os.open(f"/proc/{st.pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, ProcessLookupError):
        raise OcirtError(f"cannot exec in container {st.id!r}: it has stopped") from None


def _reap(pid: int, flags: int = 0) -> None:
    """After a kill, the second child is ours to reap only in the foreground, as a subreaper."""
    try:
        os.waitpid(pid, flags)
    except ChildProcessError:
        pass

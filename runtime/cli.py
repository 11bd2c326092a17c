"""``ocirt`` command line: runc's commands, flags and exit codes.

A table-driven parser instead of ``argparse`` (about 15 ms to import here, a third of a
whole ``runc run``). Like runc's, long flags take one or two dashes and ``--flag=value``;
flags may follow positional arguments except after an ``exec`` command line starts.
Each command lives in ``ocirt.runtime.operations.<name>`` and is imported only when run.
"""

from __future__ import annotations

import os
import sys

from ocirt.runtime import api
from ocirt.runtime.errors import OcirtError, describe

TYPE_CHECKING = False
if TYPE_CHECKING:
    pass

VERSION = "0.1.0"

BOOL, STR, INT, LIST = "bool", "str", "int", "list"

# flag names -> (kind, destination)
Flags = dict[str, tuple[str, str]]

GLOBAL_FLAGS: Flags = {
    "root": (STR, "root"),
    "log": (STR, "log"),
    "log-format": (STR, "log_format"),
    "debug": (BOOL, "debug"),
    "systemd-cgroup": (BOOL, "systemd_cgroup"),
    "rootless": (STR, "rootless"),
    "criu": (STR, "criu"),
    "version": (BOOL, "version"),
    "v": (BOOL, "version"),
    "help": (BOOL, "help"),
    "h": (BOOL, "help"),
}

_CREATE_FLAGS: Flags = {
    "bundle": (STR, "bundle"),
    "b": (STR, "bundle"),
    "pid-file": (STR, "pid_file"),
    "console-socket": (STR, "console_socket"),
    "no-pivot": (BOOL, "no_pivot"),
    "no-new-keyring": (BOOL, "no_new_keyring"),
    "preserve-fds": (INT, "preserve_fds"),
}

_EXEC_FLAGS: Flags = {
    "process": (STR, "process"),
    "p": (STR, "process"),
    "tty": (BOOL, "tty"),
    "t": (BOOL, "tty"),
    "console-socket": (STR, "console_socket"),
    "detach": (BOOL, "detach"),
    "d": (BOOL, "detach"),
    "pid-file": (STR, "pid_file"),
    "cwd": (STR, "cwd"),
    "env": (LIST, "env"),
    "e": (LIST, "env"),
    "user": (STR, "user"),
    "u": (STR, "user"),
    "additional-gids": (LIST, "additional_gids"),
    "g": (LIST, "additional_gids"),
    "cap": (LIST, "cap"),
    "c": (LIST, "cap"),
    "no-new-privs": (BOOL, "no_new_privs"),
    "preserve-fds": (INT, "preserve_fds"),
    "apparmor": (STR, "apparmor"),
    "process-label": (STR, "process_label"),
}

# runc's update flags, all strings: operations/update.py parses each value
_UPDATE_VALUES = (
    "blkio-weight", "cpu-period", "cpu-quota", "cpu-burst", "cpu-share", "cpu-rt-period", "cpu-rt-runtime",
    "cpu-idle", "cpuset-cpus", "cpuset-mems", "kernel-memory", "kernel-memory-tcp", "memory",
    "memory-reservation", "memory-swap", "pids-limit", "l3-cache-schema", "mem-bw-schema",
)  # fmt: skip
_UPDATE_FLAGS: Flags = {
    "resources": (STR, "resources"),
    "r": (STR, "resources"),
    "cpu-shares": (STR, "cpu_share"),
    **{name: (STR, name.replace("-", "_")) for name in _UPDATE_VALUES},
}

# checkpoint and restore: runc's flags, passed on to CRIU (operations/checkpoint.py, restore.py)
_CRIU_FLAGS: Flags = {
    "image-path": (STR, "image_path"),
    "work-path": (STR, "work_path"),
    "tcp-established": (BOOL, "tcp_established"),
    "ext-unix-sk": (BOOL, "ext_unix_sk"),
    "shell-job": (BOOL, "shell_job"),
    "file-locks": (BOOL, "file_locks"),
    "manage-cgroups-mode": (STR, "manage_cgroups_mode"),
    "empty-ns": (STR, "empty_ns"),
    "auto-dedup": (BOOL, "auto_dedup"),
    "lazy-pages": (BOOL, "lazy_pages"),
}
_CHECKPOINT_FLAGS: Flags = {
    **_CRIU_FLAGS,
    "leave-running": (BOOL, "leave_running"),
    "pre-dump": (BOOL, "pre_dump"),
    "parent-path": (STR, "parent_path"),
}
_RESTORE_FLAGS: Flags = {
    **_CRIU_FLAGS,
    "bundle": (STR, "bundle"),
    "b": (STR, "bundle"),
    "detach": (BOOL, "detach"),
    "d": (BOOL, "detach"),
    "pid-file": (STR, "pid_file"),
    "console-socket": (STR, "console_socket"),
    "no-pivot": (BOOL, "no_pivot"),
    "no-subreaper": (BOOL, "no_subreaper"),
}

# Commands whose flags end at the first positional (the id): what follows is a command line.
_PASS_REST = {"exec", "ps"}

# command -> (flags, positional names, summary)
COMMANDS: dict[str, tuple[Flags, tuple[str, ...], str]] = {
    "create": (_CREATE_FLAGS, ("container-id",), "create a container, blocked before its program"),
    "start": ({}, ("container-id",), "run the program of a created container"),
    "run": (
        {**_CREATE_FLAGS, "detach": (BOOL, "detach"), "d": (BOOL, "detach"), "keep": (BOOL, "keep")},
        ("container-id",),
        "create and start a container, waiting for it unless --detach",
    ),
    "exec": (
        _EXEC_FLAGS,
        ("container-id", "[command [args...]]"),
        "run a new process inside a running container",
    ),
    "state": ({}, ("container-id",), "print a container's state as JSON"),
    "kill": (
        {"all": (BOOL, "all"), "a": (BOOL, "all")},
        ("container-id", "[signal]"),
        "send a signal (default SIGTERM) to a container's init, or --all its processes",
    ),
    "delete": (
        {"force": (BOOL, "force"), "f": (BOOL, "force")},
        ("container-id",),
        "remove a stopped container (--force: kill it first)",
    ),
    "list": (
        {"format": (STR, "format"), "f": (STR, "format"), "quiet": (BOOL, "quiet"), "q": (BOOL, "quiet")},
        (),
        "list containers",
    ),
    "spec": (
        {"bundle": (STR, "bundle"), "b": (STR, "bundle"), "rootless": (BOOL, "rootless")},
        (),
        "write a default config.json",
    ),
    "validate": (
        {"bundle": (STR, "bundle"), "b": (STR, "bundle")},
        (),
        "check a bundle's config.json against the runtime-spec schema",
    ),
    "pause": ({}, ("container-id",), "freeze every process of a running container"),
    "resume": ({}, ("container-id",), "thaw a paused container"),
    "ps": (
        {"format": (STR, "format"), "f": (STR, "format")},
        ("container-id", "[ps options...]"),
        "list a container's processes (host ps, default -ef; --format json: host pids)",
    ),
    "update": (
        _UPDATE_FLAGS,
        ("container-id",),
        "change the cgroup limits of a container (--resources FILE|- or runc's flags)",
    ),
    "events": (
        {"stats": (BOOL, "stats"), "interval": (STR, "interval")},
        ("container-id",),
        "stream stats and OOM events as JSON lines (--stats: one snapshot)",
    ),
    "features": ({}, (), "print the features this runtime implements as JSON"),
    "checkpoint": (
        _CHECKPOINT_FLAGS,
        ("container-id",),
        "save a running container to CRIU images, then remove it (unless --leave-running)",
    ),
    "restore": (_RESTORE_FLAGS, ("container-id",), "make a new container from CRIU images (--image-path)"),
}


class Args:
    """Parsed flags as attributes; unset string flags are ``None``, unset bools ``False``.
    Read through ``text``, ``texts``, ``flag`` and ``number``, which give mypy each flag's
    type: only the adapters below read them, to build the typed API's options."""

    def __init__(self, flags: Flags) -> None:
        for kind, dest in flags.values():
            setattr(self, dest, False if kind == BOOL else [] if kind == LIST else None)
        self.positional: list[str] = []
        self.rest: list[str] = []  # the command line after the id, for _PASS_REST commands

    def text(self, name: str) -> str | None:
        """A string flag, typed: what the typed API's options are built from."""
        value = getattr(self, name)
        assert value is None or isinstance(value, str)
        return value

    def flag(self, name: str) -> bool:
        return getattr(self, name) is True

    def texts(self, name: str) -> list[str]:
        value = getattr(self, name)
        assert isinstance(value, list)
        return value

    def number(self, name: str) -> int | None:
        value = getattr(self, name)
        assert value is None or isinstance(value, int)
        return value


def _parse(argv: list[str], flags: Flags, args: Args, stop_at_positional: bool) -> list[str]:
    """Fill ``args`` from ``argv``; return what follows when parsing stops early."""
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if word == "--":
            return argv[i:]
        if not word.startswith("-") or word == "-":
            if stop_at_positional:
                return argv[i - 1 :]
            args.positional.append(word)
            continue
        name, eq, value = word.lstrip("-").partition("=")
        if name not in flags:
            raise OcirtError(f"flag provided but not defined: -{name}")
        kind, dest = flags[name]
        if kind == BOOL:
            if eq and value not in ("true", "false"):
                raise OcirtError(f"invalid boolean value {value!r} for -{name}")
            setattr(args, dest, value != "false")
            continue
        if not eq:
            if i >= len(argv):
                raise OcirtError(f"flag needs an argument: -{name}")
            value, i = argv[i], i + 1
        if kind == LIST:
            getattr(args, dest).append(value)
        elif kind == INT:
            try:
                setattr(args, dest, int(value))
            except ValueError:
                raise OcirtError(f"invalid value {value!r} for flag -{name}: not an integer") from None
        else:
            setattr(args, dest, value)
    return []


def _usage() -> str:
    lines = [
        "usage: ocirt [global options] command [command options] [arguments...]",
        "",
        "ocirt is a runc-compatible runtime for OCI bundles.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<10} {summary}" for name, (_, _, summary) in COMMANDS.items()]
    lines += [
        "",
        "global options: --root DIR (default /run/ocirt, $XDG_RUNTIME_DIR/ocirt for a user),",
        "  --log FILE, --log-format text|json, --debug, --systemd-cgroup, --rootless true|false|auto,",
        "  --criu PATH (checkpoint/restore), --version",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status and never lets a traceback out."""
    from ocirt.runtime.log import Log

    argv = sys.argv[1:] if argv is None else argv
    opts = Args(GLOBAL_FLAGS)
    log = Log()
    try:
        rest = _parse(argv, GLOBAL_FLAGS, opts, stop_at_positional=True)
        log_format = opts.text("log_format")
        log = Log(opts.text("log"), log_format or "text", opts.flag("debug"))
        if log_format not in (None, "text", "json"):
            raise OcirtError(f"--log-format: unknown format {log_format!r} (text or json)")
        if opts.flag("version"):
            from ocirt.specs.config import SPEC_VERSION

            print(f"ocirt version {VERSION}\nspec: {SPEC_VERSION}\npython: {sys.version.split()[0]}")
            return 0
        if not rest or opts.flag("help"):
            print(_usage())
            return 0 if opts.flag("help") else 1
        rt = api.Runtime(
            systemd_cgroup=opts.flag("systemd_cgroup"),
            rootless=opts.text("rootless") or "auto",
            log=log,
            criu=opts.text("criu"),
        )
        rt.root = opts.text("root") or _default_root()
        return _dispatch(rest[0], rest[1:], rt)
    except OcirtError as err:
        log.error(str(err))
        return 1
    except OSError as err:
        log.error(describe(err))
        return 1
    except KeyboardInterrupt:
        return 130


def _default_root() -> str:
    """runc's choice: ``$XDG_RUNTIME_DIR/ocirt`` for anyone but the host's root, made 0700
    and sticky (the XDG spec: files there without it may be cleaned up), else /run/ocirt."""
    from ocirt.runtime.state import DEFAULT_ROOT

    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if not xdg or not (os.geteuid() != 0 or (api.in_user_namespace() and os.environ.get("USER") != "root")):
        return DEFAULT_ROOT
    root = os.path.join(xdg, "ocirt")
    try:
        os.makedirs(root, 0o700, exist_ok=True)
        os.chmod(root, 0o1700)
    except OSError as exc:
        raise OcirtError(f"state directory {root} (from XDG_RUNTIME_DIR): {exc.strerror}") from None
    return root


def _dispatch(command: str, argv: list[str], rt: api.Runtime) -> int:
    if command not in COMMANDS:
        raise OcirtError(f"unknown command {command!r} (see ocirt --help)")
    flags, positional, _ = COMMANDS[command]
    args = Args({**flags, "help": (BOOL, "help"), "h": (BOOL, "help")})
    passes_rest = command in _PASS_REST
    rest = _parse(argv, {**flags, "help": (BOOL, "help"), "h": (BOOL, "help")}, args, passes_rest)
    if passes_rest:
        args.positional += rest[:1]
        args.rest = rest[1:]
    if args.flag("help"):
        print(f"usage: ocirt {command} [options] {' '.join(positional)}")
        return 0
    required = [p for p in positional if not p.startswith("[")]
    if len(args.positional) < len(required):
        raise OcirtError(f"{command}: missing argument <{required[len(args.positional)]}>")
    if len(args.positional) > len(positional):
        raise OcirtError(f"{command}: unexpected argument {args.positional[len(positional)]!r}")
    return _TYPED[command](rt, args)


# The commands under the typed API: their flags become its option objects here, and only here.


def _create_flags(options: api.CreateOptions, a: Args) -> None:
    """``run`` takes every flag of ``create``: one place maps them for both."""
    options.bundle = a.text("bundle")
    options.pid_file = a.text("pid_file")
    options.console_socket = a.text("console_socket")
    options.no_pivot = a.flag("no_pivot")
    options.no_new_keyring = a.flag("no_new_keyring")
    options.preserve_fds = a.number("preserve_fds") or 0


def _create(rt: api.Runtime, a: Args) -> int:
    options = api.CreateOptions()
    _create_flags(options, a)
    api.create(rt, a.positional[0], options)
    return 0


def _run(rt: api.Runtime, a: Args) -> int:
    options = api.RunOptions(detach=a.flag("detach"), keep=a.flag("keep"))
    _create_flags(options, a)
    return api.run(rt, a.positional[0], options)


def _start(rt: api.Runtime, a: Args) -> int:
    api.start(rt, a.positional[0])
    return 0


def _state(rt: api.Runtime, a: Args) -> int:
    """Indented as runc prints it."""
    from ocirt.foundation import fastjson

    sys.stdout.write(fastjson.dumps(api.state(rt, a.positional[0]), "  ") + "\n")
    return 0


def _kill(rt: api.Runtime, a: Args) -> int:
    api.kill(rt, a.positional[0], a.positional[1] if len(a.positional) > 1 else "SIGTERM", a.flag("all"))
    return 0


def _delete(rt: api.Runtime, a: Args) -> int:
    api.delete(rt, a.positional[0], a.flag("force"))
    return 0


def _pause(rt: api.Runtime, a: Args) -> int:
    api.pause(rt, a.positional[0])
    return 0


def _resume(rt: api.Runtime, a: Args) -> int:
    api.resume(rt, a.positional[0])
    return 0


def _list(rt: api.Runtime, a: Args) -> int:
    from ocirt.foundation import fastjson
    from ocirt.runtime.operations.list import table

    fmt = _format(a)
    states = api.list_containers(rt)
    if a.flag("quiet"):
        sys.stdout.write("".join(f"{s['id']}\n" for s in states))
    else:
        sys.stdout.write(fastjson.dumps(states) + "\n" if fmt == "json" else table(states))
    return 0


def _format(a: Args) -> str:
    fmt = a.text("format") or "table"
    if fmt not in ("table", "json"):
        raise OcirtError(f"--format: unknown format {fmt!r} (table or json)")
    return fmt


def _ps(rt: api.Runtime, a: Args) -> int:
    from ocirt.foundation import fastjson
    from ocirt.runtime.operations.ps import filter_table, run_ps

    fmt = _format(a)
    pids = api.ps(rt, a.positional[0])
    if fmt == "json":
        sys.stdout.write(fastjson.dumps(pids) + "\n")
    else:
        sys.stdout.write(filter_table(run_ps(a.rest or ["-ef"]), set(pids)))
    return 0


def _events(rt: api.Runtime, a: Args) -> int:
    from ocirt.runtime.operations.events import DEFAULT_INTERVAL, parse_duration

    text = a.text("interval")
    api.events(
        rt, a.positional[0], a.flag("stats"), DEFAULT_INTERVAL if text is None else parse_duration(text)
    )
    return 0


def _features(rt: api.Runtime, a: Args) -> int:
    """Indented as runc prints it."""
    from ocirt.foundation import fastjson

    sys.stdout.write(fastjson.dumps(api.features(), "    ") + "\n")
    return 0


def _spec(rt: api.Runtime, a: Args) -> int:
    bundle = a.text("bundle") or "."
    api.spec(bundle, a.flag("rootless"))
    return 0


def _validate(rt: api.Runtime, a: Args) -> int:
    from ocirt.specs.config import SPEC_VERSION

    problems = api.validate(a.text("bundle"))
    for line in problems:
        rt.log.error(line)
    if problems:
        return 1
    sys.stdout.write(f"config.json: valid (runtime-spec {SPEC_VERSION})\n")
    return 0


def _update(rt: api.Runtime, a: Args) -> int:
    from ocirt.runtime.operations.update import from_file, from_flags

    path = a.text("resources")
    if path:
        request = from_file(path, rt.log)
    else:
        request = from_flags({name: a.text(name.replace("-", "_")) for name in _UPDATE_VALUES}, rt.log)
    api.update(rt, a.positional[0], request)
    return 0


def _exec(rt: api.Runtime, a: Args) -> int:
    options = api.ExecOptions(
        a.rest,
        process=a.text("process"),
        tty=a.flag("tty"),
        console_socket=a.text("console_socket"),
        detach=a.flag("detach"),
        pid_file=a.text("pid_file"),
        cwd=a.text("cwd"),
        env=a.texts("env"),
        user=a.text("user"),
        additional_gids=a.texts("additional_gids"),
        cap=a.texts("cap"),
        no_new_privs=a.flag("no_new_privs"),
        preserve_fds=a.number("preserve_fds"),
        apparmor=a.text("apparmor"),
        process_label=a.text("process_label"),
    )
    return api.exec(rt, a.positional[0], options)


def _criu_options(a: Args) -> api.CriuOptions:
    return api.CriuOptions(
        a.text("image_path"),
        work_path=a.text("work_path"),
        tcp_established=a.flag("tcp_established"),
        ext_unix_sk=a.flag("ext_unix_sk"),
        shell_job=a.flag("shell_job"),
        file_locks=a.flag("file_locks"),
        manage_cgroups_mode=a.text("manage_cgroups_mode"),
        empty_ns=a.text("empty_ns"),
        auto_dedup=a.flag("auto_dedup"),
        lazy_pages=a.flag("lazy_pages"),
    )


def _checkpoint(rt: api.Runtime, a: Args) -> int:
    options = api.CheckpointOptions(
        _criu_options(a),
        leave_running=a.flag("leave_running"),
        pre_dump=a.flag("pre_dump"),
        parent_path=a.text("parent_path"),
    )
    api.checkpoint(rt, a.positional[0], options)
    return 0


def _restore(rt: api.Runtime, a: Args) -> int:
    """--no-pivot and --no-subreaper are accepted as runc's, and have no effect here."""
    options = api.RestoreOptions(
        _criu_options(a),
        bundle=a.text("bundle"),
        detach=a.flag("detach"),
        pid_file=a.text("pid_file"),
        console_socket=a.text("console_socket"),
    )
    return api.restore(rt, a.positional[0], options)


_TYPED = {
    "checkpoint": _checkpoint,
    "restore": _restore,
    "exec": _exec,
    "update": _update,
    "list": _list,
    "ps": _ps,
    "events": _events,
    "features": _features,
    "spec": _spec,
    "validate": _validate,
    "create": _create,
    "run": _run,
    "start": _start,
    "state": _state,
    "kill": _kill,
    "delete": _delete,
    "pause": _pause,
    "resume": _resume,
}


def entry() -> None:
    """Leave without the interpreter's teardown, which frees every module one by one (about
    4 ms a call here, three times for create+start+delete). Nothing in the runtime relies on
    it: no threads, and the atexit functions (none on the hot path) still run."""
    import atexit
    import os

    status = main()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        if stream is None:  # started with that fd closed
            continue
        try:
            stream.flush()
        except OSError:
            status = status or 120  # what the interpreter's own exit reports
    os._exit(status)


if __name__ == "__main__":
    entry()

"""A shim's life once its arguments are read, whoever forked it (``main.py`` or the zygote):
options checked, the server set up, the container's pid (or the error) reported on the sync
fd, then the epoll loop until the container is gone."""

from __future__ import annotations

import os

from ocirt.shim.args import PROG, Options, UsageError, parse


def prepare(argv: list[str], sync_fd: int | None = None) -> Options:
    """Parsed and checked options with absolute paths; UsageError names the bad one.
    ``sync_fd`` replaces ``--sync-fd``'s number (the zygote receives the fd as another)."""
    opts = parse(argv)
    if not os.path.isdir(opts.state_dir):
        raise UsageError(f"--state-dir: {opts.state_dir} is not a directory")
    if sync_fd is not None:
        opts.sync_fd = sync_fd
    elif opts.sync_fd >= 0:
        try:
            os.set_inheritable(opts.sync_fd, False)
        except OSError:
            raise UsageError(f"--sync-fd: {opts.sync_fd} is not an open file descriptor") from None
    opts.state_dir = os.path.abspath(opts.state_dir)
    opts.bundle = os.path.abspath(opts.bundle)
    if opts.log_path:
        opts.log_path = os.path.abspath(opts.log_path)
    return opts


def detach_stdio() -> None:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    os.chdir("/")
    os.umask(0o022)


def serve(opts: Options) -> int:
    from ocirt.runtime import syscalls
    from ocirt.shim.errors import Failed
    from ocirt.shim.server import Shim

    os.chdir(opts.state_dir)  # the shim's sockets are bound by relative name (console.py)
    shim = Shim(opts)
    syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)
    try:
        pid = shim.setup()
    except Failed as exc:
        shim.abort()
        _sync(opts, {"error": str(exc)})
        return 1
    except BaseException as exc:
        shim.abort()
        _sync(opts, {"error": f"{PROG}: {type(exc).__name__}: {exc}"})
        raise
    _sync(opts, {"pid": pid, "shim_pid": os.getpid()})
    try:
        shim.run()
    except BaseException:
        _record_crash(opts.state_dir)
        raise
    finally:
        shim.finish()
    return 0


def _record_crash(state_dir: str) -> None:
    """A shim has no stderr: a bug's traceback goes to ``shim-crash.log`` for the manager."""
    import traceback

    with open(os.path.join(state_dir, "shim-crash.log"), "a") as f:
        traceback.print_exc(file=f)


def _sync(opts: Options, msg: dict[str, object]) -> None:
    """One JSON line on the sync pipe, then close it: end-of-file tells the manager."""
    from ocirt.foundation import fastjson

    if opts.sync_fd < 0:
        return
    try:
        os.write(opts.sync_fd, fastjson.dumps(msg).encode() + b"\n")
    except OSError:
        pass
    os.close(opts.sync_fd)
    opts.sync_fd = -1

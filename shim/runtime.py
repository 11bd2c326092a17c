"""Running the OCI runtime (any runc-compatible binary) from the shim.

Every call is ``posix_spawnp`` plus a blocking wait: the runtime's commands return quickly
(``create`` and ``exec --detach`` leave the container's processes to the shim, a
subreaper), and a single-threaded shim has no better use for the time. SIGPIPE is reset
to its default in the child: Python ignores it, and an ignored signal survives ``execve``.
"""

from __future__ import annotations

import _signal
import os

_RUNTIME_ERR = "runtime.err"


class RuntimeFailed(Exception):
    """The runtime exited non-zero; the text is what it printed."""


class Runtime:
    def __init__(self, binary: str, root: str | None, cid: str, state_dir: str) -> None:
        self.binary = binary
        self.root = root
        self.cid = cid
        self.state_dir = state_dir

    def argv(self, *args: str) -> list[str]:
        head = [self.binary] + (["--root", self.root] if self.root else [])
        return head + list(args)

    def spawn(self, argv: list[str], stdin: int, stdout: int, stderr: int) -> int:
        actions = [(os.POSIX_SPAWN_DUP2, fd, n) for n, fd in enumerate((stdin, stdout, stderr))]
        try:
            return os.posix_spawnp(
                argv[0], argv, os.environ, file_actions=actions, setsigdef=(_signal.SIGPIPE,)
            )
        except OSError as exc:
            raise RuntimeFailed(f"cannot run {argv[0]}: {exc.strerror}") from None

    def call(self, *args: str, stdin: int = -1, stdout: int = -1, stderr: int = -1) -> None:
        """Run a runtime command to its end; its stderr (unless redirected) is the error text.

        Unset stdio is ``/dev/null``, and stderr a file: a pipe could be held open by a
        process the runtime leaves behind."""
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        err_path = os.path.join(self.state_dir, _RUNTIME_ERR)
        err = os.open(err_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            pid = self.spawn(
                self.argv(*args),
                null if stdin < 0 else stdin,
                null if stdout < 0 else stdout,
                err if stderr < 0 else stderr,
            )
            status = wait_for(pid)
            if status != 0:
                raise RuntimeFailed(read_text(err) or f"{self.binary} {args[0]}: {describe(status)}")
        finally:
            os.close(null)
            os.close(err)
            os.unlink(err_path)


def wait_for(pid: int) -> int:
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except InterruptedError:
            continue


def describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.WEXITSTATUS(status)}"


def read_text(fd: int) -> str:
    """Everything in ``fd`` (a file from its start, or a pipe up to end-of-file or EAGAIN)."""
    chunks = []
    try:
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError:
        pass
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace").strip()

"""The runtime's lifecycle as Python functions over typed options, under the ``ocirt`` CLI.

``cli.py`` only parses flags into these objects; a Python program (a shim, a test, a
manager) calls the same functions without spawning ``ocirt``:

    rt = Runtime(root="/run/ocirt")
    create(rt, "web", CreateOptions(bundle="/srv/web"))
    start(rt, "web")
    state(rt, "web")["status"]          # "running"
    kill(rt, "web", "SIGKILL")
    delete(rt, "web", force=True)

Failures raise ``OcirtError`` (``SpecError`` naming a config field; ``CleanupError`` when
undoing a failed step failed as well). ``create``, ``start``, ``state``, ``kill``,
``delete``, ``pause`` and ``resume`` are safe in a long-lived process: they fork only
children they wait for by pid. ``run`` in the foreground is the CLI's process model: it
makes the caller a child subreaper, forwards its signals and reaps every child; call it
from a process of its own.

Plain slotted classes and no ``typing`` at runtime: this module is on the hot path.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ocirt.runtime.log import Log

# the kernel gives the initial user namespace this fixed inode (PROC_USER_INIT_INO)
_INIT_USERNS = "user:[4026531837]"


class Runtime:
    """runc's global options: the state directory, the cgroup driver, rootless mode, the log."""

    __slots__ = ("criu", "log", "root", "rootless", "systemd_cgroup")

    def __init__(
        self,
        root: str | None = None,
        *,
        systemd_cgroup: bool = False,
        rootless: str = "auto",
        log: Log | None = None,
        criu: str | None = None,
    ) -> None:
        from ocirt.runtime.errors import OcirtError
        from ocirt.runtime.state import DEFAULT_ROOT

        if rootless not in ("true", "false", "auto"):
            raise OcirtError(f"--rootless: invalid value {rootless!r} (true, false or auto)")
        if log is None:
            from ocirt.runtime.log import Log

            log = Log()
        self.root = root or DEFAULT_ROOT
        self.systemd_cgroup = systemd_cgroup
        self.rootless = rootless
        self.log = log
        self.criu = criu  # the CRIU binary for checkpoint and restore (default: found on PATH)

    def is_rootless(self) -> bool:
        """runc's ``--rootless``: whether cgroups the caller may not write are done without
        (``auto``: when not the host's root)."""
        if self.rootless != "auto":
            return self.rootless == "true"
        return os.geteuid() != 0 or in_user_namespace()


def in_user_namespace() -> bool:
    """A readlink (a few µs), not a read of uid_map: every create by root asks."""
    try:
        return os.readlink("/proc/self/ns/user") != _INIT_USERNS
    except OSError:
        return False


class CreateOptions:
    """``ocirt create``'s flags. ``preserve_fds``: fds 3 to 3+N-1 of the caller pass to the
    container's process."""

    __slots__ = ("bundle", "console_socket", "no_new_keyring", "no_pivot", "pid_file", "preserve_fds")

    def __init__(
        self,
        bundle: str | None = None,
        *,
        pid_file: str | None = None,
        console_socket: str | None = None,
        no_pivot: bool = False,
        no_new_keyring: bool = False,
        preserve_fds: int = 0,
    ) -> None:
        self.bundle = bundle
        self.pid_file = pid_file
        self.console_socket = console_socket
        self.no_pivot = no_pivot
        self.no_new_keyring = no_new_keyring
        self.preserve_fds = preserve_fds


class RunOptions(CreateOptions):
    """``ocirt run``: create's flags, and ``detach`` (start and return) or ``keep`` (leave the
    stopped container for ``delete``)."""

    __slots__ = ("detach", "keep")

    def __init__(
        self,
        bundle: str | None = None,
        *,
        pid_file: str | None = None,
        console_socket: str | None = None,
        no_pivot: bool = False,
        no_new_keyring: bool = False,
        preserve_fds: int = 0,
        detach: bool = False,
        keep: bool = False,
    ) -> None:
        super().__init__(
            bundle,
            pid_file=pid_file,
            console_socket=console_socket,
            no_pivot=no_pivot,
            no_new_keyring=no_new_keyring,
            preserve_fds=preserve_fds,
        )
        self.detach = detach
        self.keep = keep


class ExecOptions:
    """``ocirt exec``: ``command`` (or ``process``, the path of a process.json) run in a
    running container; the rest are runc's flags laid over the container's own process."""

    __slots__ = (
        "additional_gids",
        "apparmor",
        "cap",
        "command",
        "console_socket",
        "cwd",
        "detach",
        "env",
        "no_new_privs",
        "pid_file",
        "preserve_fds",
        "process",
        "process_label",
        "tty",
        "user",
    )

    def __init__(
        self,
        command: list[str] | None = None,
        *,
        process: str | None = None,
        tty: bool = False,
        console_socket: str | None = None,
        detach: bool = False,
        pid_file: str | None = None,
        cwd: str | None = None,
        env: list[str] | None = None,
        user: str | None = None,
        additional_gids: list[str] | None = None,
        cap: list[str] | None = None,
        no_new_privs: bool = False,
        preserve_fds: int | None = None,
        apparmor: str | None = None,
        process_label: str | None = None,
    ) -> None:
        self.command = command or []
        self.process = process
        self.tty = tty
        self.console_socket = console_socket
        self.detach = detach
        self.pid_file = pid_file
        self.cwd = cwd
        self.env = env or []
        self.user = user
        self.additional_gids = additional_gids or []
        self.cap = cap or []
        self.no_new_privs = no_new_privs
        self.preserve_fds = preserve_fds
        self.apparmor = apparmor
        self.process_label = process_label


class CriuOptions:
    """The flags ``checkpoint`` and ``restore`` share, passed on to CRIU."""

    __slots__ = (
        "auto_dedup",
        "empty_ns",
        "ext_unix_sk",
        "file_locks",
        "image_path",
        "lazy_pages",
        "manage_cgroups_mode",
        "shell_job",
        "tcp_established",
        "work_path",
    )

    def __init__(
        self,
        image_path: str | None = None,
        *,
        work_path: str | None = None,
        tcp_established: bool = False,
        ext_unix_sk: bool = False,
        shell_job: bool = False,
        file_locks: bool = False,
        manage_cgroups_mode: str | None = None,
        empty_ns: str | None = None,
        auto_dedup: bool = False,
        lazy_pages: bool = False,
    ) -> None:
        self.image_path = image_path
        self.work_path = work_path
        self.tcp_established = tcp_established
        self.ext_unix_sk = ext_unix_sk
        self.shell_job = shell_job
        self.file_locks = file_locks
        self.manage_cgroups_mode = manage_cgroups_mode
        self.empty_ns = empty_ns
        self.auto_dedup = auto_dedup
        self.lazy_pages = lazy_pages


class CheckpointOptions:
    __slots__ = ("criu", "leave_running", "parent_path", "pre_dump")

    def __init__(
        self,
        criu: CriuOptions | None = None,
        *,
        leave_running: bool = False,
        pre_dump: bool = False,
        parent_path: str | None = None,
    ) -> None:
        self.criu = criu or CriuOptions()
        self.leave_running = leave_running
        self.pre_dump = pre_dump
        self.parent_path = parent_path


class RestoreOptions:
    __slots__ = ("bundle", "console_socket", "criu", "detach", "pid_file")

    def __init__(
        self,
        criu: CriuOptions | None = None,
        *,
        bundle: str | None = None,
        detach: bool = False,
        pid_file: str | None = None,
        console_socket: str | None = None,
    ) -> None:
        self.criu = criu or CriuOptions()
        self.bundle = bundle
        self.detach = detach
        self.pid_file = pid_file
        self.console_socket = console_socket


def create(rt: Runtime, container_id: str, options: CreateOptions) -> None:
    """An init process blocked before its program; on failure nothing of it is left."""
    from ocirt.runtime.operations.create import create_container

    create_container(rt, container_id, options)


def start(rt: Runtime, container_id: str) -> None:
    """Run a created container's program (and its poststart hooks)."""
    from ocirt.runtime.operations.start import start_container
    from ocirt.runtime.state import load

    start_container(load(rt.root, container_id), rt.log)


def state(rt: Runtime, container_id: str) -> dict[str, Any]:
    """The runtime-spec state document, as ``ocirt state`` prints it."""
    from ocirt.runtime.state import load

    return load(rt.root, container_id).public()


def kill(rt: Runtime, container_id: str, signal: str = "SIGTERM", all: bool = False) -> None:
    """``signal`` by name (``KILL``, ``SIGKILL``) or number; ``all``: every process of its cgroup."""
    from ocirt.runtime.operations.kill import kill_container

    kill_container(rt, container_id, signal, all)


def delete(rt: Runtime, container_id: str, force: bool = False) -> None:
    """Remove a stopped or created container; ``force`` kills a running one first."""
    from ocirt.runtime.operations.delete import delete_container

    delete_container(rt, container_id, force)


def pause(rt: Runtime, container_id: str) -> None:
    from ocirt.runtime.operations.pause import pause_container

    pause_container(rt, container_id)


def resume(rt: Runtime, container_id: str) -> None:
    from ocirt.runtime.operations.resume import resume_container

    resume_container(rt, container_id)


def run(rt: Runtime, container_id: str, options: RunOptions) -> int:
    """Create and start; unless ``detach``, wait and return the exit status as a shell
    reports it (128+N for a signal) and remove the container unless ``keep``."""
    from ocirt.runtime.operations.run import run_container

    return run_container(rt, container_id, options)


def list_containers(rt: Runtime) -> list[dict[str, Any]]:
    """Every container's state document under ``rt.root``, each with its ``owner``."""
    from ocirt.runtime.operations.list import list_states

    return list_states(rt)


def ps(rt: Runtime, container_id: str) -> list[int]:
    """The host pids of the container's processes."""
    from ocirt.runtime.operations.ps import container_pids
    from ocirt.runtime.state import load

    return container_pids(load(rt.root, container_id))


def events(rt: Runtime, container_id: str, stats: bool = False, interval: float = 5.0) -> None:
    """JSON lines on stdout: one stats snapshot (``stats``), or stats every ``interval``
    seconds and OOM events until the container stops."""
    from ocirt.runtime.operations.events import events_container

    events_container(rt, container_id, stats, interval)


def features() -> dict[str, Any]:
    """What this runtime implements, runtime-spec's features document."""
    from ocirt.runtime.operations.features import features_document

    return features_document()


def spec(bundle: str = ".", rootless: bool = False) -> None:
    """Write runc's example config.json into ``bundle``; never over an existing one."""
    from ocirt.runtime.operations.spec import write_spec

    write_spec(bundle, rootless)


def validate(bundle: str | None = None) -> list[str]:
    """The problems of a bundle's config.json against the schema and the typed model."""
    from ocirt.runtime.operations.validate import problems_of

    return problems_of(bundle)


def update(rt: Runtime, container_id: str, resources: dict[str, Any]) -> None:
    """Change a running container's cgroup limits: ``resources`` is a ``linux.resources``
    object, checked as config.json's is, merged over the current limits."""
    from ocirt.runtime.operations.update import update_container

    update_container(rt, container_id, resources)


def exec(rt: Runtime, container_id: str, options: ExecOptions) -> int:
    """Run a process in a running container. Detached: 0 once it runs (``pid_file`` names it).
    Otherwise, like foreground ``run``, the caller becomes a subreaper relaying signals and
    the exit status is returned: call it from a process of its own."""
    from ocirt.runtime.operations.exec import exec_container

    return exec_container(rt, container_id, options)


def checkpoint(rt: Runtime, container_id: str, options: CheckpointOptions) -> None:
    """Save a running container to CRIU images, then remove it (unless ``leave_running``)."""
    from ocirt.runtime.operations.checkpoint import checkpoint_container

    checkpoint_container(rt, container_id, options)


def restore(rt: Runtime, container_id: str, options: RestoreOptions) -> int:
    """A new container from CRIU images. Detached: 0 once it runs; otherwise, like
    foreground ``run``, it waits and returns the exit status."""
    from ocirt.runtime.operations.restore import restore_container

    return restore_container(rt, container_id, options)

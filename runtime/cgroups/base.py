"""What every cgroup driver shares: the ``Cgroup`` interface the runtime calls, the
placement of ``linux.cgroupsPath`` in a hierarchy, and the file operations on cgroupfs.
The drivers (``v1``, ``v2``, ``systemd``) build on it; the package's ``__init__`` picks one."""

from __future__ import annotations

import errno
import os
import time

from ocirt.runtime.errors import OcirtError, SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ROOT = "/sys/fs/cgroup"
SIGKILL = 9  # the same on every Linux architecture; ``signal`` would import enum


class Cgroup:
    """What the v1 and v2 drivers share; ``paths`` maps a hierarchy key to its directory."""

    __slots__ = ("paths", "unit")
    version = 0

    def __init__(self, paths: dict[str, str]) -> None:
        self.paths = paths
        self.unit: str | None = None

    def create(self) -> None:
        raise NotImplementedError

    def apply(self, resources: dict[str, Any] | None) -> None:
        raise NotImplementedError

    def limit_pids(self, resources: dict[str, Any] | None) -> None:
        """``pids.limit`` alone, for ``create`` to write once the runtime's last fork is
        done: 0 is a real limit (runtime-spec 1.3), which the intermediate's fork of init
        would otherwise hit."""
        from ocirt.runtime.cgroups.resources import R, pids_max

        value = pids_max(resources or {})
        directory = self.paths.get("pids", self.paths.get(""))  # v1 controller, or v2
        if value is None:
            return
        if directory is None:
            raise OcirtError(f"{R}.pids.limit: the pids controller is not mounted on this host")
        path = os.path.join(directory, "pids.max")
        try:
            write_file(path, value)
        except FileNotFoundError:
            raise OcirtError(
                f"{R}.pids.limit: {path} does not exist: the pids controller is not enabled there"
            ) from None
        except OSError as exc:
            raise OcirtError(f"{R}.pids.limit: writing {value!r} to {path}: {exc.strerror}") from None

    def add(self, pid: int) -> None:
        for path in self.dirs():
            try:
                write_file(os.path.join(path, "cgroup.procs"), str(pid))
            except OSError as exc:
                raise OcirtError(f"adding pid {pid} to {path}/cgroup.procs: {exc.strerror}") from None

    def join(self) -> None:
        """Move the calling process in (``join``)."""
        join(self.dirs())

    def pids(self) -> list[int]:
        raise NotImplementedError

    def freeze(self) -> None:
        raise NotImplementedError

    def thaw(self) -> None:
        raise NotImplementedError

    def frozen(self) -> bool:
        raise NotImplementedError

    def can_freeze(self) -> bool:
        raise NotImplementedError

    def kill_with_cgroup_kill(self) -> bool:
        """SIGKILL every member at once through ``cgroup.kill``; False where there is none."""
        raise NotImplementedError

    def kill_all(self, signum: int) -> None:
        """Frozen while signalled, so no member can fork a child that escapes the signal.

        A paused cgroup stays paused, except after SIGKILL: a task the v1 freezer holds
        dies only once thawed.
        """
        if signum == SIGKILL and self.kill_with_cgroup_kill():
            return
        if not self.pids():
            return
        freezing = self.can_freeze() and not self.frozen()
        if freezing:
            self.freeze()
        try:
            for pid in self.pids():
                _send(pid, signum)
        finally:
            if freezing or (signum == SIGKILL and self.can_freeze()):
                self.thaw()

    def destroy(self) -> None:
        if self.unit:
            from ocirt.runtime.cgroups.systemd import stop

            stop(self.unit)
        errors = []
        for path in self.dirs():
            try:
                remove_tree(path)
            except OcirtError as exc:
                errors.append(str(exc))
        if errors:
            raise OcirtError("; ".join(errors))

    def dirs(self) -> list[str]:
        """Each directory once: co-mounted v1 controllers (cpu,cpuacct) share one."""
        return list(dict.fromkeys(self.paths.values()))

    def to_state(self) -> dict[str, Any]:
        saved = self.layout()
        if self.unit:
            saved["unit"] = self.unit
        return saved

    def layout(self) -> dict[str, Any]:
        """The version and directories, as ``load_cgroup`` takes them back."""
        raise NotImplementedError

    def tracking_dir(self) -> str:
        """The directory where systemd puts a unit's processes."""
        raise NotImplementedError


def _send(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return  # it exited meanwhile, which is what a kill wants anyway


def clean_path(path: str) -> str:
    """runc's CleanPath: resolve ``..`` as if at ``/``; relative paths stay relative."""
    rooted = os.path.normpath("/" + path.lstrip("/"))
    if rooted == "/":
        raise SpecError("linux.cgroupsPath", f"{path!r} does not name a cgroup of its own")
    return rooted if path.startswith("/") else rooted[1:]


def own_cgroups() -> dict[str, str]:
    """This process's cgroup per hierarchy key: controller, ``name=`` name, ``""`` for v2."""
    found = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for key in controllers.split(","):
                found[key.removeprefix("name=")] = path
    return found


def place(mountpoint: str, root: str, inner: str, own: str) -> str:
    """Directory of ``inner`` in a hierarchy mounted at ``mountpoint`` from ``root``."""
    if inner.startswith("/"):
        return mountpoint + inner
    if root != "/" and (own == root or own.startswith(root + "/")):
        own = own[len(root) :]
    return os.path.join(mountpoint, own.lstrip("/"), inner)


def write_file(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def read_file(path: str) -> str:
    """Raw ``os`` calls: ``open()`` builds a text stack (and probes the fd) for every file."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode()


def makedirs(path: str) -> None:
    try:
        os.makedirs(path, 0o755, exist_ok=True)
    except OSError as exc:
        raise OcirtError(f"creating cgroup {path}: {exc.strerror}") from None


def procs_under(path: str) -> list[int]:
    """Members of the cgroup at ``path`` and of all its descendants. A cgroup removed while
    it is read (systemd removes an emptied scope's) gives ENODEV: it has no members."""
    pids: list[int] = []
    for dirpath, _, _ in os.walk(path):
        try:
            with open(os.path.join(dirpath, "cgroup.procs")) as f:
                pids += [int(line) for line in f]
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno != errno.ENODEV:
                raise
    return pids


def remove_tree(path: str) -> None:
    """Children first; EBUSY is retried, since killed members take a moment to leave."""
    try:
        os.rmdir(path)
        return
    except FileNotFoundError:
        return
    except OSError:
        pass
    try:
        children = [e.path for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return
    except OSError as exc:
        raise OcirtError(f"removing cgroup {path}: {exc.strerror}") from None
    for child in children:
        remove_tree(child)
    delay = 0.001
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or delay > 0.6:
                raise OcirtError(f"removing cgroup {path}: {exc.strerror}") from None
        time.sleep(delay)
        delay *= 2


def join(dirs: list[str]) -> None:
    """Move the calling process into each of ``dirs``; it must be single-threaded.

    A pid written to ``cgroup.procs`` (or another's to ``tasks``) takes the kernel's
    global threadgroup lock, whose first use after a quiet spell waits a whole RCU grace
    period (7 to 20 ms here) while holding ``cgroup_mutex``; ``0`` written to v1
    ``tasks`` moves just the calling thread and skips that lock (0.3 ms for all ten
    hierarchies). A single-threaded process is all moved by it. cgroup v2 refuses a
    thread move in a domain cgroup, so there ``cgroup.procs`` it is.
    """
    for path in dirs:
        name = "tasks" if os.path.exists(os.path.join(path, "tasks")) else "cgroup.procs"
        try:
            if name == "cgroup.procs" and str(os.getpid()) in read_file(os.path.join(path, name)).split():
                continue  # placed by systemd already; even a move to where we are would wait
            write_file(os.path.join(path, name), "0")
        except OSError as exc:
            raise OcirtError(f"joining {path}: writing 0 to {name}: {exc.strerror}") from None


def saved_dirs(saved: dict[str, Any]) -> list[str]:
    """The directories of a cgroup as ``Cgroup.to_state`` saved it, without loading its
    driver: what ``exec``'s joining process needs to ``join`` it."""
    if saved.get("version") == 2:
        return [saved["path"]]
    return list(dict.fromkeys(saved.get("paths", {}).values()))


def saved_frozen(saved: dict[str, Any]) -> bool:
    """Whether a cgroup as ``Cgroup.to_state`` saved it is paused: the v1 freezer where
    there is one, else ``cgroup.freeze``. Here, not in the drivers, so that ``state`` and
    ``list`` need not import them."""
    if saved.get("version") == 2:
        return is_frozen(saved["path"])
    paths = saved.get("paths", {})
    if "freezer" not in paths:
        return "unified" in paths and is_frozen(paths["unified"])
    try:
        return read_file(os.path.join(paths["freezer"], "freezer.state")).strip() == "FROZEN"
    except FileNotFoundError:
        return False


def is_frozen(path: str) -> bool:
    """A cgroup2 directory's own freeze request (``cgroup.freeze``)."""
    try:
        return read_file(os.path.join(path, "cgroup.freeze")).strip() == "1"
    except FileNotFoundError:
        return False

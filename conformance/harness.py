"""Drives one runtime binary through its runc-compatible command line, one case at a time.

Every run of the suite gets a private ``--root``, a work directory and a cgroup parent whose
names carry a random token, so nothing it makes can be confused with anything else on the
host. Each case works in a ``Context`` that remembers the containers and helper processes
it started; ``Context.cleanup`` undoes all of it even when the runtime misbehaved: ``delete
--force``, then SIGKILL to every process left in the case's cgroups, lazy unmounts of
anything mounted under its directory, and removal of its cgroups and files.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import IO, Any

from ocirt.conformance.model import Fail
from ocirt.foundation.mountinfo import read_mountinfo
from ocirt.testing.bundle import base_config, make_rootfs, write_config

DEFAULT_VERSION = "1.0.2"
TIMEOUT = 10.0


@dataclass(frozen=True)
class Proc:
    """A finished runtime command: exit status and its captured output."""

    args: list[str]
    code: int
    out: str
    err: str

    @property
    def ok(self) -> bool:
        return self.code == 0

    def brief(self) -> str:
        text = (self.err.strip() or self.out.strip()).splitlines()
        return f"exit {self.code}" + (f": {text[-1][:160]}" if text else "")


def cgroup_mounts() -> list[str]:
    """Mount points of every cgroup (v1) and cgroup2 hierarchy on this host."""
    found: list[str] = []
    for info in read_mountinfo():
        if info.fstype in ("cgroup", "cgroup2") and info.mountpoint not in found:
            found.append(info.mountpoint)
    return found


def mounts_under(path: str) -> list[str]:
    points = [info.mountpoint for info in read_mountinfo()]
    return [p for p in points if p == path or p.startswith(path + "/")]


class Harness:
    """One runtime binary and the private places the suite uses with it."""

    def __init__(self, runtime: str) -> None:
        self.runtime = runtime
        self.name = os.path.basename(runtime)
        self.token = uuid.uuid4().hex[:8]
        self.root = f"/run/ocirt-conformance-{self.token}"
        self.cgroup_parent = f"ocirt-conformance-{self.token}"
        self.workdir = tempfile.mkdtemp(prefix=f"ocirt-conformance-{self.token}-")
        # user-namespaced containers reach their rootfs as an unprivileged host uid
        os.chmod(self.workdir, 0o755)
        self.serial = 0

    def context(self, case_id: str) -> Context:
        self.serial += 1
        return Context(self, f"{self.serial:03d}-{case_id.replace('/', '_')}")

    def close(self) -> None:
        for top in cgroup_mounts():
            _rmdir_tree(os.path.join(top, self.cgroup_parent))
        for point in reversed(mounts_under(self.workdir)):
            subprocess.run(["umount", "-l", point], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.workdir, ignore_errors=True)


class Context:
    """What one case may do with the runtime; everything it starts is cleaned up after it."""

    def __init__(self, harness: Harness, name: str) -> None:
        self.h = harness
        self.dir = os.path.join(harness.workdir, name)
        os.makedirs(self.dir, mode=0o755)
        self.ids: list[str] = []
        self.helpers: list[subprocess.Popen[bytes]] = []
        self._n = 0

    # --- bundles -------------------------------------------------------------------------

    def config(self, args: list[str], version: str = DEFAULT_VERSION) -> dict[str, Any]:
        """The busybox base config at the lowest spec version the case needs."""
        cfg = base_config(args)
        cfg["ociVersion"] = version
        return cfg

    def path(self, *parts: str) -> str:
        return os.path.join(self.dir, *parts)

    def prepare(self, cfg: dict[str, Any]) -> tuple[str, str]:
        """A new container id and a bundle for it; its cgroup goes under the run's parent."""
        self._n += 1
        cid = f"conf-{self.h.token}-{os.path.basename(self.dir)[:3]}-{self._n}"
        self.ids.append(cid)
        bundle = self.path(f"bundle{self._n}")
        os.makedirs(bundle)
        make_rootfs(os.path.join(bundle, "rootfs"))
        cfg.setdefault("linux", {}).setdefault("cgroupsPath", f"/{self.h.cgroup_parent}/{cid}")
        write_config(bundle, cfg)
        return cid, bundle

    # --- commands ------------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = TIMEOUT, out: str | None = None) -> Proc:
        """Runs the runtime with output in files: a detached container keeps its stdio open,
        and a pipe would never see end-of-file while it runs. Stdin is an empty file of the
        case's own, never the host's /dev/null: some runtimes (crun 1.8) chown the init's stdio
        to the container's root, which would hand the host's /dev/null to a mapped uid."""
        argv = [self.h.runtime, "--root", self.h.root, *args]
        base = out or self.path(f"cmd{uuid.uuid4().hex[:6]}")
        with open(base + ".out", "w+") as fo, open(base + ".err", "w+") as fe, self.empty_input() as fi:
            try:
                res = subprocess.run(argv, stdin=fi, stdout=fo, stderr=fe, timeout=timeout)
            except subprocess.TimeoutExpired:
                raise Fail(
                    f"`{' '.join(args[:2])}` finished", f"still running after {timeout:g} s", "exit"
                ) from None
            fo.seek(0)
            fe.seek(0)
            return Proc(argv, res.returncode, fo.read(), fe.read())

    def run(self, cfg: dict[str, Any], timeout: float = TIMEOUT) -> Proc:
        """``run`` in the foreground: the container's exit status and output."""
        cid, bundle = self.prepare(cfg)
        return self.cli("run", "--bundle", bundle, cid, timeout=timeout, out=self.path(cid))

    def output(self, cfg: dict[str, Any], timeout: float = TIMEOUT) -> str:
        """Stdout of a container that must exit 0."""
        res = self.run(cfg, timeout)
        if not res.ok:
            raise Fail("container run", res.brief(), "exit 0")
        return res.out

    def create(self, cfg: dict[str, Any], *flags: str, must: bool = True) -> tuple[str, Proc]:
        cid, bundle = self.prepare(cfg)
        res = self.cli("create", "--bundle", bundle, *flags, cid, out=self.path(cid))
        if must and not res.ok:
            raise Fail("create", res.brief(), "exit 0")
        return cid, res

    def container_output(self, cid: str) -> str:
        """What a created container wrote to the stdout it inherited from ``create``."""
        with open(self.path(cid) + ".out") as f:
            return f.read()

    def bundle_of(self, cid: str) -> str:
        return self.path(f"bundle{cid.rsplit('-', 1)[1]}")

    def state(self, cid: str) -> dict[str, Any] | None:
        """The parsed ``state`` document, or None when the runtime reports an error."""
        res = self.cli("state", cid)
        if not res.ok:
            return None
        try:
            doc: dict[str, Any] = json.loads(res.out)
        except ValueError:
            raise Fail("state output", res.out[:100], "JSON") from None
        return doc

    def status(self, cid: str) -> str | None:
        doc = self.state(cid)
        return None if doc is None else str(doc.get("status"))

    def wait_status(self, cid: str, want: str, timeout: float = TIMEOUT) -> str | None:
        deadline = time.monotonic() + timeout
        while True:
            now = self.status(cid)
            if now == want or time.monotonic() > deadline:
                return now
            time.sleep(0.02)

    def running(self, args: list[str] | None = None, edit: Any = None) -> str:
        """A started container whose process sleeps; ``edit(cfg)`` may change its config."""
        cfg = self.config(args or ["sleep", "300"])
        if edit is not None:
            edit(cfg)
        cid, _ = self.create(cfg)
        res = self.cli("start", cid)
        if not res.ok:
            raise Fail("start", res.brief(), "exit 0")
        return cid

    def stopped(self) -> str:
        cid, _ = self.create(self.config(["true"]))
        res = self.cli("start", cid)
        if not res.ok:
            raise Fail("start", res.brief(), "exit 0")
        if self.wait_status(cid, "stopped") != "stopped":
            raise Fail("status after the process exited", self.status(cid), "stopped")
        return cid

    def pid(self, cid: str) -> int:
        doc = self.state(cid)
        if doc is None or not isinstance(doc.get("pid"), int) or doc["pid"] <= 0:
            raise Fail("state pid", None if doc is None else doc.get("pid"), "a positive pid")
        return int(doc["pid"])

    def helper(self, argv: list[str]) -> subprocess.Popen[bytes]:
        """A host process the case needs (a hook target, a terminal peer); killed at cleanup."""
        with self.empty_input() as fi, open(self.path(f"helper{uuid.uuid4().hex[:6]}.out"), "w") as fo:
            proc = subprocess.Popen(argv, stdin=fi, stdout=fo)
        self.helpers.append(proc)
        return proc

    def empty_input(self) -> IO[str]:
        """An empty file in the case's directory to serve as a runtime's stdin (see ``cli``)."""
        return open(self.path(f"empty{uuid.uuid4().hex[:6]}.in"), "w+")

    def make_shared(self) -> None:
        """Makes the case's directory a shared mount of its own, so mount events under it
        propagate (the host's own mounts may well be private, as on a host without systemd)."""
        if self.dir not in mounts_under(self.dir):
            subprocess.run(["mount", "--bind", self.dir, self.dir], check=True)
            subprocess.run(["mount", "--make-shared", self.dir], check=True)

    def cgroup_dirs(self, cid: str) -> list[str]:
        rel = f"{self.h.cgroup_parent}/{cid}"
        return [d for d in (os.path.join(top, rel) for top in cgroup_mounts()) if os.path.isdir(d)]

    # --- cleanup -------------------------------------------------------------------------

    def cleanup(self) -> None:
        for cid in self.ids:
            # runc-compatible runtimes keep a directory per container under --root; with none
            # left (``run`` finished, or delete done) a forced delete would only cost time
            if not os.path.exists(os.path.join(self.h.root, cid)):
                continue
            try:
                self.cli("delete", "--force", cid, timeout=TIMEOUT)
            except Fail:
                pass
        for cid in self.ids:
            _kill_cgroups(self.cgroup_dirs(cid))
        for proc in self.helpers:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        for point in reversed(mounts_under(self.dir)):
            subprocess.run(["umount", "-l", point], capture_output=True)
        for cid in self.ids:
            for d in self.cgroup_dirs(cid):
                _rmdir_tree(d)
            shutil.rmtree(os.path.join(self.h.root, cid), ignore_errors=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def _kill_cgroups(dirs: list[str]) -> None:
    """SIGKILL every process in ``dirs`` (thawing a frozen one first) until they are empty."""
    for d in dirs:
        for state in ("freezer.state", "cgroup.freeze"):
            try:
                with open(os.path.join(d, state), "w") as f:
                    f.write("THAWED" if state == "freezer.state" else "0")
            except OSError:
                pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        pids: set[int] = set()
        for d in dirs:
            for dirpath, _, files in os.walk(d):
                if "cgroup.procs" in files:
                    try:
                        with open(os.path.join(dirpath, "cgroup.procs")) as f:
                            pids.update(int(p) for p in f.read().split())
                    except OSError:
                        pass
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.02)


def _rmdir_tree(top: str) -> None:
    """cgroup directories go bottom-up; a few retries cover a dying process still counted."""
    if not os.path.isdir(top):
        return
    for attempt in range(50):
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass
        if not os.path.isdir(top):
            return
        time.sleep(0.02 * (attempt + 1) if attempt < 5 else 0.1)

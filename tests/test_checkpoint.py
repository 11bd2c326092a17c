"""``ocirt checkpoint`` and ``ocirt restore`` through CRIU, with real containers.

CRIU is the one ``make criu`` builds into the venv (tools/build-criu.sh): Debian 12's 3.17
cannot start on this kernel (6.18 splits the vvar mapping, which CRIU learnt in 4.1).
The counting container writes to a bind-mounted host directory (an external mount for
CRIU) and to a pipe held by the test, so both the mount and the stdio hand-over are seen.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import OCIRT, Runtime, cgroup_dirs
from support import hostfacts

CRIU = os.path.join(os.path.dirname(sys.executable), "criu")
# the count file is replaced by a rename, so a dump at any instant leaves a whole number in it
LOOP = "i=0; while true; do i=$((i+1)); echo $i > /data/n; mv /data/n /data/count; echo $i; sleep 0.1; done"


@pytest.fixture
def criu() -> str:
    assert os.access(CRIU, os.X_OK), f"{CRIU} is missing: run `make criu`"
    return CRIU


class Counter:
    """A bundle running LOOP with ``data/`` of the test bound at /data, and the container's
    cgroups bound under /sys/fs/cgroup (no cgroup namespace): external mounts for CRIU."""

    def __init__(self, rt: Runtime, workdir: str) -> None:
        self.rt = rt
        self.data = os.path.join(workdir, "data")
        os.mkdir(self.data)

        def edit(c: dict[str, Any]) -> None:
            c["mounts"] += [
                {"destination": "/data", "type": "bind", "source": self.data, "options": ["rbind"]},
                {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro"]},
            ]

        self.bundle = rt.bundle(["sh", "-c", LOOP], edit)
        self.images = os.path.join(workdir, "images")
        self.pipes: list[int] = []

    def count(self) -> int:
        with open(os.path.join(self.data, "count")) as f:
            return int(f.read())

    def wait_count(self, above: int) -> int:
        deadline = time.monotonic() + 10
        while True:
            try:
                now = self.count()
            except FileNotFoundError:
                now = 0
            if now > above:
                return now
            assert time.monotonic() < deadline, f"the counter stayed at {now}"
            time.sleep(0.05)

    def ocirt(self, *args: str, stdout: int | None = None) -> subprocess.CompletedProcess[str]:
        """ocirt with --criu, stdin /dev/null and stdout ``stdout``. Output is captured in
        files, as a detached container keeps them open (see conftest.Runtime)."""
        argv = [OCIRT, "--root", self.rt.root, "--criu", CRIU, *args]
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            res = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out if stdout is None else stdout,
                                 stderr=err, timeout=60, check=False)  # fmt: skip
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(argv, res.returncode, out.read(), err.read())

    def pipe(self) -> tuple[int, int]:
        r, w = os.pipe()
        self.pipes += [r, w]
        return r, w

    def close(self) -> None:
        """The pipes, and the images and logs that CRIU wrote."""
        for fd in self.pipes:
            os.close(fd)
        for name in ("images", "work", "empty"):
            shutil.rmtree(os.path.join(self.rt.workdir, name), ignore_errors=True)


@pytest.fixture
def counter(rt: Runtime, tmp_path: Any, criu: str) -> Iterator[Counter]:
    c = Counter(rt, str(tmp_path))
    try:
        yield c
    finally:
        c.close()


def start(c: Counter, cid: str, stdout: int | None = None) -> int:
    """Run the counter detached with its stdout on a new pipe (or ``stdout``); return its pid."""
    res = c.ocirt("run", "-d", "--bundle", c.bundle, cid, stdout=c.pipe()[1] if stdout is None else stdout)
    assert res.returncode == 0, res.stderr
    pid: int = c.rt.state(cid)["pid"]
    return pid


def read_numbers(fd: int, at_least: int, context: Callable[[], str] = str) -> list[int]:
    """Lines from the pipe until ``at_least`` complete ones have come."""
    data = b""
    deadline = time.monotonic() + 10
    while data.count(b"\n") < at_least:
        left = deadline - time.monotonic()
        assert left > 0, f"the pipe gave only {data!r} {context()}"
        if select.select([fd], [], [], left)[0]:
            data += os.read(fd, 4096)
    return [int(n) for n in data.split(b"\n")[:at_least]]


def gone(rt: Runtime, cid: str, pid: int) -> None:
    assert rt("state", cid).returncode != 0, f"{cid} still exists"
    assert cid not in rt("list", "-q").stdout.split()
    assert not cgroup_dirs(cid), f"cgroup of {cid} left"
    try:
        with open(f"/proc/{pid}/stat") as f:
            assert f.read().split()[2] == "Z", f"pid {pid} of {cid} still runs"
    except FileNotFoundError:
        pass


@hostfacts.V1_HYBRID
def test_restored_container_keeps_counting(rt: Runtime, counter: Counter) -> None:
    first, second = rt.new_id(), rt.new_id()
    pid = start(counter, first)
    counter.wait_count(5)
    res = counter.ocirt("checkpoint", "--image-path", counter.images, first)
    assert res.returncode == 0, res.stderr
    saved = counter.count()
    gone(rt, first, pid)
    time.sleep(0.3)
    assert counter.count() == saved, "something still counts after the checkpoint"

    r, w = counter.pipe()
    pid_file = os.path.join(counter.rt.workdir, "restored.pid")
    res = counter.ocirt(
        "restore", "-d", "--bundle", counter.bundle, "--image-path", counter.images,
        "--pid-file", pid_file, second, stdout=w,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    state = rt.state(second)
    assert state["status"] == "running" and state["pid"] not in (0, pid)
    with open(pid_file) as f:
        assert int(f.read()) == state["pid"]
    with open(f"/proc/{state['pid']}/cgroup") as f:
        joined = f.read().splitlines()
    # v1 only: with the v1 devices and freezer controllers the unified line stays the caller's
    assert all(line.endswith(second) for line in joined if ":memory:" not in line and line[:3] != "0::")
    with open("/proc/self/cgroup") as f:
        assert [line for line in joined if line[:3] == "0::"] == [
            ln for ln in f.read().splitlines() if ln[:3] == "0::"
        ]
    assert cgroup_dirs(second)
    # the cgroup binds inside now show the new container's cgroup, not the old one's
    with open(f"/proc/{state['pid']}/mountinfo") as f:
        pids_root = next(line.split()[3] for line in f if line.split()[4] == "/sys/fs/cgroup/pids")
    assert pids_root.endswith("/" + second)
    # the restored loop writes the next numbers to the file and to the restore's pipe
    lines = read_numbers(r, 3)
    assert lines[0] in (saved, saved + 1), f"restarted at {lines[0]}, checkpointed at {saved}"
    assert lines == list(range(lines[0], lines[0] + 3))
    assert counter.wait_count(lines[-1]) > saved

    assert rt("kill", second, "KILL").returncode == 0
    deadline = time.monotonic() + 5
    while rt.state(second)["status"] != "stopped":
        assert time.monotonic() < deadline, "the restored container did not stop"
        time.sleep(0.05)
    assert rt("delete", second).returncode == 0
    gone(rt, second, state["pid"])


def test_leave_running_then_restore_in_the_foreground(rt: Runtime, counter: Counter) -> None:
    first, second = rt.new_id(), rt.new_id()
    # stdin and stdout both /dev/null: one file for CRIU, which restore hands its stdout
    pid = start(counter, first, subprocess.DEVNULL)
    counter.wait_count(3)
    # paused, so the number the images hold is known; a paused container stays paused
    assert rt("pause", first).returncode == 0
    saved = counter.count()
    work = os.path.join(rt.workdir, "work")
    res = counter.ocirt(
        "checkpoint", "--leave-running", "--image-path", counter.images, "--work-path", work, first
    )
    assert res.returncode == 0, res.stderr
    assert os.path.exists(os.path.join(work, "dump.log"))
    assert not os.path.exists(os.path.join(counter.images, "dump.log"))
    state = rt.state(first)
    assert (state["status"], state["pid"]) == ("paused", pid)
    assert counter.count() == saved
    assert rt("resume", first).returncode == 0
    counter.wait_count(saved + 3)
    assert rt("delete", "--force", first).returncode == 0
    gone(rt, first, pid)

    # the images hold the state at the checkpoint, not what the original reached later;
    # in the foreground, restore waits for the container and exits with its status
    r, w = counter.pipe()
    argv = [OCIRT, "--root", rt.root, "--criu", CRIU, "restore", "--bundle", counter.bundle,
            "--image-path", counter.images, second]  # fmt: skip
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=w, stderr=err)
        try:

            def context() -> str:
                err.seek(0)
                return f"(restore: exit {proc.poll()}, {err.read()!r})"

            assert read_numbers(r, 1, context)[0] in (saved, saved + 1)
            restored = rt.state(second)["pid"]
            assert rt("kill", second, "KILL").returncode == 0
            assert proc.wait(timeout=10) == 128 + 9
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        assert err.read() == b""
    gone(rt, second, restored)


def test_errors_are_one_line_and_leave_nothing(rt: Runtime, counter: Counter, tmp_path: Any) -> None:
    def fails(res: subprocess.CompletedProcess[str], *words: str) -> None:
        assert res.returncode == 1
        assert len(res.stderr.splitlines()) == 1 and "Traceback" not in res.stderr, res.stderr
        for word in words:
            assert word in res.stderr, res.stderr

    cid = rt.new_id()
    fails(counter.ocirt("checkpoint", "--image-path", counter.images, cid), "does not exist")
    assert rt("create", "--bundle", counter.bundle, cid).returncode == 0
    fails(counter.ocirt("checkpoint", "--image-path", counter.images, cid), "not running", "created")
    fails(counter.ocirt("--criu", "/nonexistent/criu", "checkpoint", cid), "--criu")
    assert not os.path.exists(counter.images)
    assert rt("start", cid).returncode == 0
    # this kernel lacks CONFIG_MEM_SOFT_DIRTY, which pre-dump needs: refused by name
    if subprocess.run([CRIU, "check", "--feature", "mem_dirty_track"], capture_output=True).returncode:
        fails(counter.ocirt("checkpoint", "--pre-dump", "--image-path", counter.images, cid), "--pre-dump")
        assert not os.path.exists(counter.images) and rt.state(cid)["status"] == "running"
    fails(counter.ocirt("checkpoint", "--lazy-pages", "--image-path", counter.images, cid), "--lazy-pages")
    assert rt("delete", "--force", cid).returncode == 0

    other = rt.new_id()
    empty = tmp_path / "empty"
    empty.mkdir()
    fails(
        counter.ocirt("restore", "--bundle", counter.bundle, "--image-path", str(empty), other),
        "--image-path",
    )
    fails(
        counter.ocirt("restore", "--manage-cgroups-mode", "bogus", "--image-path", str(empty), other),
        "--manage-cgroups-mode",
    )
    # images CRIU cannot read: CRIU itself fails, after the state and cgroup were made
    (empty / "inventory.img").write_bytes(b"not an image")
    fails(
        counter.ocirt("restore", "--bundle", counter.bundle, "--image-path", str(empty), other),
        "criu restore",
    )
    assert not os.path.exists(os.path.join(rt.root, other)) and not cgroup_dirs(other)
    assert sorted(os.listdir(empty)) == ["inventory.img", "restore.log"]

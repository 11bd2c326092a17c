"""``ocirt-shim`` with real containers, through ocirt and through runc.

Every test launches shims the way a manager does (``ocirt.shim.client.launch``) and checks
what a user would see: the log files, attached output, exit statuses, exec results. The
``shims`` fixture kills whatever a test left (by pid), deletes the containers through the
runtime, and then fails the test on any leftover process, cgroup, mount, runtime state or
fd of this process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import OCIRT, cgroup_dirs
from ocirt.shim.client import (
    ExitStatus,
    ShimClient,
    ShimError,
    ShimGone,
    ShimHandle,
    ShimOptions,
    launch,
    read_exit,
)
from ocirt.testing.bundle import base_config, make_rootfs, write_config

RUNTIMES = {"ocirt": OCIRT, "runc": shutil.which("runc") or "/usr/sbin/runc"}
MiB = 1 << 20


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: Any) -> str:
    """One busybox tree for every container of the module: bundles point at it."""
    return make_rootfs(str(tmp_path_factory.mktemp("shim") / "rootfs"))


class Shims:
    """Launches shims for one test and remembers everything to clean up."""

    def __init__(self, runtime: str, workdir: str, rootfs: str) -> None:
        self.runtime = RUNTIMES[runtime]
        self.workdir = workdir
        self.rootfs = rootfs
        self.root = f"/run/ocirt-test-shim-{uuid.uuid4().hex[:8]}"
        self.ids: list[str] = []
        self.handles: list[ShimHandle] = []

    def options(self, args: list[str], edit: Any = None, **kw: Any) -> ShimOptions:
        cid = f"ocirt-test-shim-{uuid.uuid4().hex[:8]}"
        self.ids.append(cid)
        base = os.path.join(self.workdir, cid)
        config = base_config(args)
        config["root"]["path"] = self.rootfs
        if edit is not None:
            edit(config)
        os.makedirs(os.path.join(base, "bundle"))
        write_config(os.path.join(base, "bundle"), config)
        defaults: dict[str, Any] = {
            "runtime": self.runtime,
            "runtime_root": self.root,
            "log_path": os.path.join(base, "ctr.log"),
        }
        return ShimOptions(
            id=cid, bundle=os.path.join(base, "bundle"), state_dir=os.path.join(base, "shim"), **defaults | kw
        )

    def launch(self, args: list[str], edit: Any = None, **kw: Any) -> tuple[ShimHandle, ShimOptions]:
        opts = self.options(args, edit, **kw)
        handle = launch(opts, timeout=60)
        self.handles.append(handle)
        return handle, opts

    def runtime_cmd(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.runtime, "--root", self.root, *args], capture_output=True, text=True, timeout=60
        )

    def cleanup(self) -> list[str]:
        for h in self.handles:
            if h.client.alive():
                os.kill(h.shim_pid, signal.SIGKILL)
        for cid in self.ids:
            self.runtime_cmd("delete", "--force", cid)
        deadline = time.monotonic() + 10
        problems: list[str] = []
        for h in self.handles:
            for pid, what in ((h.shim_pid, "shim"), (h.container_pid, "container")):
                while _running(pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if _running(pid):
                    problems.append(f"{what} process {pid}")
        for cid in self.ids:
            problems += [f"cgroup {d}" for d in cgroup_dirs(cid)]
        if os.path.isdir(self.root):
            problems += [f"runtime state {self.root}/{n}" for n in os.listdir(self.root)]
        with open("/proc/self/mountinfo") as f:
            problems += [f"mount {line.split()[4]}" for line in f if self.workdir in line]
        shutil.rmtree(self.root, ignore_errors=True)
        return problems


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie whose parent is not us is someone else's to reap)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(params=sorted(RUNTIMES))
def shims(request: Any, tmp_path: Any, rootfs: str) -> Iterator[Shims]:
    fds_before = set(os.listdir("/proc/self/fd"))
    s = Shims(request.param, str(tmp_path), rootfs)
    try:
        yield s
    finally:
        problems = s.cleanup()
        leaked = set(os.listdir("/proc/self/fd")) - fds_before
        leaked = {fd for fd in leaked if os.path.exists(f"/proc/self/fd/{fd}")}
        assert not problems, f"left behind: {problems}"
        assert not leaked, f"fds leaked in the test process: {leaked}"


def read_logs(path: str, max_file: int) -> list[list[str]]:
    """The lines of every log file, oldest file first."""
    files = [f"{path}.{k}" for k in range(max_file - 1, 0, -1)] + [path]
    out = []
    for name in files:
        if os.path.exists(name):
            with open(name) as f:
                out.append(f.read().splitlines())
    return out


def k8s_text(line: str) -> tuple[str, str, str]:
    """(stream, F|P, text) of a CRI log line, checking its timestamp."""
    stamp, stream, tag, text = [*line.split(" ", 3), ""][:4]
    assert stamp.endswith("Z") and len(stamp) == 30, line
    assert stream in ("stdout", "stderr") and tag in ("F", "P"), line
    return stream, tag, text


def log_lines(path: str, driver: str, max_file: int = 1) -> list[str]:
    """Complete stdout lines, joined across partial records."""
    lines, current = [], ""
    for chunk in read_logs(path, max_file):
        for raw in chunk:
            if driver == "k8s-file":
                _, tag, text = k8s_text(raw)
                current += text
                complete = tag == "F"
            else:
                rec = json.loads(raw)
                current += rec["log"]
                complete = rec["log"].endswith("\n")
                current = current.rstrip("\n") if complete else current
            if complete:
                lines.append(current)
                current = ""
    return lines


@pytest.mark.parametrize("driver", ["k8s-file", "json-file"])
def test_logs_rotate_without_losing_or_repeating_a_line(shims: Shims, driver: str) -> None:
    n = 3000
    script = f"i=0; while [ $i -lt {n} ]; do echo line-$i; i=$((i+1)); done"
    h, opts = shims.launch(["sh", "-c", script], log_driver=driver, log_max_size=8192, log_max_file=500)
    assert h.client.wait(60).exit_code == 0
    assert log_lines(opts.log_path or "", driver, 500) == [f"line-{i}" for i in range(n)]
    files = [f for f in os.listdir(os.path.dirname(opts.log_path or "")) if f.startswith("ctr.log")]
    assert len(files) > 10
    for name in files:
        assert os.path.getsize(os.path.join(os.path.dirname(opts.log_path or ""), name)) <= 8192

    # with few files kept, what is left is exactly the newest lines, in order
    h, opts = shims.launch(["sh", "-c", script], log_driver=driver, log_max_size=4096, log_max_file=3)
    assert h.client.wait(60).exit_code == 0
    kept = log_lines(opts.log_path or "", driver, 3)
    first = int(kept[0].split("-")[1])
    assert first > 0 and kept == [f"line-{i}" for i in range(first, n)]
    assert not os.path.exists(f"{opts.log_path}.3")

    # one file: it starts again empty, still on a record boundary
    h, opts = shims.launch(["sh", "-c", script], log_driver=driver, log_max_size=2048, log_max_file=1)
    assert h.client.wait(60).exit_code == 0
    kept = log_lines(opts.log_path or "", driver)
    first = int(kept[0].split("-")[1])
    assert first > 0 and kept == [f"line-{i}" for i in range(first, n)]
    assert os.path.getsize(opts.log_path or "") <= 2048 and not os.path.exists(f"{opts.log_path}.1")


@pytest.mark.parametrize("driver", ["k8s-file", "json-file"])
def test_partial_lines_and_streams(shims: Shims, driver: str) -> None:
    script = "printf abc; sleep 0.3; printf 'def\\n'; echo oops >&2"
    h, opts = shims.launch(["sh", "-c", script], log_driver=driver)
    assert h.client.wait(30).exit_code == 0
    with open(opts.log_path or "") as f:
        raw = f.read().splitlines()
    if driver == "k8s-file":
        recs = [k8s_text(line) for line in raw]
        assert recs == [("stdout", "P", "abc"), ("stdout", "F", "def"), ("stderr", "F", "oops")]
    else:
        recs2 = [json.loads(line) for line in raw]
        assert [(r["stream"], r["log"]) for r in recs2] == [
            ("stdout", "abc"),
            ("stdout", "def\n"),
            ("stderr", "oops\n"),
        ]
        assert all(r["time"].endswith("Z") for r in recs2)


def test_log_driver_none_still_feeds_attach(shims: Shims) -> None:
    h, opts = shims.launch(["sh", "-c", "read x; echo got $x"], log_driver="none", log_path=None, stdin=True)
    out = Capture()
    with out:
        c = h.client
        r, w = os.pipe()
        os.write(w, b"it\n")
        os.close(w)
        status = c.attach(stdin=r, stdout=out.w, stderr=out.w, timeout=30)
        os.close(r)
    assert status is not None and status.exit_code == 0
    assert out.text() == "got it\n"
    assert not os.path.exists(os.path.join(os.path.dirname(opts.state_dir), "ctr.log"))


class Capture:
    """A pipe whose read side a thread drains into memory."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        self.data = bytearray()
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        while chunk := os.read(self.r, 65536):
            self.data += chunk

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.w)
        self.thread.join(10)
        os.close(self.r)

    def text(self) -> str:
        return self.data.decode()


def test_two_attached_clients_and_one_stdin(shims: Shims) -> None:
    h, _ = shims.launch(["sh", "-c", "while read x; do echo seen $x; done; echo bye"], stdin=True)
    c = h.client
    results: dict[str, ExitStatus | None] = {}
    watcher, writer = Capture(), Capture()
    stdin_r, stdin_w = os.pipe()

    def attach(name: str, cap: Capture, stdin: int | None) -> None:
        results[name] = c.attach(stdin=stdin, stdout=cap.w, stderr=cap.w, timeout=30)

    threads = [
        threading.Thread(target=attach, args=("watcher", watcher, None)),
        threading.Thread(target=attach, args=("writer", writer, stdin_r)),
    ]
    with watcher, writer:
        for t in threads:
            t.start()
        _until(lambda: c.state()["attached"] == 2, "both clients to attach")
        with open(os.devnull) as null, pytest.raises(ShimError, match="stdin"):
            c.attach(stdin=null.fileno(), timeout=5)
        os.write(stdin_w, b"one\ntwo\n")
        _until(lambda: b"seen two" in watcher.data, "output to the watcher")
        os.close(stdin_w)  # end of stdin: the loop ends, the container exits
        for t in threads:
            t.join(30)
        os.close(stdin_r)
    assert watcher.text() == writer.text() == "seen one\nseen two\nbye\n"
    assert results["watcher"] == results["writer"]
    assert results["writer"] is not None and results["writer"].exit_code == 0


def _cmdline(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read()


def _until(cond: Any, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_detach_keys_leave_the_container_running(shims: Shims) -> None:
    h, opts = shims.launch(["sh", "-c", "while read x; do echo seen $x; done"], stdin=True)
    c = h.client
    r, w = os.pipe()
    os.write(w, b"a\x10b\n\x10\x11never sent\n")
    assert c.attach(stdin=r, stdout=w, timeout=30) is None  # detached (stdout unused)
    os.close(r)
    os.close(w)
    _until(lambda: "seen a\x10b" in _read(opts.log_path or ""), "the line before the detach keys")
    assert c.state()["status"] == "running" and c.state()["attached"] == 0
    r, w = os.pipe()
    os.write(w, b"again\n")
    os.close(w)
    out = Capture()
    with out:
        status = c.attach(stdin=r, stdout=out.w, timeout=30)  # stdin's end closes the container's
    os.close(r)
    assert status is not None and status.exit_code == 0
    assert "never sent" not in _read(opts.log_path or "")
    assert "seen again" in _read(opts.log_path or "")


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _tty(config: dict[str, Any]) -> None:
    config["process"]["terminal"] = True


def test_tty_resize_seen_by_stty(shims: Shims) -> None:
    """Also with a state directory too long for a unix socket address (sun_path)."""
    opts = shims.options(["sh", "-c", "read x; stty size; exit 4"], _tty, tty=True, stdin=True)
    opts.state_dir = os.path.join(opts.state_dir, "d" * 100)
    h = launch(opts)
    shims.handles.append(h)
    c = h.client
    c.resize(33, 77)
    out = Capture()
    with out:
        r, w = os.pipe()
        os.write(w, b"go\n")
        status = c.attach(stdin=r, stdout=out.w, timeout=30)
        os.close(w)
        os.close(r)
    assert status is not None and status.exit_code == 4
    assert "33 77" in out.text()
    with open(opts.log_path or "", newline="") as f:
        assert "stdout F 33 77\r\n" in f.read()
    with pytest.raises(ShimError):
        c.state()  # the shim is finished and gone


def _memory_limit(config: dict[str, Any]) -> None:
    config["linux"]["resources"] = {"memory": {"limit": 16 * MiB}}


@pytest.mark.parametrize(
    ("args", "edit", "code", "sig", "oom"),
    [
        (["sh", "-c", "echo bye; exit 3"], None, 3, None, False),
        (["sleep", "100"], None, 137, 9, False),
        (["sh", "-c", "a=xxxxxxxx; while :; do a=$a$a; done"], _memory_limit, 137, 9, True),
    ],
    ids=["exit", "signal", "oom"],
)
def test_exit_status(shims: Shims, args: list[str], edit: Any, code: int, sig: int | None, oom: bool) -> None:
    h, opts = shims.launch(args, edit, delete_on_exit=True)
    if sig is not None and not oom:
        h.client.kill(sig)
    status = h.client.wait(60)
    assert (status.exit_code, status.signal, status.oom_killed) == (code, sig, oom)
    assert status == read_exit(opts.state_dir)
    _until(lambda: not h.client.alive(), "the shim to finish")
    assert sorted(os.listdir(opts.state_dir)) == ["exit.json"]
    assert shims.runtime_cmd("state", opts.id).returncode != 0  # deleted on exit


def test_exec_wait_and_no_host_fds(shims: Shims) -> None:
    h, opts = shims.launch(["sleep", "100"])
    c = h.client
    _until(lambda: _cmdline(h.container_pid) == b"sleep\x00100\x00", "the container's execve")
    assert sorted(os.listdir(f"/proc/{h.container_pid}/fd")) == ["0", "1", "2"]
    shim_fds = sorted(os.listdir(f"/proc/{h.shim_pid}/fd"))
    out, err = Capture(), Capture()
    with out, err:
        code = c.exec(["sh", "-c", "echo out; echo err >&2; exit 5"], stdout=out.w, stderr=err.w, timeout=30)
    assert (code, out.text(), err.text()) == (5, "out\n", "err\n")

    cat = Capture()
    with cat:
        r, w = os.pipe()
        os.write(w, b"through stdin")
        os.close(w)
        code = c.exec(["cat"], stdin=r, stdout=cat.w, env=["A=1"], timeout=30)
        os.close(r)
    assert (code, cat.text()) == (0, "through stdin")

    tty = Capture()
    with tty:
        code = c.exec(
            ["sh", "-c", "stty size; echo $TERM"], tty=True, stdout=tty.w, env=["TERM=zz"], size=(21, 42)
        )
    assert (code, tty.text()) == (0, "21 42\r\nzz\r\n")  # the bundle's TERM replaced, not doubled

    with pytest.raises(ShimError):
        c.exec(["/no/such/program"], timeout=30)
    assert c.state()["status"] == "running"
    _until(lambda: sorted(os.listdir(f"/proc/{h.shim_pid}/fd")) == shim_fds, "the shim to close exec fds")
    assert sorted(os.listdir(opts.state_dir)) == ["container.pid", "shim.pid", "shim.sock"]
    c.kill(signal.SIGKILL)
    assert c.wait(30).exit_code == 137


def test_no_start_then_start_and_exit_command(shims: Shims) -> None:
    marker = os.path.join(shims.workdir, "exit-command-ran")
    h, opts = shims.launch(
        ["sh", "-c", "echo started"],
        no_start=True,
        delete_on_exit=True,
        exit_command="/bin/sh",
        exit_command_args=["-c", f"echo $0 > {marker}", "done"],
    )
    c = h.client
    assert c.state()["status"] == "created"
    with open(opts.log_path or "") as f:
        assert f.read() == ""
    c.start()
    assert c.wait(30).exit_code == 0
    _until(lambda: os.path.exists(marker) and os.path.getsize(marker) > 0, "the exit command")
    with open(marker) as f:
        assert f.read() == "done\n"


def test_failed_create_reports_runtime_error_and_leaves_nothing(shims: Shims) -> None:
    opts = shims.options(["/no/such/binary"])
    with pytest.raises(ShimError, match="no/such/binary"):
        launch(opts, timeout=60)
    assert os.listdir(opts.state_dir) == []
    assert shims.runtime_cmd("state", opts.id).returncode != 0


LAUNCHER = """
import sys, time
from ocirt.shim.client import ShimOptions, launch
opts = ShimOptions(**__import__("json").loads(sys.argv[1]))
h = launch(opts)
print(h.shim_pid, h.container_pid, flush=True)
time.sleep(100)
"""


def test_survives_sigkill_of_the_launching_process(shims: Shims) -> None:
    opts = shims.options(["sh", "-c", "i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.05; done"])
    fields = {k: v for k, v in vars(opts).items() if k != "shim_path"}
    manager = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, json.dumps(fields)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "OCIRT_SHIM_ZYGOTE": "none"},  # this one forks its shim directly
    )
    try:
        assert manager.stdout is not None
        shim_pid, ctr_pid = map(int, manager.stdout.readline().split())
    finally:
        manager.kill()
        manager.wait()
        if manager.stdout is not None:
            manager.stdout.close()
    shims.handles.append(ShimHandle(shim_pid, ctr_pid, os.path.abspath(opts.state_dir)))
    size = os.path.getsize(opts.log_path or "")
    _until(lambda: os.path.getsize(opts.log_path or "") > size + 200, "log lines after the manager died")
    c = ShimClient(opts.state_dir)  # a new manager finds the shim from its state directory
    assert c.alive() and c.shim_pid() == shim_pid
    assert c.state()["pid"] == ctr_pid
    c.kill(signal.SIGKILL)
    assert c.wait(30).signal == 9


def test_sigkill_of_the_shim_is_told_honestly(shims: Shims) -> None:
    h, opts = shims.launch(["sleep", "1000"])
    c = h.client
    os.kill(h.shim_pid, signal.SIGKILL)
    _until(lambda: not c.alive(), "the shim to die")
    assert read_exit(opts.state_dir) is None
    with pytest.raises(ShimGone):
        c.state()
    with pytest.raises(ShimGone):
        c.wait(5)
    assert _running(h.container_pid)
    state = json.loads(shims.runtime_cmd("state", opts.id).stdout)
    assert (state["status"], state["pid"]) == ("running", h.container_pid)


def test_bad_arguments_are_one_line_errors(tmp_path: Any) -> None:
    shim = os.path.join(os.path.dirname(sys.executable), "ocirt-shim")
    for args, text in [
        (["--id", "x"], "--bundle is required"),
        (
            ["--id", "x", "--bundle", "b", "--state-dir", str(tmp_path), "--log-driver", "splunk"],
            "--log-driver",
        ),
        (
            ["--id", "x", "--bundle", "b", "--state-dir", str(tmp_path), "--log-max-size", "lots"],
            "--log-max-size",
        ),
        (["--bogus"], "unknown flag --bogus"),
    ]:
        res = subprocess.run([shim, *args], capture_output=True, text=True, timeout=30)
        assert res.returncode == 2
        assert res.stderr.startswith("ocirt-shim: ") and text in res.stderr
        assert res.stderr.count("\n") == 1


def test_zygote_forks_the_shims(shims: Shims, private_shim_zygote: str) -> None:
    zygote = private_shim_zygote
    h1, _ = shims.launch(["sleep", "100"])
    h2, _ = shims.launch(["sleep", "100"])
    with open(zygote + ".pid") as f:
        zpid = int(f.read())
    assert _running(zpid) and zpid not in (h1.shim_pid, h2.shim_pid)
    assert _cmdline(zpid).split(b"\0")[-3:] == [b"--zygote", zygote.encode(), b""]
    for h in (h1, h2):
        assert h.client.alive()
        with open(f"/proc/{h.shim_pid}/status") as f:
            ppid = next(int(line.split()[1]) for line in f if line.startswith("PPid:"))
        assert ppid != os.getpid()
        h.client.kill(signal.SIGKILL)
        assert h.client.wait(30).exit_code == 137


def _no_pid_namespace(config: dict[str, Any]) -> None:
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != "pid"]


def test_orphans_are_reaped(shims: Shims) -> None:
    """Without a pid namespace an exec'd process's orphans come to the shim, a subreaper."""
    h, _ = shims.launch(["sleep", "100"], _no_pid_namespace)
    c = h.client
    assert c.exec(["sh", "-c", "sleep 0.5 & exit 0"], timeout=30) == 0
    shim = h.shim_pid
    _until(lambda: any(_cmdline(p).startswith(b"sleep\x000.5") for p in _children(shim)), "the orphan")
    _until(lambda: _children(shim) == [h.container_pid], "the orphan to be reaped")
    c.kill(signal.SIGKILL)
    assert c.wait(30).exit_code == 137


def _children(pid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    if int(f.read().rpartition(")")[2].split()[1]) == pid:
                        found.append(int(name))
            except FileNotFoundError:
                pass
    return found

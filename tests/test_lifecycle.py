"""The create/start/state/kill/delete cycle and ``run``'s exit codes, with real containers."""

from __future__ import annotations

import os
import time

from conftest import Runtime


def wait_status(rt: Runtime, cid: str, status: str, timeout: float = 10) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        st = rt.state(cid)
        if st["status"] == status or time.monotonic() > deadline:
            return st
        time.sleep(0.02)


def test_run_returns_exit_code(rt: Runtime) -> None:
    bundle = rt.bundle(["sh", "-c", "exit 7"])
    res = rt("run", "--bundle", bundle, rt.new_id())
    assert res.returncode == 7, res.stderr


def test_run_signal_gives_128_plus_n(rt: Runtime) -> None:
    """pid 1 cannot kill itself, so the signal comes from ``ocirt kill``."""
    import subprocess

    from conftest import OCIRT

    bundle = rt.bundle(["sh", "-c", "touch /tmp/up; exec sleep 1000"])
    cid = rt.new_id()
    run = subprocess.Popen([OCIRT, "--root", rt.root, "run", "--bundle", bundle, cid])
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(os.path.join(bundle, "rootfs/tmp/up")):
            assert time.monotonic() < deadline and run.poll() is None
            time.sleep(0.01)
        assert rt("kill", cid, "KILL").returncode == 0
        assert run.wait(timeout=10) == 128 + 9
    finally:
        run.kill()
        run.wait()


def test_run_forwards_signals(rt: Runtime) -> None:
    import signal
    import subprocess

    from conftest import OCIRT

    script = "trap 'exit 42' TERM; touch /tmp/up; while true; do sleep 0.05; done"
    bundle = rt.bundle(["sh", "-c", script])
    run = subprocess.Popen([OCIRT, "--root", rt.root, "run", "--bundle", bundle, rt.new_id()])
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(os.path.join(bundle, "rootfs/tmp/up")):
            assert time.monotonic() < deadline and run.poll() is None
            time.sleep(0.01)
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=10) == 42
    finally:
        run.kill()
        run.wait()


def test_run_passes_stdio_and_removes_container(rt: Runtime) -> None:
    bundle = rt.bundle(["sh", "-c", "read line; echo got:$line; echo err >&2"])
    cid = rt.new_id()
    res = rt("run", "--bundle", bundle, cid, input="hello\n")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "got:hello\n"
    assert res.stderr == "err\n"
    assert rt("state", cid).returncode == 1
    assert not os.path.exists(os.path.join(rt.root, cid))


def test_run_keep_leaves_stopped_container(rt: Runtime) -> None:
    bundle = rt.bundle(["true"])
    cid = rt.new_id()
    assert rt("run", "--keep", "--bundle", bundle, cid).returncode == 0
    assert rt.state(cid)["status"] == "stopped"
    assert rt("delete", cid).returncode == 0


def test_full_cycle(rt: Runtime) -> None:
    bundle = rt.bundle(["sh", "-c", "echo started > /tmp/mark; exec sleep 1000"])
    cid = rt.new_id()
    pidfile = os.path.join(rt.workdir, "pid")
    res = rt("create", "--bundle", bundle, "--pid-file", pidfile, cid)
    assert res.returncode == 0, res.stderr
    st = rt.state(cid)
    assert st["status"] == "created"
    assert st["id"] == cid and st["bundle"] == bundle
    with open(pidfile) as f:
        assert int(f.read()) == st["pid"]
    assert not os.path.exists(os.path.join(bundle, "rootfs/tmp/mark")), "ran before start"

    assert rt("start", cid).returncode == 0
    assert rt.state(cid)["status"] == "running"
    again = rt("start", cid)
    assert again.returncode == 1 and "running" in again.stderr

    deadline = time.monotonic() + 5
    while not os.path.exists(os.path.join(bundle, "rootfs/tmp/mark")):
        assert time.monotonic() < deadline, "program never ran"
        time.sleep(0.01)

    refused = rt("delete", cid)
    assert refused.returncode == 1 and "not stopped" in refused.stderr

    assert rt("kill", cid, "KILL").returncode == 0
    assert wait_status(rt, cid, "stopped")["status"] == "stopped"
    assert rt.state(cid)["pid"] == 0
    assert rt("kill", cid).returncode == 1
    assert rt("delete", cid).returncode == 0
    assert rt("state", cid).returncode == 1


def test_kill_signal_by_number_and_name(rt: Runtime) -> None:
    script = "trap 'echo usr1 > /tmp/got; exit 3' USR1; while true; do sleep 0.05; done"
    bundle = rt.bundle(["sh", "-c", script])
    cid = rt.new_id()
    assert rt("run", "--detach", "--bundle", bundle, cid).returncode == 0
    time.sleep(0.2)
    assert rt("kill", cid, "SIGUSR1").returncode == 0
    assert wait_status(rt, cid, "stopped")["status"] == "stopped"
    with open(os.path.join(bundle, "rootfs/tmp/got")) as f:
        assert f.read() == "usr1\n"
    bad = rt("kill", cid, "NOPE")
    assert bad.returncode == 1


def test_kill_created_container_and_delete(rt: Runtime) -> None:
    bundle = rt.bundle(["true"])
    cid = rt.new_id()
    assert rt("create", "--bundle", bundle, cid).returncode == 0
    assert rt("kill", cid, "15").returncode == 0
    assert wait_status(rt, cid, "stopped")["status"] == "stopped"
    assert rt("delete", cid).returncode == 0


def test_delete_created_container(rt: Runtime) -> None:
    bundle = rt.bundle(["true"])
    cid = rt.new_id()
    assert rt("create", "--bundle", bundle, cid).returncode == 0
    pid = rt.state(cid)["pid"]
    assert rt("delete", cid).returncode == 0
    try:
        with open(f"/proc/{pid}/stat") as f:
            assert f.read().split()[2] == "Z", "the created container's init survived delete"
    except FileNotFoundError:
        pass


def test_delete_force_running(rt: Runtime) -> None:
    bundle = rt.bundle(["sleep", "1000"])
    cid = rt.new_id()
    assert rt("run", "-d", "--bundle", bundle, cid).returncode == 0
    assert rt("delete", "--force", cid).returncode == 0
    assert rt("state", cid).returncode == 1


def test_kill_all(rt: Runtime) -> None:
    bundle = rt.bundle(["sh", "-c", "sleep 1000 & sleep 1000 & wait"])
    cid = rt.new_id()
    assert rt("run", "-d", "--bundle", bundle, cid).returncode == 0
    assert rt("kill", "--all", cid, "KILL").returncode == 0
    assert wait_status(rt, cid, "stopped")["status"] == "stopped"


def test_list_formats(rt: Runtime) -> None:
    import json

    bundle = rt.bundle(["sleep", "1000"])
    cid = rt.new_id()
    assert rt("create", "--bundle", bundle, cid).returncode == 0
    table = rt("list")
    assert table.stdout.splitlines()[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert cid in table.stdout and "created" in table.stdout
    (entry,) = json.loads(rt("list", "--format", "json").stdout)
    assert entry["id"] == cid and entry["status"] == "created" and entry["owner"] == "root"
    assert rt("list", "-q").stdout == f"{cid}\n"


def test_state_document_has_runcs_fields(rt: Runtime) -> None:
    """runc's ``state`` names no owner (``list`` does) and prints ``annotations`` only when the
    config has some; podman, containerd's shim and Docker parse this document."""
    import json

    cid = rt.new_id()
    assert rt("create", "--bundle", rt.bundle(["sleep", "1000"]), cid).returncode == 0
    st = json.loads(rt("state", cid).stdout)
    assert set(st) == {"ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"}
    assert st["owner"] == ""


def test_pid_reuse_is_not_mistaken_for_the_container(rt: Runtime) -> None:
    """A state file whose pid now belongs to another process must read as stopped."""
    import json
    import subprocess

    bundle = rt.bundle(["true"])
    cid = rt.new_id()
    assert rt("run", "--keep", "--bundle", bundle, cid).returncode == 0
    other = subprocess.Popen(["sleep", "30"])
    try:
        path = os.path.join(rt.root, cid, "state.json")
        with open(path) as f:
            saved = json.load(f)
        saved["pid"] = other.pid
        with open(path, "w") as f:
            json.dump(saved, f)
        assert rt.state(cid)["status"] == "stopped"
        assert rt("kill", cid, "KILL").returncode == 1
        assert other.poll() is None, "ocirt signalled a process that is not the container"
    finally:
        other.kill()
        other.wait()

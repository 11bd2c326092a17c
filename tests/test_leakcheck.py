"""The suite's own leak checks (tests/support/leakcheck.py) find what they promise to find."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from support import leakcheck


def _pid(entry: str) -> int:
    return int(entry.split()[1])


def test_processes_of_a_directory_by_cwd_argument_and_environment(tmp_path: Path) -> None:
    where = str(tmp_path / "test")
    os.mkdir(where)
    env = {**os.environ, "SOMEWHERE": f"{where}/data"}
    procs = [
        subprocess.Popen(["sleep", "100"], cwd=where),
        subprocess.Popen(["sh", "-c", f"sleep 100; : {where}/x"]),
        subprocess.Popen(["sleep", "100"], env=env),
    ]
    elsewhere = subprocess.Popen(["sh", "-c", f"sleep 100; : {where}2"], cwd=str(tmp_path))
    try:
        found = leakcheck.processes_of([where])
        assert {_pid(e) for e in found} == {p.pid for p in procs}
        leakcheck.kill(found)
        assert [p.wait(5) for p in procs] == [-9, -9, -9]
        assert elsewhere.poll() is None
    finally:
        for p in [*procs, elsewhere]:
            p.kill()
            p.wait()


def test_session_knows_its_processes_and_new_objects() -> None:
    session = leakcheck.Session()
    env = {**os.environ, leakcheck.MARK: session.mark}
    ours = subprocess.Popen(["sleep", "100"], env=env)
    other = subprocess.Popen(["sleep", "100"], env={**os.environ, leakcheck.MARK: "another run"})
    link = f"ocirt-lk{os.getpid() % 10000}"
    subprocess.run(["ip", "link", "add", link, "type", "veth", "peer", "name", link + "p"], check=True)
    try:
        assert [_pid(e) for e in session.processes() if _pid(e) in (ours.pid, other.pid)] == [ours.pid]
        assert f"link {link}" in session.new_objects()
    finally:
        subprocess.run(["ip", "link", "del", link], check=True)
        for p in (ours, other):
            p.kill()
            p.wait()
    assert f"link {link}" not in session.new_objects()

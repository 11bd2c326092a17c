"""The manager's fault lane: ``ocirtctl run``, ``ocirtctl rm -f``, the shim and the container
killed (SIGKILL, to the PIDs this test started or that ``inspect`` named) at random moments,
over a bounded number of lifecycles; most with ``--network none``, some on a test bridge
network of the test's private root with a published port.

After each fault ``ps -a`` and ``inspect`` must agree and never call a dead container
running; then one ``rm -f`` must succeed and leave nothing: no record, shim directory,
mount, cgroup, netns, veth, DNAT rule or process. Seeded: the seed is printed,
``OCIRT_MGR_FAULT_SEED=N`` replays it and ``OCIRT_MGR_FAULT_CASES`` sizes the run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
from ocirt.foundation import procfs
from ocirt.manager.network import nat
from support.ctl import OCIRTCTL, Manager, manager
from support.nethost import pids_mentioning

FAULTS = ("kill-run", "kill-shim", "kill-shim-and-init", "kill-rm", "kill-init-then-rm")


class Lane:
    def __init__(self, m: Manager, rng: random.Random) -> None:
        self.m, self.rng = m, rng

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [OCIRTCTL, "--root", self.m.root, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def killed_after(self, proc: subprocess.Popen[str], most: float) -> None:
        """SIGKILL ``proc`` (ours) at a random moment within ``most`` seconds, if it still runs."""
        try:
            proc.wait(timeout=self.rng.uniform(0, most))
        except subprocess.TimeoutExpired:
            proc.kill()
        proc.communicate()

    def run_args(self, name: str) -> list[str]:
        if self.rng.random() < 0.7:
            return ["run", "-d", "--name", name, "--network", "none", self.m.httpd, "sleep", "600"]
        return ["run", "-d", "--name", name, "--network", "faultnet", "-p", "127.0.0.1::80", self.m.httpd]

    def lifecycle(self, n: int) -> list[str]:
        name = f"fault{n}"
        fault = self.rng.choice(FAULTS)
        args = self.run_args(name)
        if fault == "kill-run":
            self.killed_after(self.spawn(*args), 1.5)
        else:
            self.m(*args)
            pid = self.m.inspect(name)["State"]["Pid"]
            shim = _parent(pid)
            time.sleep(self.rng.uniform(0, 0.5))
            if fault.startswith("kill-shim") and shim:
                os.kill(shim, signal.SIGKILL)
            if fault in ("kill-shim-and-init", "kill-init-then-rm"):
                os.kill(pid, signal.SIGKILL)
            if fault in ("kill-rm", "kill-init-then-rm"):
                self.killed_after(self.spawn("rm", "-f", name), 1.0)
        return [f"{fault}: {p}" for p in self.truthful() + self.removed(name)]

    def truthful(self) -> list[str]:
        """``ps -a`` and ``inspect`` agree, and a container said running has a live init."""
        rows = json.loads(self.m("ps", "-a", "--format", "json").stdout)
        problems = []
        for row in rows:
            doc = json.loads(self.m("inspect", row["ID"]).stdout)[0]
            state = doc["State"]
            if state["Status"] != row["State"]:
                problems.append(f"{row['Names']}: ps says {row['State']}, inspect {state['Status']}")
            if state["Running"] and procfs.start_ticks(state["Pid"]) is None:
                problems.append(f"{row['Names']}: said running, but its init {state['Pid']} is gone")
            if "Up" in row["Status"] and not state["Running"]:
                problems.append(f"{row['Names']}: ps shows {row['Status']!r} for a stopped container")
        return problems

    def removed(self, name: str) -> list[str]:
        """One ``rm -f`` of whatever the fault left, then nothing of it may remain."""
        ids = self.m.ids()
        if ids:
            done = self.m("rm", "-f", "-v", *ids, check=False)
            if done.returncode != 0:
                return [f"rm -f {name}: {done.returncode}: {done.stderr.strip()}"]
        deadline = time.monotonic() + 10  # a shim's exit command may still be finishing
        while self._processes() and time.monotonic() < deadline:
            time.sleep(0.1)
        left = self.m.leaks() + [_describe(p) for p in self._processes()]
        ports = [r for r in nat.rules(self.m.cfg.nft_table) if r.startswith("port:")]
        left += [f"port rule {r}" for r in ports]
        self.m.seen.clear()
        return left

    def _processes(self) -> list[int]:
        return [p for cid in self.m.seen for p in pids_mentioning(cid)]


def _describe(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().split(b"\0")
    except OSError:
        return f"process {pid} (gone since)"
    return f"process {pid}: {b' '.join(words).decode(errors='replace')[:200]}"


def _parent(pid: int) -> int | None:
    fields = procfs.stat_fields(pid)
    return int(fields[1]) if fields else None


def _each(m: Manager, cases: int, rng: random.Random, report: Callable[[str], None]) -> list[str]:
    lane = Lane(m, rng)
    problems: list[str] = []
    deadline = time.monotonic() + 240
    for n in range(cases):
        if time.monotonic() > deadline:
            problems.append(f"only {n} of {cases} lifecycles within the time bound")
            break
        found = lane.lifecycle(n)
        problems += [f"lifecycle {n}: {p}" for p in found]
        if found:
            report(f"lifecycle {n}: {found}")
    return problems


@pytest.mark.manager_faults
def test_killed_manager_commands_and_shims_leave_nothing(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = int(os.environ.get("OCIRT_MGR_FAULT_SEED") or random.SystemRandom().randrange(2**32))
    cases = int(os.environ.get("OCIRT_MGR_FAULT_CASES") or 30)
    with capsys.disabled():
        print(f"\nmanager fault seed {seed}, {cases} lifecycles: replay with OCIRT_MGR_FAULT_SEED={seed}")
    with manager(str(tmp_path)) as m:
        m("network", "create", "faultnet")
        try:
            started = time.monotonic()
            problems = _each(m, cases, random.Random(seed), lambda line: None)
            with capsys.disabled():
                print(f"manager faults: {cases} lifecycles in {time.monotonic() - started:.1f}s")
        finally:
            m.remove_all()
            m("network", "rm", "faultnet", check=False)
    assert not problems, f"seed {seed}: " + "\n".join(problems[:10])

"""Lifecycles with a fault at a random moment, and the worker that runs them.

Scenarios (picked from a seed): ``create`` SIGKILLed after a random delay; the container's
init SIGKILLed once created, running or paused; ``delete --force`` racing a ``create``;
two ``create`` of one id at once; the init or ``start`` itself killed during ``start``;
``delete --force`` killed and run again. After each: ``state`` and ``list`` must agree and
never call a dead init created, running or paused; one ``delete --force`` must leave no
state directory, cgroup, mount or process (the worker is a child subreaper, so every
process a lifecycle leaves becomes its child).

``python -m support.faults ROOT BUNDLE MARKER SEED FIRST COUNT`` (run in ``tests``) prints
one JSON line per problem and a last line of counts per scenario.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import IO, Any

from support.hostile import cgroups_named, leftover_processes, mounts_under, scrub

OCIRT = os.path.join(os.path.dirname(sys.executable), "ocirt")
TIMEOUT = 30.0


class Call:
    """One ``ocirt`` process, with its output in files (a created container keeps pipes open)."""

    def __init__(self, root: str, *args: str) -> None:
        self.out: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed by wait()
        self.err: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed by wait()
        self.proc = subprocess.Popen(
            [OCIRT, "--root", root, *args], stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.err
        )

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)

    def wait(self) -> tuple[int | None, str]:
        """The exit status (None for a hang) and stderr."""
        return self.wait_both()[::2]

    def wait_both(self) -> tuple[int | None, str, str]:
        try:
            status: int | None = self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            status = None
        texts = []
        for f in (self.out, self.err):
            f.seek(0)
            texts.append(f.read().decode(errors="backslashreplace"))
            f.close()
        return status, texts[0], texts[1]


def run(root: str, *args: str) -> tuple[int | None, str]:
    return Call(root, *args).wait()


def alive(pid: int) -> bool:
    """Running, sleeping or stopped: a zombie has died, whatever its parent does about it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


class Lifecycle:
    def __init__(self, root: str, bundle: str, cid: str, rng: random.Random, span: float) -> None:
        self.root, self.bundle, self.cid, self.rng, self.span = root, bundle, cid, rng, span
        self.problems: list[str] = []

    def ocirt(self, *args: str) -> tuple[int | None, str]:
        return run(self.root, *args)

    def create(self) -> Call:
        return Call(self.root, "create", "--bundle", self.bundle, self.cid)

    def expect_clean_exit(self, what: str, status: int | None, output: str) -> None:
        """Exit 0, or 1 with one ``ocirt:`` line; never a hang or a traceback."""
        if status is None:
            self.problems.append(f"{what}: hung")
        elif "Traceback" in output or "internal error" in output:
            self.problems.append(f"{what}: {output[-500:]}")
        elif status not in (0, 1) or (status == 1 and not _one_line(output)):
            self.problems.append(f"{what}: exit {status}: {output[-500:]}")

    def delay(self, scale: float = 1.0) -> None:
        time.sleep(self.rng.uniform(0, self.span * scale))

    def truthful(self) -> dict[str, Any] | None:
        """``state`` and ``list`` agree, and a live status has a live init behind it.

        A status read while the init was still dying was true when read: a disagreement
        counts only if it persists once the init is certainly dead (a second reading)."""
        for _ in range(2):
            status, output, errors = Call(self.root, "state", self.cid).wait_both()
            if status != 0:
                if "does not exist" not in errors:
                    self.problems.append(f"state: exit {status}: {errors[-300:]}")
                elif os.path.exists(os.path.join(self.root, self.cid)):
                    self.problems.append("state says it does not exist, but its directory does")
                return None
            state: dict[str, Any] = json.loads(output)
            # the other worker's containers come and go in the same root meanwhile
            status, output, errors = Call(self.root, "list", "--format", "json").wait_both()
            if status != 0 or errors:
                self.problems.append(f"list: exit {status}: {errors[-300:]}")
                return state
            listed = [r["status"] for r in json.loads(output) if r["id"] == self.cid]
            lying = state["status"] in ("created", "running", "paused") and not alive(state["pid"])
            if listed == [state["status"]] and not lying:
                return state
        if lying:
            self.problems.append(f"state says {state['status']} but init {state['pid']} is dead")
        if listed != [state["status"]]:
            self.problems.append(f"list says {listed}, state says {state['status']}")
        return state

    def created(self) -> dict[str, Any] | None:
        status, output = self.create().wait()
        self.expect_clean_exit("create", status, output)
        if status != 0:
            self.problems.append(f"create of a good bundle failed: {output[-300:]}")
            return None
        return self.truthful()

    def finish(self) -> None:
        """One ``delete --force`` must remove everything, whatever the fault left."""
        status, output = self.ocirt("delete", "--force", self.cid)
        if status != 0:
            self.problems.append(f"delete --force: exit {status}: {output[-300:]}")
        self.check_nothing_left()

    def check_nothing_left(self) -> None:
        if os.path.exists(os.path.join(self.root, self.cid)):
            self.problems.append("state directory left")
        if left := leftover_processes():
            self.problems.append(f"processes left: {left}")
        if cgroups := cgroups_named(self.cid):
            self.problems.append(f"cgroups left: {cgroups[:3]}")
        if mounts := mounts_under(self.bundle):
            self.problems.append(f"mounts left: {mounts[:3]}")
        scrub(cgroups, mounts)

    # --- the scenarios ---------------------------------------------------------------------

    def kill_create(self) -> None:
        call = self.create()
        self.delay()
        call.kill()
        status, output = call.wait()
        if status != -signal.SIGKILL:
            self.expect_clean_exit("create", status, output)
        self.truthful()
        self.finish()

    def kill_init(self) -> None:
        state = self.created()
        if state is None:
            return self.finish()
        phase = self.rng.choice(["created", "running", "paused"])
        if phase != "created":
            self.expect_clean_exit("start", *self.ocirt("start", self.cid))
        if phase == "paused":
            self.expect_clean_exit("pause", *self.ocirt("pause", self.cid))
        os.kill(state["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 1
        while alive(state["pid"]) and time.monotonic() < deadline:
            time.sleep(0.005)
        after = self.truthful()
        # the v1 freezer holds a killed task until thawed: it is still there, and paused
        expected = "paused" if phase == "paused" and alive(state["pid"]) else "stopped"
        if after is None or after["status"] != expected:
            self.problems.append(f"killed init ({phase}): state says {after and after['status']}")
        began = time.monotonic()
        self.finish()
        if time.monotonic() - began > 2:
            self.problems.append(f"delete --force took {time.monotonic() - began:.1f}s")

    def delete_during_create(self) -> None:
        call = self.create()
        self.delay()
        self.expect_clean_exit("delete --force", *self.ocirt("delete", "--force", self.cid))
        self.expect_clean_exit("create", *call.wait())
        if not os.path.exists(os.path.join(self.root, self.cid)):
            self.check_nothing_left()  # before any cleanup: nothing may outlive its state
        self.truthful()
        self.finish()

    def two_creates(self) -> None:
        calls = [self.create(), self.create()]
        results = [c.wait() for c in calls]
        for result in results:
            self.expect_clean_exit("create", *result)
        statuses = sorted(r[0] or 0 for r in results)
        if statuses != [0, 1] or "already exists" not in "".join(r[1] for r in results):
            self.problems.append(f"two creates of one id: {results}")
        state = self.truthful()
        if state is None or state["status"] != "created":
            self.problems.append(f"after two creates: {state}")
        self.finish()

    def kill_during_start(self) -> None:
        state = self.created()
        if state is None:
            return self.finish()
        call = Call(self.root, "start", self.cid)
        self.delay(0.5)
        victim = self.rng.choice(["init", "start"])
        if victim == "init":
            os.kill(state["pid"], signal.SIGKILL)
        else:
            call.kill()
        status, output = call.wait()
        if status != -signal.SIGKILL:
            self.expect_clean_exit("start", status, output)
        self.truthful()
        self.finish()

    def kill_delete(self) -> None:
        state = self.created()
        if state is not None and self.rng.random() < 0.5:
            self.expect_clean_exit("start", *self.ocirt("start", self.cid))
        call = Call(self.root, "delete", "--force", self.cid)
        self.delay(0.5)
        call.kill()
        call.wait()
        self.truthful()
        self.finish()


SCENARIOS: dict[str, Callable[[Lifecycle], None]] = {
    "kill_create": Lifecycle.kill_create,
    "kill_init": Lifecycle.kill_init,
    "delete_during_create": Lifecycle.delete_during_create,
    "two_creates": Lifecycle.two_creates,
    "kill_during_start": Lifecycle.kill_during_start,
    "kill_delete": Lifecycle.kill_delete,
}


def _one_line(output: str) -> bool:
    lines = [line for line in output.splitlines() if "level=warning" not in line]
    return len(lines) == 1 and lines[0].startswith("ocirt: ")


def _span(root: str, bundle: str, marker: str) -> float:
    """How long a create takes here now: the faults land anywhere within it."""
    began = time.monotonic()
    run(root, "create", "--bundle", bundle, f"{marker}-calibrate")
    span = time.monotonic() - began
    run(root, "delete", "--force", f"{marker}-calibrate")
    return span


def run_worker(root: str, bundle: str, marker: str, seed: int, first: int, count: int) -> None:
    from ocirt.runtime import syscalls

    syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)
    span = _span(root, bundle, marker)
    counts = dict.fromkeys(SCENARIOS, 0)
    for index in range(first, first + count):
        rng = random.Random(f"{seed}-{index}")
        name = rng.choice(list(SCENARIOS))
        life = Lifecycle(root, bundle, f"{marker}-{index}", rng, span)
        SCENARIOS[name](life)
        counts[name] += 1
        if life.problems:
            print(json.dumps({"index": index, "scenario": name, "problems": life.problems}), flush=True)
    print(json.dumps({"counts": counts, "span": span}), flush=True)


if __name__ == "__main__":
    root_arg, bundle_arg, marker_arg = sys.argv[1:4]
    run_worker(root_arg, bundle_arg, marker_arg, *(int(a) for a in sys.argv[4:7]))

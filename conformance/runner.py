"""Runs the registered cases against one runtime binary, each in a context cleaned up after it."""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable

from ocirt.conformance.harness import Harness
from ocirt.conformance.model import FAIL, NA, PASS, REGISTRY, Case, Fail, NotApplicable, Outcome

HUGETLB = "/sys/fs/cgroup/hugetlb"


def load_cases() -> list[Case]:
    """Importing the case modules registers them, in module order."""
    import ocirt.conformance.cases  # noqa: F401

    return list(REGISTRY)


def select(cases: Iterable[Case], patterns: list[str] | None) -> list[Case]:
    """``--only``: shell patterns matched against case ids and spec files."""
    if not patterns:
        return list(cases)
    return [c for c in cases if any(fnmatch.fnmatch(c.id, p) or fnmatch.fnmatch(c.spec, p) for p in patterns)]


def resolve(name: str) -> str:
    """A path, a name on PATH, or ``ocirt`` for the one installed next to this Python."""
    if os.sep in name:
        if not (os.path.isfile(name) and os.access(name, os.X_OK)):
            raise ValueError(f"--runtime: {name} is not an executable file")
        return os.path.abspath(name)
    if name == "ocirt":
        import sys

        beside = os.path.join(os.path.dirname(sys.executable), "ocirt")
        if os.access(beside, os.X_OK):
            return beside
    found = shutil.which(name)
    if found is None:
        raise ValueError(f"--runtime: {name} not found on PATH")
    return found


def prepare_host() -> list[str]:
    """crun 1.8 on a cgroup v1 host wants the hugetlb hierarchy mounted; mount it if missing."""
    if not os.path.ismount("/sys/fs/cgroup/memory") or os.path.ismount(HUGETLB):
        return []
    why = mount_hugetlb()
    if why:
        return [f"could not mount the hugetlb cgroup hierarchy at {HUGETLB}: {why}"]
    return [f"mounted the hugetlb cgroup hierarchy at {HUGETLB} (crun needs it on cgroup v1)"]


def mount_hugetlb(wait: float = 5.0) -> str:
    """Mounts the hugetlb v1 hierarchy; returns why not, or "" once mounted.

    The kernel moves the controller off cgroup2 only while no cgroup there uses it, and a
    cgroup just removed lets go of it a moment later: EBUSY is retried for ``wait`` seconds.
    """
    with open("/proc/filesystems") as f:
        if "cgroup" not in f.read().split():
            return "the kernel has no cgroup v1 filesystem"
    os.makedirs(HUGETLB, exist_ok=True)
    deadline = time.monotonic() + wait
    while True:
        res = subprocess.run(
            ["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", HUGETLB], capture_output=True, text=True
        )
        if res.returncode == 0:
            return ""
        if time.monotonic() > deadline:
            return f"{(res.stderr.strip() or 'mount failed').splitlines()[0]}{_hugetlb_users()}"
        time.sleep(0.1)


def _hugetlb_users() -> str:
    """The cgroup2 cgroups that keep the controller busy, when that is the reason."""
    unified = "/sys/fs/cgroup/unified"
    try:
        with open(os.path.join(unified, "cgroup.subtree_control")) as f:
            if "hugetlb" not in f.read().split():
                return ""
    except OSError:
        return ""
    users = sorted(e.path for e in os.scandir(unified) if e.is_dir(follow_symlinks=False))
    return f" (cgroup2 uses hugetlb in {', '.join(users)})"


def run_case(harness: Harness, case: Case) -> Outcome:
    start = time.monotonic()
    ctx = harness.context(case.id)
    try:
        case.func(ctx)
        status, detail = PASS, ""
    except Fail as err:
        status, detail = FAIL, str(err)
    except NotApplicable as err:
        status, detail = NA, str(err)
    except Exception as err:  # a broken case must not stop the suite; it shows as a failure
        status, detail = FAIL, f"case error: {type(err).__name__}: {err}"
    finally:
        ctx.cleanup()
    return Outcome(case, status, detail, time.monotonic() - start)


def run_suite(
    runtime: str,
    cases: list[Case],
    progress: Callable[[Outcome], None] | None = None,
    harness: Harness | None = None,
) -> list[Outcome]:
    """Every case in order; the harness (made here unless given) is closed at the end."""
    harness = harness or Harness(runtime)
    outcomes = []
    try:
        for case in cases:
            outcome = run_case(harness, case)
            outcomes.append(outcome)
            if progress is not None:
                progress(outcome)
    finally:
        harness.close()
    return outcomes

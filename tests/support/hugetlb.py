"""The hugetlb v1 hierarchy for the length of a test, on a hybrid host where cgroup2 may
hold the controller: the kernel binds it to v1 only while no cgroup2 cgroup uses it, and
ocirt's cgroup2 driver (like runc's) enables every controller it is offered. So the tests of
the v1 driver take it from cgroup2 and give it back afterwards, and the tests of cgroup2
find it there.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ocirt.conformance.runner import HUGETLB, mount_hugetlb

UNIFIED = "/sys/fs/cgroup/unified"


@contextmanager
def v1_hierarchy(may_take: bool) -> Iterator[str]:
    """Yields "" once the hierarchy is mounted at HUGETLB, else why not. Mounted here only if
    missing, taking the controller from cgroup2 if ``may_take`` (no other test run on this
    machine may be using it there); then unmounted and given back at the end, provided no
    cgroup was left in it (else AssertionError)."""
    if not os.path.ismount("/sys/fs/cgroup/memory"):
        yield "this host has no cgroup v1 hierarchies"
        return
    if os.path.ismount(HUGETLB):
        yield ""
        return
    made_dir = not os.path.exists(HUGETLB)
    released: list[str] = []
    why = mount_hugetlb(wait=0)
    if why and may_take:
        released = release()
        why = mount_hugetlb()
    elif why:
        why += "; not taken from cgroup2, where another pytest run on this machine may use it"
    try:
        yield why
    finally:
        left = [] if why else [e.path for e in os.scandir(HUGETLB) if e.is_dir(follow_symlinks=False)]
        if not why and not left:
            subprocess.run(["umount", HUGETLB], check=True)
        if made_dir and not os.path.ismount(HUGETLB):
            _rmdir_if_empty(HUGETLB)
        if not why and not left:
            _finish_unmount()
        refused = restore(released) if not os.path.ismount(HUGETLB) else released
        assert not left, f"cgroups left in the hugetlb hierarchy (kept mounted): {left}"
        if refused and not _offered():
            # the unmounted hierarchy lives on in another mount namespace (a container or a
            # test's private view made while it was mounted); the controller comes back to
            # cgroup2 when that ends, and the runtime enables it again where it needs it
            print(f"hugetlb: not yet back in cgroup2, still held by a v1 hierarchy: {refused}")
            refused = []
        assert not refused, f"hugetlb not given back to these cgroup2 cgroups: {refused}"


def _finish_unmount(tries: int = 20) -> None:
    """An unmounted v1 hierarchy the kernel still held a reference to (a cgroup just removed,
    a process just gone) lives on unseen and keeps the controller from cgroup2; mounting it
    again and unmounting once that reference is gone lets the kernel destroy it."""
    for _ in range(tries):
        time.sleep(0.1)
        if _offered():
            return
        spare = tempfile.mkdtemp(prefix="ocirt-test-hugetlb-")
        try:
            if subprocess.run(["mount", "-t", "cgroup", "-o", "hugetlb", "none", spare]).returncode == 0:
                subprocess.run(["umount", spare], check=True)
        finally:
            os.rmdir(spare)


def _offered() -> bool:
    with open(os.path.join(UNIFIED, "cgroup.controllers")) as f:
        return "hugetlb" in f.read().split()


def _rmdir_if_empty(path: str) -> None:
    """A directory made here, unless someone has put something in it meanwhile."""
    try:
        os.rmdir(path)
    except OSError:
        return


def _control(cgroup: str) -> str:
    return os.path.join(cgroup, "cgroup.subtree_control")


def _enabled(cgroup: str) -> bool:
    try:
        with open(_control(cgroup)) as f:
            return "hugetlb" in f.read().split()
    except OSError:
        return False


def release(root: str = UNIFIED) -> list[str]:
    """Switch hugetlb off in every subtree_control under ``root``, deepest first (a parent
    cannot drop what a child still enables); returns those cgroups, to ``restore`` later."""
    changed = []
    tree = [dirpath for dirpath, _, _ in os.walk(root)]
    for cgroup in sorted(tree, key=lambda p: -p.count("/")):
        if _enabled(cgroup):
            with open(_control(cgroup), "w") as f:
                f.write("-hugetlb")
            changed.append(cgroup)
    return changed


def restore(changed: list[str], wait: float = 5.0) -> list[str]:
    """Switch hugetlb back on where ``release`` switched it off, parents first; returns the
    cgroups (still there) that refused. A v1 hierarchy just unmounted hands the controller
    back to cgroup2 a moment later (until then the kernel answers ENOENT, as for a controller
    it does not have), so a refusal is retried for ``wait`` seconds."""
    deadline = time.monotonic() + wait
    refused = []
    for cgroup in reversed(changed):
        while os.path.isdir(cgroup):
            try:
                with open(_control(cgroup), "w") as f:
                    f.write("+hugetlb")
                break
            except OSError:
                if time.monotonic() > deadline:
                    refused.append(cgroup)
                    break
                time.sleep(0.05)
    return refused

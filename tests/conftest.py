"""Fixtures shared by the runtime tests: the real ``ocirt`` binary, bundles, and leak checks.

Every test gets its own runtime ``--root`` and container ids carrying ``ocirt-test``; the
finalizer force-deletes whatever a test left and then fails the test if a container's
cgroup, mount or process is still on the host. At the end of the run, any process the run
started and any kernel object it added (tests/support/leakcheck.py) fails the run.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from ocirt.conformance.runner import HUGETLB
from ocirt.testing.bundle import base_config, make_bundle, write_config
from support import hugetlb, leakcheck

OCIRT = os.path.join(os.path.dirname(sys.executable), "ocirt")


class Runtime:
    """Runs ``ocirt`` with a private root and remembers the containers it made.

    ``command`` is how ``ocirt`` is started: a test may put a wrapper in front of it.
    """

    def __init__(self, root: str, workdir: str) -> None:
        self.root = root
        self.workdir = workdir
        self.ids: list[str] = []
        self.command = [OCIRT]

    def new_id(self) -> str:
        cid = f"ocirt-test-{uuid.uuid4().hex[:10]}"
        self.ids.append(cid)
        return cid

    def __call__(
        self, *args: str, timeout: float = 60, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Output goes to files, not pipes: a created or detached container keeps the
        caller's stdio open, and waiting for end-of-file on a pipe would wait for it."""
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            res = subprocess.run(
                [*self.command, "--root", self.root, *args],
                stdout=out,
                stderr=err,
                timeout=timeout,
                input=input,
                text=True,
            )
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(res.args, res.returncode, out.read(), err.read())

    def bundle(self, args: list[str], edit: Any = None, name: str | None = None) -> str:
        """A busybox bundle; ``edit(config)`` may change the config in place."""
        path = os.path.join(self.workdir, name or f"bundle-{uuid.uuid4().hex[:8]}")
        config = base_config(args)
        if edit is not None:
            edit(config)
        make_bundle(path, args, config)
        return path

    def rewrite(self, bundle: str, config: dict[str, Any]) -> None:
        write_config(bundle, config)

    def state(self, cid: str) -> dict[str, Any]:
        import json

        res = self("state", cid)
        assert res.returncode == 0, res.stderr
        out: dict[str, Any] = json.loads(res.stdout)
        return out


def cgroup_dirs(name: str) -> list[str]:
    """Every cgroup directory on the host whose path mentions ``name``."""
    found = []
    for top in os.listdir("/sys/fs/cgroup"):
        base = os.path.join("/sys/fs/cgroup", top)
        if not os.path.isdir(base) or os.path.islink(base):
            continue
        for dirpath, dirnames, _ in os.walk(base):
            found += [os.path.join(dirpath, d) for d in dirnames if name in d]
    return found


def leaks(rt: Runtime) -> list[str]:
    """What the test's containers left: cgroups, state, mounts, and processes (found in those
    cgroups, rooted in the test's bundles, or naming its root or directory)."""
    problems = []
    for cid in rt.ids:
        for d in cgroup_dirs(cid):
            problems.append(f"cgroup {d}")
            problems += [f"process {pid} in {d}" for pid in _read_procs(d)]
        if os.path.exists(os.path.join(rt.root, cid)):
            problems.append(f"state dir {rt.root}/{cid}")
    with open("/proc/self/mountinfo") as f:
        problems += [f"mount {line.split()[4]}" for line in f if rt.workdir in line]
    stray = leakcheck.processes_of([rt.root, rt.workdir])
    leakcheck.kill(stray)
    return problems + stray


def _read_procs(cgroup: str) -> list[str]:
    try:
        with open(os.path.join(cgroup, "cgroup.procs")) as f:
            return f.read().split()
    except OSError:
        return []


@pytest.fixture
def rt(tmp_path: Any) -> Iterator[Runtime]:
    root = f"/run/ocirt-test-{uuid.uuid4().hex[:8]}"
    runtime = Runtime(root, str(tmp_path))
    try:
        yield runtime
    finally:
        for cid in runtime.ids:
            runtime("delete", "--force", cid)
        found = leaks(runtime)
        shutil.rmtree(root, ignore_errors=True)
        assert not found, f"left behind: {found}"


@pytest.fixture
def open_dir() -> Iterator[str]:
    """A place for bundles that a container root mapped to an unprivileged host uid can reach
    (pytest's own tmp dirs are private to the host root)."""
    path = tempfile.mkdtemp(prefix="ocirt-test-open-", dir="/tmp")
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def hugetlb_v1(request: pytest.FixtureRequest) -> Iterator[str]:
    """For a test of the v1 driver's hugetlb files: the hierarchy, mounted for the test if
    missing (a fresh boot has it unmounted) and undone after; the test fails, saying why,
    without it."""
    with hugetlb.v1_hierarchy(alone(request.config)) as why:
        if why:
            pytest.fail(f"this test needs the hugetlb cgroup v1 hierarchy at {HUGETLB}: {why}")
        yield HUGETLB


def alone(config: pytest.Config) -> bool:
    """No other pytest run on this machine so far (another may be using host state)."""
    state = config.stash[LEAKS]
    state.watch()
    return not state.others


_HOST_NODES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty")


def _host_nodes() -> dict[str, tuple[int, int, int]]:
    return {p: (st.st_uid, st.st_gid, st.st_mode) for p in _HOST_NODES for st in [os.stat(p)]}


@pytest.fixture(autouse=True, scope="session")
def host_device_nodes_untouched() -> Iterator[None]:
    """Fail the run if any test (or a runtime it drove) changed the host's own device nodes:
    a runtime that chowns its stdio to a container's mapped root can do that to /dev/null."""
    before = _host_nodes()
    yield
    after = _host_nodes()
    changed = {p: (before[p], after[p]) for p in _HOST_NODES if before[p] != after[p]}
    assert not changed, f"host device nodes changed (uid, gid, mode before/after): {changed}"


def _parent_cgroups() -> set[str]:
    """Top-level cgroups named like ours in every hierarchy (``ocirt``, ``ocirt-test``...),
    but not a container's own (``ocirt-test-<hex>``): on a shared machine that may be another
    run's container, just created and still empty."""
    found = set()
    for hierarchy in os.listdir("/sys/fs/cgroup"):
        top = os.path.join("/sys/fs/cgroup", hierarchy)
        if os.path.isdir(top) and not os.path.islink(top):
            found |= {
                os.path.join(top, d)
                for d in os.listdir(top)
                if d.startswith("ocirt") and not re.fullmatch(r"ocirt-test-[0-9a-f]{10}", d)
            }
    return found


@pytest.fixture(autouse=True, scope="session")
def parent_cgroups_removed() -> Iterator[None]:
    """Runtimes create the parent of a container's cgroup path and, like runc, leave it when
    the container goes; the suite removes the parents it brought into being. One that still
    holds a cgroup stays, for the end-of-run check to report (pytest_sessionfinish)."""
    before = _parent_cgroups()
    yield
    for path in sorted(_parent_cgroups() - before):
        try:
            os.rmdir(path)
        except OSError:
            continue


@pytest.fixture(autouse=True, scope="session")
def ip_forward_restored() -> Iterator[None]:
    """ocirtctl's bridge networks switch on net.ipv4.ip_forward, as Docker's do; the run puts
    the host's value back at its end, unless a bridge (another user's) is left to need it."""
    before = leakcheck.ip_forward()
    yield
    if leakcheck.ip_forward() != before and not leakcheck.bridges():
        with open(leakcheck.IP_FORWARD, "w") as f:
            f.write(before)


@pytest.fixture(autouse=True, scope="session")
def private_shim_zygote(tmp_path_factory: Any) -> Iterator[str]:
    """Every shim the suite starts (directly or through ``ocirtctl``) forks from a zygote of
    the suite's own, stopped at the end, instead of the host's long-lived default one."""
    path = str(tmp_path_factory.mktemp("zygote") / "z.sock")
    old = os.environ.get("OCIRT_SHIM_ZYGOTE")
    os.environ["OCIRT_SHIM_ZYGOTE"] = path
    try:
        yield path
    finally:
        if old is None:
            del os.environ["OCIRT_SHIM_ZYGOTE"]
        else:
            os.environ["OCIRT_SHIM_ZYGOTE"] = old
        try:
            with open(path + ".pid") as f:
                pid = int(f.read())
        except FileNotFoundError:
            pid = 0
        if pid:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not os.path.exists(f"/proc/{pid}"), f"the suite's shim zygote {pid} did not exit"


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """``-q`` hides pytest-randomly's header line; the seed that ordered this run must still
    be on screen next to any failure, to replay the same order."""
    for line in config.stash.get(LEFT, []):
        terminalreporter.write_line(line, red=True)
    if not config.pluginmanager.hasplugin("randomly"):
        terminalreporter.write_line("tests ran in file order: pytest-randomly is not loaded")
        return
    seed = config.getoption("randomly_seed")
    terminalreporter.write_line(
        f"random order seed {seed}: replay with pytest -p randomly --randomly-seed={seed}"
    )


LEAKS = pytest.StashKey[leakcheck.Session]()
LEFT = pytest.StashKey[list[str]]()


def pytest_sessionstart(session: pytest.Session) -> None:
    state = leakcheck.Session()
    os.environ[leakcheck.MARK] = state.mark
    state.watch()
    session.config.stash[LEAKS] = state


def pytest_runtest_teardown(item: pytest.Item) -> None:
    item.config.stash[LEAKS].watch()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """After every fixture's teardown: this run's processes still alive are killed and fail
    the run, and so do new kernel objects unless another pytest run shared the machine."""
    state = session.config.stash[LEAKS]
    state.watch()
    processes = state.processes()
    leakcheck.kill(processes)
    objects = state.new_objects()
    failing = processes + ([] if state.others else objects)
    lines = [f"left by this run: {what}" for what in failing]
    if state.others and objects:
        lines.append(
            f"{len(state.others)} other pytest run(s) shared this machine, so these new objects "
            f"are not counted as this run's: {objects}"
        )
    session.config.stash[LEFT] = lines
    if failing and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

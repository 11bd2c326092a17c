"""pause/resume, ps, update, events and features against real containers and cgroups."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import OCIRT, Runtime
from ocirt.runtime.errors import OcirtError
from support import hostfacts

MiB = 1 << 20
UNIFIED = "/sys/fs/cgroup/unified"


def wait_for(check: Callable[[], Any], timeout: float = 10, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def cgroup_paths(rt: Runtime, cid: str) -> dict[str, str]:
    """The container's v1 cgroup directories, by controller (a hybrid host's layout)."""
    hostfacts.require(hostfacts.cgroup_v1_hybrid(), "no cgroup v1 hybrid layout to read v1 files from")
    with open(os.path.join(rt.root, cid, "state.json")) as f:
        paths: dict[str, str] = json.load(f)["cgroup"]["paths"]
    return paths


def detached(rt: Runtime, script: str, edit: Any = None) -> tuple[str, str]:
    """A running container (``run -d``); returns (id, bundle)."""
    bundle = rt.bundle(["sh", "-c", script], edit)
    cid = rt.new_id()
    res = rt("run", "-d", "--bundle", bundle, cid)
    assert res.returncode == 0, res.stderr
    return cid, bundle


def failure(res: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit status 1 and one line on stderr that mentions every word."""
    assert res.returncode == 1, res
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    for word in words:
        assert word in lines[0], lines[0]


COUNTER = "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.02; done"


def test_pause_freezes_and_resume_thaws(rt: Runtime) -> None:
    cid, bundle = detached(rt, COUNTER)
    count_file = os.path.join(bundle, "rootfs/tmp/count")

    def count() -> int:
        text = read(count_file) if os.path.exists(count_file) else ""
        return int(text) if text else 0

    wait_for(lambda: count() > 2, what="the counter")
    assert rt("pause", cid).returncode == 0
    assert rt.state(cid)["status"] == "paused"
    assert read(os.path.join(cgroup_paths(rt, cid)["freezer"], "freezer.state")) == "FROZEN"
    frozen_at = count()
    time.sleep(0.3)
    assert count() == frozen_at
    assert rt("resume", cid).returncode == 0
    assert rt.state(cid)["status"] == "running"
    assert read(os.path.join(cgroup_paths(rt, cid)["freezer"], "freezer.state")) == "THAWED"
    wait_for(lambda: count() > frozen_at + 2, what="the counter to move again")


def test_pause_and_resume_refuse_other_states(rt: Runtime) -> None:
    bundle = rt.bundle(["sleep", "1000"])
    cid = rt.new_id()
    assert rt("create", "--bundle", bundle, cid).returncode == 0
    failure(rt("pause", cid), cid, "is not running", "created")
    failure(rt("resume", cid), cid, "is not paused")
    assert rt("start", cid).returncode == 0
    failure(rt("resume", cid), "is not paused", "running")
    assert rt("pause", cid).returncode == 0
    failure(rt("pause", cid), "is not running", "paused")
    assert rt("resume", cid).returncode == 0
    assert rt("kill", cid, "KILL").returncode == 0
    wait_for(lambda: rt.state(cid)["status"] == "stopped", what="the container to stop")
    failure(rt("pause", cid), "is not running")
    failure(rt("resume", cid), "is not paused")
    failure(rt("pause", "ocirt-test-no-such-container"), "does not exist")


def test_ps_lists_init_and_child(rt: Runtime) -> None:
    cid, _ = detached(rt, "sleep 1000 & wait")
    pid = rt.state(cid)["pid"]

    def two_pids() -> list[int]:
        res = rt("ps", "--format", "json", cid)
        assert res.returncode == 0, res.stderr
        pids: list[int] = json.loads(res.stdout)
        return pids if len(pids) == 2 else []

    pids = wait_for(two_pids, what="the init and its child")
    assert pid in pids
    child = next(p for p in pids if p != pid)
    assert read(f"/proc/{child}/cmdline").split("\0")[0] == "sleep"

    table = rt("ps", cid)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["UID", "PID", "PPID"]
    assert sorted(int(line.split()[1]) for line in lines[1:]) == sorted(pids)

    custom = rt("ps", cid, "-o", "pid,comm")
    assert custom.returncode == 0, custom.stderr
    rows = [line.split() for line in custom.stdout.splitlines()]
    assert rows[0] == ["PID", "COMMAND"]
    assert sorted(rows[1:]) == sorted([[str(pid), "sh"], [str(child), "sleep"]])

    failure(rt("ps", "--format", "yaml", cid), "--format", "yaml")
    failure(rt("ps", cid, "-o", "comm"), "PID")


def test_update_flags_reach_the_cgroup_files(rt: Runtime) -> None:
    cid, _ = detached(rt, "exec sleep 1000")
    paths = cgroup_paths(rt, cid)
    res = rt("update", "--memory", "64m", "--pids-limit", "10", "--cpu-share", "512", cid)
    assert res.returncode == 0, res.stderr
    assert read(os.path.join(paths["memory"], "memory.limit_in_bytes")) == str(64 * MiB)
    assert read(os.path.join(paths["pids"], "pids.max")) == "10"
    assert read(os.path.join(paths["cpu"], "cpu.shares")) == "512"
    with open(os.path.join(rt.root, cid, "state.json")) as f:
        recorded = json.load(f)["config"]["resources"]
    assert recorded == {"memory": {"limit": 64 * MiB}, "pids": {"limit": 10}, "cpu": {"shares": 512}}


def test_update_resources_from_stdin_merges_with_earlier_updates(rt: Runtime) -> None:
    cid, _ = detached(rt, "exec sleep 1000")
    paths = cgroup_paths(rt, cid)
    assert rt("update", "--pids-limit", "20", cid).returncode == 0
    request = {"memory": {"limit": 48 * MiB, "swap": 96 * MiB}, "cpu": {"quota": 50000, "period": 100000}}
    res = rt("update", "--resources", "-", "--pids-limit", "5", cid, input=json.dumps(request))
    assert res.returncode == 0, res.stderr
    assert read(os.path.join(paths["memory"], "memory.limit_in_bytes")) == str(48 * MiB)
    assert read(os.path.join(paths["memory"], "memory.memsw.limit_in_bytes")) == str(96 * MiB)
    assert read(os.path.join(paths["cpu"], "cpu.cfs_quota_us")) == "50000"
    assert read(os.path.join(paths["pids"], "pids.max")) == "20"  # other flags are ignored with -r
    assert rt("update", "--memory", "-1", cid).returncode == 0
    assert int(read(os.path.join(paths["memory"], "memory.limit_in_bytes"))) > 1 << 40
    assert int(read(os.path.join(paths["memory"], "memory.memsw.limit_in_bytes"))) > 1 << 40


def test_update_rejects_bad_values_in_one_line(rt: Runtime, tmp_path: Any) -> None:
    cid, _ = detached(rt, "exec sleep 1000")
    failure(rt("update", "--memory", "lots", cid), "--memory", "lots")
    failure(rt("update", "--cpu-quota", "1.5", cid), "--cpu-quota")
    failure(rt("update", "--cpu-period", "-5", cid), "--cpu-period")
    failure(rt("update", "--l3-cache-schema", "L3:0=f", cid), "--l3-cache-schema", "not supported")
    failure(rt("update", "--no-such-flag", "1", cid), "no-such-flag")
    failure(rt("update", "-r", "-", cid, input="{nope"), "--resources", "JSON")
    failure(rt("update", "-r", "-", cid, input="[1]"), "--resources", "object")
    failure(rt("update", "-r", str(tmp_path / "missing.json"), cid), "missing.json")
    bad = json.dumps({"memory": {"limit": "1g"}})
    failure(rt("update", "-r", "-", cid, input=bad), "linux.resources.memory.limit", "integer")
    failure(rt("update", "--memory", "1", cid), "memory.limit_in_bytes")
    assert rt("kill", cid, "KILL").returncode == 0
    wait_for(lambda: rt.state(cid)["status"] == "stopped", what="the container to stop")
    failure(rt("update", "--memory", "64m", cid), "is not running")


@pytest.mark.parametrize(
    ("text", "size"),
    [("100", 100), ("64m", 64 * MiB), ("64MB", 64 * MiB), ("64 MiB", 64 * MiB), ("1g", 1 << 30),
     ("1.5k", 1536), ("2KiB", 2048), ("7b", 7), ("-1", -1)],
)  # fmt: skip
def test_memory_sizes_take_runc_units(text: str, size: int) -> None:
    from ocirt.runtime.operations.update import parse_size

    assert parse_size("memory", text) == size


@pytest.mark.parametrize("text", ["", "m", "1.m", "1.2.3g", "-2", "64x", "64mbb", "1e3"])
def test_bad_memory_sizes(text: str) -> None:
    from ocirt.runtime.operations.update import parse_size

    with pytest.raises(OcirtError, match="--memory: invalid size"):
        parse_size("memory", text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5s", 5.0), ("250ms", 0.25), ("1m30s", 90.0), ("1.5h", 5400.0), ("300us", 3e-4), ("0", 0.0)],
)
def test_intervals_take_go_durations(text: str, seconds: float) -> None:
    from ocirt.runtime.operations.events import parse_duration

    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "s", "abc", "5x", "1..2s"])
def test_bad_intervals(text: str) -> None:
    from ocirt.runtime.operations.events import parse_duration

    with pytest.raises(OcirtError, match="--interval"):
        parse_duration(text)


def test_events_stats_match_the_cgroup_files(rt: Runtime) -> None:
    cid, _ = detached(rt, "sleep 1000 & sleep 1000 & wait")
    paths = cgroup_paths(rt, cid)
    wait_for(lambda: read(os.path.join(paths["pids"], "pids.current")) == "3", what="three processes")
    res = rt("events", "--stats", cid)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("\n") == 1
    event = json.loads(res.stdout)
    assert (event["type"], event["id"]) == ("stats", cid)
    data = event["data"]
    assert list(data) == [
        "cpu",
        "cpuset",
        "memory",
        "pids",
        "blkio",
        "hugetlb",
        "intel_rdt",
        "network_interfaces",
    ]
    assert data["pids"] == {"current": 3}
    mem = paths["memory"]
    usage = int(read(os.path.join(mem, "memory.usage_in_bytes")))
    assert abs(data["memory"]["usage"]["usage"] - usage) <= MiB
    assert data["memory"]["usage"]["limit"] == int(read(os.path.join(mem, "memory.limit_in_bytes")))
    assert data["memory"]["raw"]["cache"] == data["memory"].get("cache", 0)
    assert list(data["memory"]["raw"]) == sorted(data["memory"]["raw"])
    total = int(read(os.path.join(paths["cpuacct"], "cpuacct.usage")))
    assert 0 < data["cpu"]["usage"]["total"] <= total
    assert len(data["cpu"]["usage"]["percpu"]) == os.cpu_count()
    assert data["cpuset"]["cpus"] == list(range(os.cpu_count() or 1))
    assert "kernel" in data["cpu"]["usage"] and "user" in data["cpu"]["usage"]


def test_events_refuses_stopped_container_and_bad_interval(rt: Runtime) -> None:
    bundle = rt.bundle(["true"])
    cid = rt.new_id()
    assert rt("run", "--keep", "--bundle", bundle, cid).returncode == 0
    failure(rt("events", "--stats", cid), "is not running")
    failure(rt("events", "--interval", "0s", cid), "--interval", "greater than 0")
    failure(rt("events", "--interval", "fast", cid), "--interval", "fast")


@pytest.fixture
def events_proc() -> Iterator[Callable[..., tuple[subprocess.Popen[bytes], str]]]:
    """Starts ``ocirt events``; its output goes to a file the test polls."""
    started: list[subprocess.Popen[bytes]] = []
    workdir = tempfile.mkdtemp(prefix="ocirt-events-")

    def start(*argv: str) -> tuple[subprocess.Popen[bytes], str]:
        out = os.path.join(workdir, f"{len(started)}.out")
        with open(out, "wb") as f:
            proc = subprocess.Popen([OCIRT, *argv], stdout=f, stderr=subprocess.STDOUT)
        started.append(proc)
        return proc, out

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    for name in os.listdir(workdir):
        os.unlink(os.path.join(workdir, name))
    os.rmdir(workdir)


def lines_of(path: str) -> list[dict[str, Any]]:
    with open(path) as f:
        return [json.loads(line) for line in f.read().splitlines()]


def test_events_stream_reports_oom_and_ends_with_the_container(
    rt: Runtime, events_proc: Callable[..., tuple[subprocess.Popen[bytes], str]]
) -> None:
    """busybox dd allocates its whole block (32 MiB) and fills it from /dev/zero: under a
    limit of 8 MiB (memory+swap as well) the OOM killer takes dd, and the shell goes on."""
    script = (
        "while [ ! -e /tmp/go ]; do sleep 0.02; done; "
        "dd if=/dev/zero of=/dev/null bs=32M count=1; echo $? > /tmp/dd; exec sleep 1000"
    )

    def limit(c: dict[str, Any]) -> None:
        c["linux"]["resources"] = {"memory": {"limit": 8 * MiB, "swap": 8 * MiB}}

    cid, bundle = detached(rt, script, limit)
    proc, out = events_proc("--root", rt.root, "events", "--interval", "200ms", cid)
    wait_for(lambda: lines_of(out), what="the first stats event")
    with open(os.path.join(bundle, "rootfs/tmp/go"), "w"):
        pass
    wait_for(lambda: any(e["type"] == "oom" for e in lines_of(out)), what="the oom event")
    dd_status = os.path.join(bundle, "rootfs/tmp/dd")
    assert wait_for(lambda: os.path.exists(dd_status) and read(dd_status), what="dd's status") == "137"
    assert {"type": "oom", "id": cid} in lines_of(out)
    stats = [e for e in lines_of(out) if e["type"] == "stats"]
    assert all(e["id"] == cid and e["data"]["memory"]["usage"]["limit"] == 8 * MiB for e in stats)
    assert proc.poll() is None
    assert rt("kill", cid, "KILL").returncode == 0
    assert proc.wait(timeout=10) == 0


class UnifiedCgroup:
    """A directory of its own in the cgroup2 hierarchy, and the processes started into it."""

    def __init__(self) -> None:
        self.path = os.path.join(UNIFIED, f"ocirt-test-{uuid.uuid4().hex[:10]}")
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, script: str) -> None:
        """``script`` runs in a shell that first moves itself into the cgroup."""
        self.procs.append(subprocess.Popen(["sh", "-c", f"echo $$ > {self.path}/cgroup.procs; {script}"]))


@pytest.fixture
def unified_cgroup() -> Iterator[UnifiedCgroup]:
    made = UnifiedCgroup()
    os.mkdir(made.path)
    try:
        yield made
    finally:
        with open(os.path.join(made.path, "cgroup.kill"), "w") as f:
            f.write("1")
        for proc in made.procs:
            proc.kill()
            proc.wait()
        wait_for(lambda: not read(os.path.join(made.path, "cgroup.procs")), what="the cgroup to empty")
        os.rmdir(made.path)


def test_v2_stats_from_the_unified_hierarchy(unified_cgroup: UnifiedCgroup) -> None:
    """This host's cgroup2 hierarchy has no controllers (they are bound to v1): cpu.stat,
    the PSI files and cgroup.procs are what v2 offers everywhere, so those are checked."""
    from ocirt.runtime.cgroups.v2 import V2Cgroup
    from ocirt.runtime.operations.events import OomWatch
    from ocirt.runtime.stats import read_stats

    path = unified_cgroup.path
    unified_cgroup.spawn("i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 1000")
    wait_for(lambda: read(os.path.join(path, "cgroup.procs")).count("\n") == 1, what="two members")
    cg = V2Cgroup(path, UNIFIED)
    data = read_stats(cg)
    assert data["pids"] == {"current": 2}
    usage_usec = dict(line.split() for line in read(os.path.join(path, "cpu.stat")).splitlines())
    assert 0 < data["cpu"]["usage"]["total"] <= int(usage_usec["usage_usec"]) * 1000
    assert set(data["cpu"]["psi"]) == {"some", "full"}
    assert set(data["cpu"]["psi"]["some"]) == {"avg10", "avg60", "avg300", "total"}
    assert data["memory"]["usage"] == {"limit": 0, "failcnt": 0}
    assert OomWatch.open(cg) is None  # no memory controller, no memory.events


# The lists runtime-spec 1.3 gives (config.md Hooks, config-linux.md Seccomp).
SPEC_HOOKS = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]
SPEC_SECCOMP_ACTIONS = [
    "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP",
]  # fmt: skip
SPEC_SECCOMP_OPERATORS = [
    "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
]  # fmt: skip
SPEC_SECCOMP_FLAGS = [
    "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
]  # fmt: skip
# runc turns these into MS_POSIXACL and MS_I_VERSION; ocirt hands them to the filesystem as
# data (as it does any option it has no flag for), so its features document leaves them out.
RUNC_ONLY_MOUNT_OPTIONS = {"acl", "noacl", "iversion", "noiversion"}
# runtime-spec 1.2's idmapped mounts, which runc 1.1.5 predates
AFTER_RUNC_MOUNT_OPTIONS = {"idmap", "ridmap"}


def kernel_capabilities() -> list[str]:
    """Every capability this kernel has (0..cap_last_cap), named by libcap's capsh."""
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    res = subprocess.run(
        ["capsh", f"--decode={(1 << (last + 1)) - 1:#x}"], capture_output=True, text=True, check=True
    )
    return [name.upper() for name in res.stdout.strip().split("=", 1)[1].split(",")]


def kernel_namespaces() -> list[str]:
    """The namespace types of /proc/self/ns, by their runtime-spec names."""
    spec_name = {"mnt": "mount", "net": "network"}
    kinds = [n for n in os.listdir("/proc/self/ns") if not n.endswith("_for_children")]
    return sorted(spec_name.get(n, n) for n in kinds)


def runc_features() -> dict[str, Any]:
    res = subprocess.run(["runc", "features"], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"not on this host: runc features failed: {res.stderr.strip()}")
    doc: dict[str, Any] = json.loads(res.stdout)
    return doc


def features(rt: Runtime) -> dict[str, Any]:
    res = rt("features")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith('{\n    "ociVersionMin": "1.0.0",\n')
    doc: dict[str, Any] = json.loads(res.stdout)
    return doc


def test_features_document(rt: Runtime) -> None:
    """Each list against a source outside ocirt: the kernel, libcap, the spec, the host."""
    from ocirt.specs.schema import validate_features

    doc = features(rt)
    assert validate_features(doc) == []
    assert doc["ociVersionMax"] == "1.3.0"
    assert doc["hooks"] == SPEC_HOOKS
    linux = doc["linux"]
    assert linux["namespaces"] == kernel_namespaces()
    assert linux["capabilities"] == kernel_capabilities()
    assert linux["cgroup"] == {"v1": True, "v2": True, "systemd": True, "systemdUser": False, "rdma": True}
    seccomp = linux["seccomp"]
    assert seccomp["enabled"] is True
    assert (seccomp["actions"], seccomp["operators"]) == (SPEC_SECCOMP_ACTIONS, SPEC_SECCOMP_OPERATORS)
    assert seccomp["knownFlags"] == SPEC_SECCOMP_FLAGS
    assert set(seccomp["supportedFlags"]) <= set(SPEC_SECCOMP_FLAGS)
    assert linux["apparmor"] == {"enabled": hostfacts.apparmor_enabled()}
    assert linux["selinux"] == {"enabled": hostfacts.selinux_enabled()}
    assert linux["mountExtensions"] == {"idmap": {"enabled": True}}
    options = doc["mountOptions"]
    assert options == sorted(options)
    assert {"rbind", "rprivate", "rro", "nosymfollow", "tmpcopyup", "defaults"} <= set(options)
    assert "idmap" in options and "ridmap" in options
    assert "org.opencontainers.runc.checkpoint.enabled" not in doc["annotations"]


def test_features_disabled_means_refused(rt: Runtime) -> None:
    """A section the document reports disabled is one ``create`` refuses, naming it."""
    linux = features(rt)["linux"]
    # what the document says, a config using it, and the field create's refusal must name
    refusals: dict[str, tuple[bool, Callable[[dict[str, Any]], None], str]] = {
        "linux.netDevices": (
            linux["netDevices"]["enabled"],
            lambda c: c["linux"].update(netDevices={"ocirt-nd0": {}}),
            "linux.netDevices",
        ),
        "mounts[].options idmap": (
            linux["mountExtensions"]["idmap"]["enabled"],
            lambda c: c["mounts"].append(
                {
                    "destination": "/mnt",
                    "type": "bind",
                    "source": "/tmp",
                    "options": ["bind", "idmap"],
                    "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
                    "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
                }
            ),
            "idmap",
        ),
    }
    disabled = [name for name, (enabled, _, _) in refusals.items() if not enabled]
    if not disabled:
        pytest.skip(f"the document reports every one of {list(refusals)} enabled")
    for name in disabled:
        _, edit, field = refusals[name]
        cid = rt.new_id()
        res = rt("create", "--bundle", rt.bundle(["true"], edit), cid)
        assert res.returncode == 1, f"{name} is reported disabled, yet create accepted it"
        assert field in res.stderr, res.stderr
        assert rt("state", cid).returncode == 1


def test_features_match_runc(rt: Runtime) -> None:
    """Where runc's own ``runc features`` covers the same ground, the lists agree."""
    ours, runc = features(rt), runc_features()
    assert ours["hooks"] == runc["hooks"]
    expected = (set(runc["mountOptions"]) - RUNC_ONLY_MOUNT_OPTIONS) | AFTER_RUNC_MOUNT_OPTIONS
    assert ours["mountOptions"] == sorted(expected)
    seccomp, runc_seccomp = ours["linux"]["seccomp"], runc["linux"]["seccomp"]
    assert (seccomp["actions"], seccomp["operators"]) == (runc_seccomp["actions"], runc_seccomp["operators"])
    if len(runc["linux"]["capabilities"]) == len(kernel_capabilities()):
        assert ours["linux"]["capabilities"] == runc["linux"]["capabilities"]

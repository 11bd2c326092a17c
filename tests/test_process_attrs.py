"""``process.scheduler``, ``process.ioPriority``, ``process.execCPUAffinity``,
``linux.personality``, the LSM labels and ``linux.intelRdt``: each read back from inside a real
container, and each bad value refused in one line naming its field, with nothing left behind."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from conftest import Runtime, cgroup_dirs
from support import hostfacts


def run_out(rt: Runtime, args: list[str], edit: Any) -> str:
    res = rt("run", "--bundle", rt.bundle(args, edit), rt.new_id())
    assert res.returncode == 0, res.stderr
    return res.stdout


def sched_fields(text: str) -> dict[str, str]:
    """``policy`` and ``prio`` (and the ``dl.*`` lines) of /proc/<pid>/sched."""
    fields = {}
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        if colon and key.strip() in ("policy", "prio", "dl.runtime", "dl.deadline"):
            fields[key.strip()] = value.strip()
    return fields


@pytest.mark.parametrize(
    ("scheduler", "resources", "policy", "prio"),
    [
        ({"policy": "SCHED_BATCH", "nice": 7}, None, "3", "127"),
        ({"policy": "SCHED_IDLE", "flags": ["SCHED_FLAG_RESET_ON_FORK"]}, None, "5", "120"),
        (
            {"policy": "SCHED_RR", "priority": 10},
            {"cpu": {"realtimeRuntime": 10000, "realtimePeriod": 1000000}},
            "2",
            "89",
        ),
        (
            {"policy": "SCHED_DEADLINE", "runtime": 1000000, "deadline": 10000000, "period": 10000000},
            None,
            "6",
            "-1",
        ),
    ],
)
def test_scheduler_is_seen_inside(
    rt: Runtime, scheduler: dict[str, Any], resources: dict[str, Any] | None, policy: str, prio: str
) -> None:
    def edit(c: dict[str, Any]) -> None:
        c["process"]["scheduler"] = scheduler
        if resources is not None:
            c["linux"]["resources"] = resources

    fields = sched_fields(run_out(rt, ["cat", "/proc/self/sched"], edit))
    assert (fields["policy"], fields["prio"]) == (policy, prio), fields
    if policy == "6":
        assert "dl.runtime" in fields, "a deadline task shows its runtime"


def test_ionice_and_personality_inside_init_and_exec(rt: Runtime) -> None:
    def edit(c: dict[str, Any]) -> None:
        c["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_IDLE", "priority": 0}
        c["linux"]["personality"] = {"domain": "LINUX32", "flags": ["ADDR_NO_RANDOMIZE"]}

    script = "uname -m; cat /proc/self/personality; ionice -p $$"
    assert run_out(rt, ["sh", "-c", script], edit).splitlines() == ["i686", "00040008", "idle"]
    assert os.uname().machine == "x86_64", "LINUX32 is only visible against a 64-bit host"

    cid = rt.new_id()
    assert rt("run", "-d", "--bundle", rt.bundle(["sleep", "1000"], edit), cid).returncode == 0
    res = rt("exec", cid, "sh", "-c", script)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["i686", "00040008", "idle"], "exec gets the container's personality"


@pytest.mark.parametrize(
    ("io", "seen"),
    [
        ({"class": "IOPRIO_CLASS_BE", "priority": 3}, "best-effort: prio 3"),
        ({"class": "IOPRIO_CLASS_RT", "priority": 1}, "realtime: prio 1"),
    ],
)
def test_io_priority_classes(rt: Runtime, io: dict[str, Any], seen: str) -> None:
    def edit(c: dict[str, Any]) -> None:
        c["process"]["ioPriority"] = io

    assert run_out(rt, ["sh", "-c", "ionice -p $$"], edit).strip() == seen


def cpus_allowed(text: str) -> str:
    return next(line.split()[1] for line in text.splitlines() if line.startswith("Cpus_allowed_list:"))


def test_exec_cpu_affinity_final_and_initial(rt: Runtime) -> None:
    """The spec keeps execCPUAffinity for exec: init keeps the cgroup's CPUs; an exec'd
    process ends on ``final``; with ``initial`` alone the move into the v1 cpuset resets it."""
    hostfacts.require(len(os.sched_getaffinity(0)) >= 2, "one CPU: no affinity differs from the default")
    everything = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))

    def edit(c: dict[str, Any]) -> None:
        c["process"]["execCPUAffinity"] = {"initial": "0", "final": "1"}

    cid = rt.new_id()
    bundle = rt.bundle(["sleep", "1000"], edit)
    assert rt("run", "-d", "--bundle", bundle, cid).returncode == 0
    init = rt.state(cid)["pid"]
    assert sorted(os.sched_getaffinity(init)) == sorted(os.sched_getaffinity(0)), "not for init"

    res = rt("exec", cid, "cat", "/proc/self/status")
    assert res.returncode == 0, res.stderr
    assert cpus_allowed(res.stdout) == "1"

    process = os.path.join(rt.workdir, "process.json")
    for affinity, expected in (({"initial": "0"}, everything), ({"final": "0"}, "0")):
        with open(bundle + "/config.json") as f:
            proc = json.load(f)["process"]
        proc["args"] = ["cat", "/proc/self/status"]
        proc["execCPUAffinity"] = affinity
        with open(process, "w") as f:
            json.dump(proc, f)
        res = rt("exec", "--process", process, cid)
        assert res.returncode == 0, res.stderr
        seen = cpus_allowed(res.stdout)
        assert seen.replace("-", ",") == expected or seen == _as_range(expected), (affinity, seen)


def _as_range(cpus: str) -> str:
    parts = [int(c) for c in cpus.split(",")]
    return f"{parts[0]}-{parts[-1]}" if len(parts) > 1 else cpus


def test_features_reports_what_the_host_lacks(rt: Runtime) -> None:
    res = rt("features")
    assert res.returncode == 0, res.stderr
    linux = json.loads(res.stdout)["linux"]
    assert linux["apparmor"]["enabled"] is os.path.isdir("/sys/kernel/security/apparmor")
    assert linux["selinux"]["enabled"] is os.path.exists("/sys/fs/selinux/enforce")
    assert linux["intelRdt"]["enabled"] is False


def _set(path: str, value: Any) -> Any:
    section, key = path.split(".", 1)

    def edit(c: dict[str, Any]) -> None:
        c.setdefault(section, {})[key] = value

    return edit


BAD = [
    (
        _set("process.scheduler", {"policy": "SCHED_NOPE"}),
        "process.scheduler.policy: unknown value 'SCHED_NOPE'",
    ),
    (_set("process.scheduler", {"nice": 3}), "process.scheduler.policy: is required"),
    (
        _set("process.scheduler", {"policy": "SCHED_OTHER", "nice": 40}),
        "process.scheduler.nice: 40 is out of range",
    ),
    (
        _set("process.scheduler", {"policy": "SCHED_FIFO"}),
        "process.scheduler.priority: SCHED_FIFO needs a priority",
    ),
    (
        _set("process.scheduler", {"policy": "SCHED_BATCH", "priority": 5}),
        "process.scheduler.priority: SCHED_BATCH takes none",
    ),
    (
        _set("process.scheduler", {"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_X"]}),
        "process.scheduler.flags[0]: unknown flag",
    ),
    (_set("process.scheduler", {"policy": "SCHED_ISO"}), "process.scheduler: SCHED_ISO: Invalid argument"),
    (
        _set("process.scheduler", {"policy": "SCHED_FIFO", "priority": 5}),
        "process.scheduler: SCHED_FIFO: Operation not permitted",
    ),
    (_set("process.scheduler", "fast"), "process.scheduler: must be an object"),
    (_set("process.ioPriority", {"class": "IOPRIO_CLASS_NONE"}), "process.ioPriority.class: unknown value"),
    (
        _set("process.ioPriority", {"class": "IOPRIO_CLASS_BE", "priority": 8}),
        "process.ioPriority.priority: 8 is out of range",
    ),
    (
        _set("process.execCPUAffinity", {"initial": "0-x"}),
        "process.execCPUAffinity.initial: '0-x' is not a CPU list",
    ),
    (
        _set("process.execCPUAffinity", {"final": "3-1"}),
        "process.execCPUAffinity.final: '3-1': bad CPU range",
    ),
    (_set("linux.personality", {"domain": "LINUX64"}), "linux.personality.domain: unknown value 'LINUX64'"),
    (_set("linux.personality", {"flags": []}), "linux.personality.domain: is required"),
    (
        _set("linux.personality", {"domain": "LINUX", "flags": ["FAST"]}),
        "linux.personality.flags[0]: unknown flag 'FAST'",
    ),
    (
        _set("linux.intelRdt", {"closID": "c1"}),
        "linux.intelRdt: Intel RDT is unavailable: no resctrl mounted at /sys/fs/resctrl",
    ),
]
BAD += [
    (
        _set("process.apparmorProfile", "docker-default"),
        "process.apparmorProfile: AppArmor is not enabled on this host",
    ),
    (
        _set("process.selinuxLabel", "system_u:system_r:container_t:s0"),
        "process.selinuxLabel: SELinux is not enabled on this host",
    ),
    (
        _set("linux.mountLabel", "system_u:object_r:container_file_t:s0"),
        "linux.mountLabel: SELinux is not enabled on this host",
    ),
]
# The refusals above that only a host without the feature makes, by message.
HOST_HAS = {
    "linux.intelRdt": (hostfacts.resctrl_mounted(), "resctrl is mounted, so it is applied"),
    "process.apparmorProfile": (hostfacts.apparmor_enabled(), "AppArmor is enabled, so it is applied"),
    "process.selinuxLabel": (hostfacts.selinux_enabled(), "SELinux is enabled, so it is applied"),
    "linux.mountLabel": (hostfacts.selinux_enabled(), "SELinux is enabled, so it is applied"),
    # a new cgroup gets no real-time runtime only where the kernel groups real-time tasks
    "process.scheduler: SCHED_FIFO: Operation not permitted": (
        not hostfacts.rt_group_sched(),
        "no real-time group scheduling (cpu.rt_runtime_us), so root may use SCHED_FIFO",
    ),
}


def _bad_param(i: int, edit: Any, message: str) -> Any:
    field = message.split(":")[0]
    has, what = next((v for k, v in HOST_HAS.items() if message.startswith(k)), (False, ""))
    marks = pytest.mark.skipif(has, reason=f"not on this host: {what}")
    return pytest.param(edit, message, marks=marks, id=f"{field}-{i}")


@pytest.mark.parametrize(("edit", "message"), [_bad_param(i, e, m) for i, (e, m) in enumerate(BAD)])
def test_bad_values_fail_create_in_one_line(rt: Runtime, edit: Any, message: str) -> None:
    cid = rt.new_id()
    res = rt("create", "--bundle", rt.bundle(["true"], edit), cid)
    assert res.returncode == 1
    assert res.stderr.startswith(f"ocirt: config.json: {message}"), res.stderr
    assert len(res.stderr.splitlines()) == 1 and "Traceback" not in res.stderr
    assert rt("state", cid).returncode == 1, "a failed create left its container"
    assert not cgroup_dirs(cid)


def test_bad_values_fail_exec_in_one_line(rt: Runtime) -> None:
    missing = os.cpu_count()  # one past the last CPU
    cid = rt.new_id()
    bundle = rt.bundle(["sleep", "1000"])
    assert rt("run", "-d", "--bundle", bundle, cid).returncode == 0
    init = rt.state(cid)["pid"]
    with open(bundle + "/config.json") as f:
        base = json.load(f)["process"]
    process = os.path.join(rt.workdir, "process.json")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"scheduler": {"policy": "SCHED_NOPE"}}, "process.scheduler.policy: unknown value"),
        ({"scheduler": {"policy": "SCHED_ISO"}}, "process.scheduler: SCHED_ISO: Invalid argument"),
        (
            {"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": -1}},
            "process.ioPriority.priority: -1 is out",
        ),
        (
            {"execCPUAffinity": {"initial": str(missing)}},
            f"process.execCPUAffinity.initial: cannot run on CPUs {missing}",
        ),
        (
            {"execCPUAffinity": {"final": str(missing)}},
            f"process.execCPUAffinity.final: cannot run on CPUs {missing}",
        ),
    ]
    unchecked = []
    for key, lsm, enabled in (
        ("apparmorProfile", "AppArmor", hostfacts.apparmor_enabled()),
        ("selinuxLabel", "SELinux", hostfacts.selinux_enabled()),
    ):
        if enabled:
            unchecked.append(f"{lsm} is enabled, so process.{key} is not refused")
        else:
            cases.append(({key: "p"}, f"process.{key}: {lsm} is not enabled"))
    for extra, message in cases:
        with open(process, "w") as f:
            json.dump({**base, "args": ["true"], **extra}, f)
        res = rt("exec", "--process", process, cid)
        assert res.returncode == 1, extra
        assert res.stderr.startswith(f"ocirt: --process {process}: {message}"), res.stderr
        assert len(res.stderr.splitlines()) == 1
        for d in cgroup_dirs(cid):
            with open(os.path.join(d, "cgroup.procs")) as f:
                assert f.read().split() == [str(init)], f"a failed exec left a process in {d}"
    hostfacts.require(not unchecked, "; ".join(unchecked))

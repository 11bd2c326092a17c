"""``linux.resources`` to cgroup file writes: conversions, order and errors, host untouched."""

from __future__ import annotations

from typing import Any

import pytest
from ocirt.runtime.cgroups.resources import cpu_weight, io_weight, optional, v1_writes, v2_writes
from ocirt.runtime.errors import SpecError

MiB = 1024 * 1024
FULL: dict[str, Any] = {
    "memory": {
        "limit": 64 * MiB,
        "reservation": 32 * MiB,
        "swap": 128 * MiB,
        "kernel": 1 * MiB,
        "kernelTCP": 2 * MiB,
        "swappiness": 10,
        "disableOOMKiller": True,
        "useHierarchy": True,
        "checkBeforeUpdate": True,
    },
    "cpu": {
        "shares": 1024,
        "quota": 50000,
        "burst": 10000,
        "period": 100000,
        "cpus": "0-1",
        "mems": "0",
        "idle": 1,
    },
    "pids": {"limit": 100},
    "blockIO": {
        "weight": 500,
        "leafWeight": 300,
        "weightDevice": [{"major": 8, "minor": 0, "weight": 600, "leafWeight": 200}],
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}],
        "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2000}],
        "throttleReadIOPSDevice": [{"major": 8, "minor": 16, "rate": 30}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 40}],
    },
    "hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MiB}],
    "rdma": {"mlx5_0": {"hcaHandles": 3, "hcaObjects": 1000}},
}


def test_v1_full_translation_in_order() -> None:
    resources = {
        **FULL,
        "network": {"classID": 0x100001, "priorities": [{"name": "eth0", "priority": 5}]},
    }
    assert v1_writes(resources) == [
        ("memory", "memory.use_hierarchy", "1"),
        ("memory", "memory.limit_in_bytes", str(64 * MiB)),
        ("memory", "memory.memsw.limit_in_bytes", str(128 * MiB)),
        ("memory", "memory.soft_limit_in_bytes", str(32 * MiB)),
        ("memory", "memory.kmem.tcp.limit_in_bytes", str(2 * MiB)),
        ("memory", "memory.oom_control", "1"),
        ("memory", "memory.swappiness", "10"),
        ("cpu", "cpu.shares", "1024"),
        ("cpu", "cpu.cfs_period_us", "100000"),
        ("cpu", "cpu.cfs_quota_us", "50000"),
        ("cpu", "cpu.cfs_burst_us", "10000"),
        ("cpu", "cpu.idle", "1"),
        ("cpuset", "cpuset.cpus", "0-1"),
        ("cpuset", "cpuset.mems", "0"),
        ("pids", "pids.max", "100"),
        ("blkio", "blkio.weight", "500"),
        ("blkio", "blkio.leaf_weight", "300"),
        ("blkio", "blkio.weight_device", "8:0 600"),
        ("blkio", "blkio.leaf_weight_device", "8:0 200"),
        ("blkio", "blkio.throttle.read_bps_device", "8:0 1000"),
        ("blkio", "blkio.throttle.write_bps_device", "8:0 2000"),
        ("blkio", "blkio.throttle.read_iops_device", "8:16 30"),
        ("blkio", "blkio.throttle.write_iops_device", "8:16 40"),
        ("hugetlb", "hugetlb.2MB.limit_in_bytes", str(4 * MiB)),
        ("hugetlb", "hugetlb.2MB.rsvd.limit_in_bytes", str(4 * MiB)),
        ("net_cls", "net_cls.classid", "1048577"),
        ("net_prio", "net_prio.ifpriomap", "eth0 5"),
        ("rdma", "rdma.max", "mlx5_0 hca_handle=3 hca_object=1000"),
    ]


def test_v2_full_translation_in_order() -> None:
    resources = {**FULL, "unified": {"memory.high": "max", "io.max": "8:0 wbps=5"}}
    assert v2_writes(resources) == [
        ("memory.swap.max", str(64 * MiB)),
        ("memory.max", str(64 * MiB)),
        ("memory.low", str(32 * MiB)),
        ("cpu.weight", "100"),
        ("cpu.max", "50000 100000"),
        ("cpu.max.burst", "10000"),
        ("cpu.idle", "1"),
        ("cpuset.cpus", "0-1"),
        ("cpuset.mems", "0"),
        ("pids.max", "100"),
        ("io.weight", "4950"),
        ("io.weight", "8:0 5960"),
        ("io.max", "8:0 rbps=1000"),
        ("io.max", "8:0 wbps=2000"),
        ("io.max", "8:16 riops=30"),
        ("io.max", "8:16 wiops=40"),
        ("hugetlb.2MB.max", str(4 * MiB)),
        ("hugetlb.2MB.rsvd.max", str(4 * MiB)),
        ("rdma.max", "mlx5_0 hca_handle=3 hca_object=1000"),
        ("memory.high", "max"),
        ("io.max", "8:0 wbps=5"),
    ]


def test_fields_name_the_source_of_each_write() -> None:
    writes = v2_writes({"cpu": {"period": 200000}, "unified": {"pids.max": "5"}})
    assert list(zip(writes, writes.fields, strict=True)) == [
        (("cpu.max", "max 200000"), "linux.resources.cpu.period"),
        (("pids.max", "5"), "linux.resources.unified.pids.max"),
    ]
    writes1 = v1_writes({"blockIO": {"throttleReadBpsDevice": [{"major": 1, "minor": 2, "rate": 3}]}})
    assert writes1.fields == ["linux.resources.blockIO.throttleReadBpsDevice[0]"]


# opencontainers/cgroups v0.0.5 utils_test.go (runc 1.4): shares -> cpu.weight
RUNC_CPU_WEIGHTS = {2: 1, 3: 2, 1024: 100, 262143: 10000, 262144: 10000}


def test_cpu_weight_from_shares() -> None:
    assert {s: cpu_weight(s) for s in RUNC_CPU_WEIGHTS} == RUNC_CPU_WEIGHTS
    weights = [cpu_weight(s) for s in range(2, 262145, 97)]
    assert weights == sorted(weights) and weights[0] >= 1 and weights[-1] <= 10000
    assert v2_writes({"cpu": {"shares": 1024}}) == [("cpu.weight", "100")]


# runc's TestConvertMemorySwapToCgroupV2Value: (memory+swap, memory) -> swap, None for an error.
# Its negative values other than -1 are refused earlier here, as the spec's limits allow no
# other; its "0" means unset, which writes nothing.
RUNC_SWAP = [
    (0, 0, 0),
    (-1, 0, -1),
    (-1, -1, -1),
    (-1, 1000, -1),
    (1000, 1000, 0),
    (500, 200, 300),
    (300, 400, None),
    (300, 0, None),
    (300, -1, None),
]


@pytest.mark.parametrize(("swap", "limit", "expected"), RUNC_SWAP)
def test_v2_swap_follows_runc(swap: int, limit: int, expected: int | None) -> None:
    memory = {"swap": swap, "limit": limit}
    if expected is None:
        with pytest.raises(SpecError) as exc:
            v2_writes({"memory": memory})
        assert "linux.resources.memory.swap: " in str(exc.value)
        return
    writes = dict(v2_writes({"memory": memory}))
    wanted = None if swap == 0 else "max" if expected == -1 else str(expected)
    assert writes.get("memory.swap.max") == wanted


def test_io_weight_from_blkio_weight() -> None:
    assert [io_weight(w) for w in (10, 500, 1000)] == [1, 4950, 10000]


@pytest.mark.parametrize(
    ("cpu", "expected"),
    [
        ({"quota": 20000, "period": 50000}, "20000 50000"),
        ({"quota": 20000}, "20000 100000"),
        ({"quota": -1, "period": 50000}, "max 50000"),
        ({"period": 250000}, "max 250000"),
    ],
)
def test_v2_cpu_max(cpu: dict[str, int], expected: str) -> None:
    assert v2_writes({"cpu": cpu}) == [("cpu.max", expected)]


@pytest.mark.parametrize(
    ("memory", "expected"),
    [
        (
            {"limit": 100 * MiB, "swap": 300 * MiB},
            [("memory.swap.max", str(200 * MiB)), ("memory.max", str(100 * MiB))],
        ),
        (
            {"limit": 100 * MiB, "swap": 100 * MiB},
            [("memory.swap.max", "0"), ("memory.max", str(100 * MiB))],
        ),
        ({"limit": -1}, [("memory.swap.max", "max"), ("memory.max", "max")]),
        (
            {"limit": 100 * MiB, "swap": -1},
            [("memory.swap.max", "max"), ("memory.max", str(100 * MiB))],
        ),
        ({"limit": 100 * MiB}, [("memory.max", str(100 * MiB))]),
        ({"reservation": -1}, [("memory.low", "max")]),
        ({"limit": 0, "swap": 0, "reservation": 0}, []),
    ],
)
def test_v2_memory_and_swap(memory: dict[str, int], expected: list[tuple[str, str]]) -> None:
    assert v2_writes({"memory": memory}) == expected


def test_v1_unlimited_memory_also_lifts_swap() -> None:
    assert v1_writes({"memory": {"limit": -1}}) == [
        ("memory", "memory.limit_in_bytes", "-1"),
        ("memory", "memory.memsw.limit_in_bytes", "-1"),
    ]


def test_kernel_memory_is_ignored_and_v1_only_knobs_drop_on_v2() -> None:
    assert v1_writes({"memory": {"kernel": 123}}) == []
    v1_only = {
        "memory": {
            "kernel": 1,
            "kernelTCP": 2,
            "swappiness": 3,
            "disableOOMKiller": True,
            "useHierarchy": False,
        },
        "blockIO": {"leafWeight": 100},
    }
    assert v2_writes(v1_only) == []


@pytest.mark.parametrize(("limit", "value"), [(-1, "max"), (-5, "max"), (0, "0"), (42, "42")])
def test_pids_limit_follows_runtime_spec_1_3(limit: int, value: str) -> None:
    assert v1_writes({"pids": {"limit": limit}}) == [("pids", "pids.max", value)]
    assert v2_writes({"pids": {"limit": limit}}) == [("pids.max", value)]


def test_pids_without_limit_writes_nothing() -> None:
    """runtime-spec 1.3 (opencontainers/runtime-spec#1279): ``limit`` is optional, unset
    means the runtime leaves ``pids.max`` alone."""
    assert v1_writes({"pids": {}}) == []
    assert v2_writes({"pids": {}}) == []


def test_optional_writes() -> None:
    assert optional("memory.kmem.tcp.limit_in_bytes", "5")
    assert optional("hugetlb.2MB.rsvd.limit_in_bytes", "5")
    assert optional("hugetlb.2MB.rsvd.max", "5")
    assert optional("memory.memsw.limit_in_bytes", "-1")
    assert not optional("memory.memsw.limit_in_bytes", "5")
    assert optional("memory.swap.max", "max") and optional("memory.swap.max", "0")
    assert not optional("memory.swap.max", "5")
    assert not optional("hugetlb.2MB.limit_in_bytes", "5")


BOTH = [
    ({"memory": {"limit": "1g"}}, "linux.resources.memory.limit", "must be an integer"),
    ({"memory": {"limit": True}}, "linux.resources.memory.limit", "must be an integer"),
    ({"memory": {"limit": -2}}, "linux.resources.memory.limit", "must be at least -1"),
    ({"memory": {"kernel": "x"}}, "linux.resources.memory.kernel", "must be an integer"),
    (
        {"memory": {"swappiness": 101}},
        "linux.resources.memory.swappiness",
        "must be between 0 and 100",
    ),
    (
        {"memory": {"disableOOMKiller": 1}},
        "linux.resources.memory.disableOOMKiller",
        "must be true or false",
    ),
    (
        {"memory": {"limit": 200, "swap": 100}},
        "linux.resources.memory.swap",
        "must be at least memory.limit (200): it limits memory and swap together",
    ),
    ({"memory": []}, "linux.resources.memory", "must be an object"),
    ({"cpu": {"shares": 1}}, "linux.resources.cpu.shares", "must be between 2 and 262144"),
    ({"cpu": {"period": -1}}, "linux.resources.cpu.period", "must not be negative"),
    ({"cpu": {"cpus": 3}}, "linux.resources.cpu.cpus", "must be a string"),
    ({"cpu": {"idle": 2}}, "linux.resources.cpu.idle", "must be between 0 and 1"),
    (
        {"cpu": {"quota": 1000, "burst": 2000}},
        "linux.resources.cpu.burst",
        "must not exceed cpu.quota (1000)",
    ),
    ({"blockIO": {"weight": 5}}, "linux.resources.blockIO.weight", "must be between 10 and 1000"),
    (
        {"blockIO": {"weightDevice": [{"minor": 0, "weight": 100}]}},
        "linux.resources.blockIO.weightDevice[0].major",
        "is required",
    ),
    (
        {"blockIO": {"weightDevice": [{"major": 8, "minor": 0}]}},
        "linux.resources.blockIO.weightDevice[0]",
        "needs weight or leafWeight",
    ),
    (
        {"blockIO": {"throttleWriteIOPSDevice": [{"major": 8, "minor": 0}]}},
        "linux.resources.blockIO.throttleWriteIOPSDevice[0].rate",
        "is required",
    ),
    (
        {"blockIO": {"throttleReadBpsDevice": {}}},
        "linux.resources.blockIO.throttleReadBpsDevice",
        "must be a list",
    ),
    (
        {"hugepageLimits": [{"pageSize": "2M", "limit": 1}]},
        "linux.resources.hugepageLimits[0].pageSize",
        "must look like 2MB or 1GB, got '2M'",
    ),
    (
        {"hugepageLimits": [{"pageSize": "2MB"}]},
        "linux.resources.hugepageLimits[0].limit",
        "is required",
    ),
    ({"rdma": {"mlx": {}}}, "linux.resources.rdma.mlx", "needs hcaHandles or hcaObjects"),
]


@pytest.mark.parametrize(("resources", "field", "problem"), BOTH)
def test_bad_values_on_both_versions(resources: dict[str, Any], field: str, problem: str) -> None:
    for translate in (v1_writes, v2_writes):
        with pytest.raises(SpecError) as exc:
            translate(resources)
        assert str(exc.value) == f"config.json: {field}: {problem}"


@pytest.mark.parametrize(
    ("resources", "field", "problem"),
    [
        (
            {"unified": {"memory.max": "1"}},
            "linux.resources.unified",
            "needs cgroup v2, but this host uses cgroup v1",
        ),
        (
            {"network": {"classID": -1}},
            "linux.resources.network.classID",
            "must be between 0 and 4294967295",
        ),
        (
            {"network": {"priorities": [{"name": "eth0"}]}},
            "linux.resources.network.priorities[0]",
            "needs name and priority",
        ),
    ],
)
def test_bad_values_on_v1(resources: dict[str, Any], field: str, problem: str) -> None:
    with pytest.raises(SpecError) as exc:
        v1_writes(resources)
    assert str(exc.value) == f"config.json: {field}: {problem}"


@pytest.mark.parametrize(
    ("resources", "field", "problem"),
    [
        (
            {"memory": {"swap": 100}},
            "linux.resources.memory.swap",
            "needs a memory.limit other than 0 or -1 on cgroup v2",
        ),
        (
            {"cpu": {"realtimeRuntime": 1000}},
            "linux.resources.cpu.realtimeRuntime",
            "cgroup v2 has no real-time CPU bandwidth control",
        ),
        (
            {"network": {"classID": 1}},
            "linux.resources.network",
            "cgroup v2 has no net_cls or net_prio controller",
        ),
        (
            {"unified": {"../memory.max": "1"}},
            "linux.resources.unified.../memory.max",
            "must name a file in the container's cgroup directory",
        ),
        ({"unified": {"memory.max": 1}}, "linux.resources.unified.memory.max", "must be a string"),
    ],
)
def test_bad_values_on_v2(resources: dict[str, Any], field: str, problem: str) -> None:
    with pytest.raises(SpecError) as exc:
        v2_writes(resources)
    assert str(exc.value) == f"config.json: {field}: {problem}"


def test_empty_sections_write_nothing() -> None:
    empty: dict[str, Any] = {"memory": {}, "cpu": {}, "blockIO": {}, "network": {}, "unified": {}}
    assert v1_writes(empty) == []
    assert v2_writes(empty) == []

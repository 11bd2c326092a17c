"""The runtime-spec 1.3.0 schemas: well-formed, complete enough for real documents, and precise
about where a broken document is broken."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from importlib import resources
from typing import Any

import pytest
from conftest import Runtime
from jsonschema import Draft202012Validator
from ocirt.runtime import specgen
from ocirt.specs import schema
from ocirt.specs.config import Config
from ocirt.testing.bundle import base_config

SCHEMA_FILES = sorted(
    entry.name
    for entry in (resources.files("ocirt.specs") / "schemas").iterdir()
    if entry.name.endswith(".json")
)


def full_config() -> dict[str, Any]:
    """Every section config.md and config-linux.md define, so every ``$ref`` gets followed."""
    config = specgen.default_spec()
    config["domainname"] = "example.org"
    config["annotations"] = {"org.example.key": "value"}
    config["mounts"].append(
        {
            "destination": "/data",
            "type": "bind",
            "source": "/srv/data",
            "options": ["rbind", "idmap"],
            "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
            "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        }
    )
    hook = {"path": "/usr/bin/hook", "args": ["hook", "x"], "env": ["A=b"], "timeout": 5}
    config["hooks"] = {
        name: [hook]
        for name in (
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop",
        )
    }
    config["process"].update(
        consoleSize={"height": 24, "width": 80},
        user={"uid": 1000, "gid": 1000, "umask": 0o22, "additionalGids": [5, 6]},
        apparmorProfile="unconfined",
        selinuxLabel="system_u:system_r:container_t:s0",
        oomScoreAdj=100,
        ioPriority={"class": "IOPRIO_CLASS_BE", "priority": 4},
        scheduler={
            "policy": "SCHED_DEADLINE",
            "nice": 0,
            "priority": 0,
            "flags": ["SCHED_FLAG_RESET_ON_FORK"],
            "runtime": 10_000_000,
            "deadline": 20_000_000,
            "period": 30_000_000,
        },
        execCPUAffinity={"initial": "0", "final": "0-3,7"},
    )
    config["process"]["capabilities"].update(inheritable=[], ambient=["CAP_KILL"])
    throttle = [{"major": 8, "minor": 0, "rate": 1048576}]
    config["linux"].update(
        namespaces=[{"type": t} for t in ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")],
        uidMappings=[{"containerID": 0, "hostID": 100000, "size": 65536}],
        gidMappings=[{"containerID": 0, "hostID": 100000, "size": 65536}],
        timeOffsets={"monotonic": {"secs": 3600, "nanosecs": 0}, "boottime": {"secs": -60}},
        devices=[
            {
                "type": "c",
                "path": "/dev/fuse",
                "major": 10,
                "minor": 229,
                "fileMode": 0o666,
                "uid": 0,
                "gid": 0,
            },
            {"type": "p", "path": "/dev/fifo"},
        ],
        netDevices={"eth1": {"name": "net0"}, "dummy0": {}},
        cgroupsPath="/ocirt/full",
        resources={
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"},
            ],
            "memory": {
                "limit": 1 << 30,
                "reservation": 1 << 29,
                "swap": -1,
                "kernel": -1,
                "kernelTCP": -1,
                "swappiness": 60,
                "disableOOMKiller": False,
                "useHierarchy": True,
                "checkBeforeUpdate": True,
            },
            "cpu": {
                "shares": 1024,
                "quota": 50000,
                "burst": 10000,
                "period": 100000,
                "realtimeRuntime": 0,
                "realtimePeriod": 0,
                "cpus": "0-1",
                "mems": "0",
                "idle": 0,
            },
            "pids": {"limit": 64},
            "blockIO": {
                "weight": 500,
                "leafWeight": 300,
                "weightDevice": [{"major": 8, "minor": 0, "weight": 200, "leafWeight": 100}],
                "throttleReadBpsDevice": throttle,
                "throttleWriteBpsDevice": throttle,
                "throttleReadIOPSDevice": throttle,
                "throttleWriteIOPSDevice": throttle,
            },
            "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
            "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]},
            "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}},
            "unified": {"memory.high": "max", "io.weight": "default 100"},
        },
        intelRdt={
            "closID": "guaranteed",
            "schemata": ["L3:0=7f0;1=1f", "MB:0=20;1=70"],
            "l3CacheSchema": "L3:0=7f0;1=1f",
            "memBwSchema": "MB:0=20;1=70",
            "enableMonitoring": True,
        },
        sysctl={"net.ipv4.ip_forward": "1"},
        seccomp={
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
            "listenerPath": "/run/seccomp-agent.sock",
            "listenerMetadata": "meta",
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"},
                {
                    "names": ["personality"],
                    "action": "SCMP_ACT_ALLOW",
                    "errnoRet": 38,
                    "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
                },
            ],
        },
        rootfsPropagation="rslave",
        mountLabel="system_u:object_r:container_file_t:s0",
        personality={"domain": "LINUX32", "flags": []},
        memoryPolicy={"mode": "MPOL_INTERLEAVE", "nodes": "0-1", "flags": ["MPOL_F_STATIC_NODES"]},
    )
    return config


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_schema_files_are_valid_draft_2020_12(name: str) -> None:
    contents = json.loads((resources.files("ocirt.specs") / "schemas" / name).read_text())
    Draft202012Validator.check_schema(contents)
    assert contents["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert contents["$id"] == schema.BASE_URI + name


def test_every_section_of_a_full_config_validates() -> None:
    config = full_config()
    assert schema.validate_config(config) == []
    Config(config)


def test_conformance_base_config_validates() -> None:
    assert schema.validate_config(base_config(["sh", "-c", "true"])) == []


def test_unknown_properties_are_allowed() -> None:
    """config.md: runtimes MUST ignore unknown properties, so the schema must not reject them."""
    config = specgen.default_spec()
    config["org.example.extension"] = {"anything": [1, 2]}
    config["linux"]["futureField"] = True
    assert schema.validate_config(config) == []


Edit = Callable[[dict[str, Any]], None]

BROKEN: list[tuple[str, Edit, str]] = [
    ("no ociVersion", lambda c: c.pop("ociVersion"), "ociVersion: is required"),
    ("ociVersion not semver", lambda c: c.update(ociVersion="1.3"), 'ociVersion: "1.3" is not a SemVer'),
    ("no root", lambda c: c.pop("root"), "root: is required"),
    ("no root path", lambda c: c["root"].pop("path"), "root.path: is required"),
    (
        "readonly not bool",
        lambda c: c["root"].update(readonly="yes"),
        "root.readonly: must be boolean, not string",
    ),
    (
        "negative uid",
        lambda c: c["process"]["user"].update(uid=-1),
        "process.user.uid: -1 is less than the minimum",
    ),
    (
        "uid too big",
        lambda c: c["process"]["user"].update(uid=1 << 32),
        "process.user.uid: 4294967296 is greater",
    ),
    (
        "gid as string",
        lambda c: c["process"]["user"].update(gid="0"),
        "process.user.gid: must be integer, not string",
    ),
    ("args not list", lambda c: c["process"].update(args="sh"), "process.args: must be array, not string"),
    ("empty args", lambda c: c["process"].update(args=[]), "process.args: [] should be non-empty"),
    ("relative cwd", lambda c: c["process"].update(cwd="tmp"), 'process.cwd: "tmp" is not an absolute path'),
    (
        "env without =",
        lambda c: c["process"]["env"].append("JUNK"),
        'process.env[2]: "JUNK" is not a KEY=value',
    ),
    (
        "bad capability",
        lambda c: c["process"]["capabilities"]["bounding"].append("KILL"),
        'process.capabilities.bounding[3]: "KILL" is not a capability name',
    ),
    (
        "bad rlimit",
        lambda c: c["process"]["rlimits"][0].update(type="NOFILE"),
        'process.rlimits[0].type: "NOFILE" is not an rlimit name',
    ),
    (
        "oomScoreAdj range",
        lambda c: c["process"].update(oomScoreAdj=1001),
        "process.oomScoreAdj: 1001 is greater",
    ),
    (
        "bad namespace type",
        lambda c: c["linux"]["namespaces"].append({"type": "net"}),
        'linux.namespaces[6].type: "net" is not one of: "pid", "network"',
    ),
    (
        "namespace without type",
        lambda c: c["linux"]["namespaces"].append({"path": "/proc/1/ns/net"}),
        "linux.namespaces[6].type: is required",
    ),
    (
        "device without major",
        lambda c: c["linux"].update(devices=[{"type": "c", "path": "/dev/x", "minor": 1}]),
        "linux.devices[0].major: is required",
    ),
    (
        "bad seccomp action",
        lambda c: c["linux"].update(seccomp={"defaultAction": "SCMP_ACT_DENY"}),
        'linux.seccomp.defaultAction: "SCMP_ACT_DENY" is not one of',
    ),
    (
        "memory limit as string",
        lambda c: c["linux"]["resources"].update(memory={"limit": "1G"}),
        "linux.resources.memory.limit: must be integer, not string",
    ),
    (
        "bad time offset clock",
        lambda c: c["linux"].update(timeOffsets={"realtime": {"secs": 1}}),
        'linux.timeOffsets: key "realtime" is not one of: "boottime", "monotonic"',
    ),
    (
        "bad net device name",
        lambda c: c["linux"].update(netDevices={"eth0": {"name": "a/b"}}),
        'linux.netDevices.eth0.name: "a/b" is not an interface name',
    ),
    (
        "annotation not string",
        lambda c: c.update(annotations={"org.example": 1}),
        'annotations["org.example"]: must be string, not integer',
    ),
    (
        "bad memory policy",
        lambda c: c["linux"].update(memoryPolicy={"mode": "MPOL_FIRST_TOUCH"}),
        'linux.memoryPolicy.mode: "MPOL_FIRST_TOUCH" is not one of',
    ),
    (
        "hook timeout zero",
        lambda c: c.update(hooks={"poststop": [{"path": "/bin/true", "timeout": 0}]}),
        "hooks.poststop[0].timeout: 0 is less than the minimum of 1",
    ),
]


@pytest.mark.parametrize(("edit", "expected"), [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_broken_config_names_the_field(edit: Edit, expected: str) -> None:
    config = specgen.default_spec()
    edit(config)
    problems = schema.validate_config(config)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems


def test_every_problem_is_reported_at_once() -> None:
    config = specgen.default_spec()
    config.pop("ociVersion")
    config["process"]["user"]["uid"] = -5
    config["linux"]["namespaces"][0]["type"] = "bogus"
    fields = [line.split(": ", 1)[0] for line in schema.validate_config(config)]
    assert fields == ["linux.namespaces[0].type", "ociVersion", "process.user.uid"]


def test_not_an_object() -> None:
    assert schema.validate_config(["ociVersion"]) == ["(document): must be object, not array"]


def test_messages_stay_short_for_big_values() -> None:
    config = specgen.default_spec()
    config["linux"]["resources"]["devices"] = {"huge": "x" * 10_000}
    [problem] = schema.validate_config(config)
    assert problem == "linux.resources.devices: must be array, not object"


STATE = {
    "ociVersion": "1.3.0",
    "id": "ocirt-demo",
    "status": "running",
    "pid": 4242,
    "bundle": "/var/lib/bundles/demo",
    "annotations": {"org.example": "x"},
}


@pytest.mark.parametrize("status", ["creating", "created", "running", "stopped", "paused"])
def test_state_statuses(status: str) -> None:
    assert schema.validate_state({**STATE, "status": status}) == []


def test_state_without_pid_when_stopped() -> None:
    doc = {k: v for k, v in STATE.items() if k != "pid"}
    assert schema.validate_state({**doc, "status": "stopped"}) == []
    assert schema.validate_state({**doc, "status": "running"}) == ["pid: is required"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"status": "frozen"}, 'status: "frozen" is not one of: "creating", "created", "running"'),
        ({"pid": -1}, "pid: -1 is less than the minimum of 0"),
        ({"bundle": "relative"}, 'bundle: "relative" is not an absolute path'),
        ({"id": 7}, "id: must be string, not integer"),
    ],
)
def test_broken_state(change: dict[str, Any], expected: str) -> None:
    problems = schema.validate_state({**STATE, **change})
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_state_missing_fields() -> None:
    assert schema.validate_state({"status": "stopped"}) == [
        "bundle: is required",
        "id: is required",
        "ociVersion: is required",
    ]


def test_real_state_output_validates(rt: Runtime) -> None:
    bundle = rt.bundle(["sleep", "60"])
    cid = rt.new_id()
    res = rt("create", "--bundle", bundle, cid)
    assert res.returncode == 0, res.stderr
    assert schema.validate_state(rt.state(cid)) == []


FEATURES: dict[str, Any] = {
    "ociVersionMin": "1.0.0",
    "ociVersionMax": "1.3.0",
    "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
    "mountOptions": ["bind", "rbind", "ro", "nosuid", "nodev", "noexec", "rprivate", "idmap"],
    "annotations": {"org.opencontainers.runc.version": "1.3.0", "io.github.ocirt.version": "0.1.0"},
    "potentiallyUnsafeConfigAnnotations": ["bundle", "org.systemd.property."],
    "linux": {
        "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
        "capabilities": ["CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN", "CAP_CHECKPOINT_RESTORE"],
        "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": False, "rdma": False},
        "seccomp": {
            "enabled": False,
            "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL_PROCESS"],
            "operators": ["SCMP_CMP_EQ", "SCMP_CMP_MASKED_EQ"],
            "archs": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
            "knownFlags": ["SECCOMP_FILTER_FLAG_LOG"],
            "supportedFlags": [],
        },
        "apparmor": {"enabled": False},
        "selinux": {"enabled": False},
        "intelRdt": {"enabled": False, "schemata": False, "monitoring": False},
        "memoryPolicy": {"modes": ["MPOL_BIND", "MPOL_DEFAULT"], "flags": ["MPOL_F_STATIC_NODES"]},
        "mountExtensions": {"idmap": {"enabled": True}},
        "netDevices": {"enabled": True},
    },
}


def test_features_document_validates() -> None:
    assert schema.validate_features(FEATURES) == []
    assert schema.validate_features({"ociVersionMin": "1.0.0", "ociVersionMax": "1.3.0"}) == []


def test_broken_features() -> None:
    doc = copy.deepcopy(FEATURES)
    del doc["ociVersionMax"]
    doc["linux"]["namespaces"].append("net")
    doc["linux"]["cgroup"]["v2"] = "yes"
    assert schema.validate_features(doc) == [
        "linux.cgroup.v2: must be boolean, not string",
        'linux.namespaces[8]: "net" is not one of: "pid", "network", "mount", "ipc", "uts", "user", '
        '"cgroup", "time"',
        "ociVersionMax: is required",
    ]

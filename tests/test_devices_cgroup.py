"""``linux.resources.devices``: the rules, the v1 devices cgroup, and what a container can open
(cgroup v2: test_devices_ebpf.py).

Block device reads use an unbound loop device (``b 7:0``: empty, harmless to read); nothing
here opens a block device for writing. Write access is shown on ``/dev/net/tun`` (``c 10:200``),
opened and closed without a byte written.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Runtime
from ocirt.runtime import specgen
from ocirt.runtime.cgroups import devices as d
from ocirt.runtime.cgroups import remove_tree
from ocirt.runtime.cgroups.v1 import V1Cgroup
from ocirt.runtime.errors import OcirtError, SpecError

DEVICES = "/sys/fs/cgroup/devices"
DENY_ALL = {"allow": False, "access": "rwm"}
ALLOW_ALL = {"allow": True, "access": "rwm"}
RUNC_DEFAULTS = [
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:8 rwm",
    "c 1:7 rwm",
    "c 5:0 rwm",
    "c 1:5 rwm",
    "c 1:9 rwm",
    "c 136:* rwm",
    "c 5:2 rwm",
]


def rule(allow: bool, kind: str, major: int, minor: int, access: str) -> dict[str, Any]:
    return {"allow": allow, "type": kind, "major": major, "minor": minor, "access": access}


def lines(state: d.State) -> list[str]:
    return [d.line(key, access) for key, access in state.exceptions.items()]


def target(*rules: dict[str, Any]) -> d.State:
    return d.target(d.parse({"devices": list(rules)}))


# --- the rules, without the kernel --------------------------------------------------------


def test_omitted_fields_mean_all_devices_and_all_access() -> None:
    (deny,) = d.parse({"devices": [{"allow": False}]})
    assert (deny.allow, deny.key, deny.access, deny.index) == (False, ("a", -1, -1), "rwm", 0)
    allow = d.parse({"devices": [DENY_ALL, {"allow": True, "type": "c", "major": 10, "access": "wr"}]})[1]
    assert (allow.key, allow.access, allow.index, allow.line()) == (("c", 10, -1), "rw", 1, "c 10:* rw")
    assert d.parse(None) == d.parse({}) == d.parse({"devices": None}) == []


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        ("rwm", "linux.resources.devices: must be a list"),
        (["a"], "linux.resources.devices[0]: must be an object"),
        ([{"access": "rwm"}], "linux.resources.devices[0].allow: is required"),
        ([{"allow": "yes"}], "linux.resources.devices[0].allow: must be true or false"),
        (
            [DENY_ALL, {"allow": True, "type": "u"}],
            "linux.resources.devices[1].type: must be a, c or b, got 'u'",
        ),
        (
            [{"allow": True, "type": "c", "major": "1"}],
            "linux.resources.devices[0].major: must be an integer",
        ),
        (
            [{"allow": True, "type": "c", "minor": True}],
            "linux.resources.devices[0].minor: must be an integer",
        ),
        (
            [{"allow": True, "type": "b", "major": -2}],
            "linux.resources.devices[0].major: must be -1 (all) or between 0 and 4294967295",
        ),
        (
            [{"allow": True, "type": "b", "minor": 1 << 32}],
            "linux.resources.devices[0].minor: must be -1 (all) or between 0 and 4294967295",
        ),
        (
            [{"allow": True, "type": "c", "access": "rwx"}],
            "linux.resources.devices[0].access: must be a combination of r, w and m, got 'rwx'",
        ),
        (
            [{"allow": True, "type": "c", "access": ""}],
            "linux.resources.devices[0].access: must be a combination of r, w and m, got ''",
        ),
        (
            [{"allow": True, "type": "c", "access": 7}],
            "linux.resources.devices[0].access: must be a combination of r, w and m, got 7",
        ),
        (
            [{"allow": True, "major": 8}],
            "linux.resources.devices[0].major: must be omitted or -1 with type a (every device)",
        ),
        (
            [{"allow": True, "type": "a", "minor": 0}],
            "linux.resources.devices[0].minor: must be omitted or -1 with type a (every device)",
        ),
        (
            [{"allow": True, "access": "r"}],
            "linux.resources.devices[0].access: must be rwm with type a: the devices cgroup cannot "
            "single out an access mode for every device (use c and b rules)",
        ),
    ],
)
def test_bad_rules_name_the_field(devices: Any, message: str) -> None:
    with pytest.raises(SpecError) as exc:
        d.parse({"devices": devices})
    assert str(exc.value) == f"config.json: {message}"


def test_default_is_deny_all_then_the_rules_then_runcs_list() -> None:
    assert not d.target([]).allow_all
    assert lines(d.target([])) == RUNC_DEFAULTS
    state = target(DENY_ALL, rule(True, "b", 7, 0, "r"), rule(True, "c", 10, 200, "rw"))
    assert lines(state) == ["b 7:0 r", "c 10:200 rw", *RUNC_DEFAULTS]
    state = target(rule(True, "c", 10, 200, "rwm"), rule(False, "c", 10, 200, "w"), DENY_ALL)
    assert lines(state) == RUNC_DEFAULTS  # a later "a" rule starts over
    state = target(rule(True, "c", 10, 200, "rwm"), rule(False, "c", 10, 200, "w"))
    assert lines(state)[0] == "c 10:200 rm"


def test_allow_all_and_what_spoils_it() -> None:
    assert target(ALLOW_ALL).allows_everything()
    # runc's list comes last: denying one of its devices is undone
    assert target(ALLOW_ALL, rule(False, "c", 1, 3, "rwm")).allows_everything()
    denied = target(ALLOW_ALL, rule(False, "b", 8, -1, "w"))
    assert denied.allow_all and lines(denied) == ["b 8:* w"]
    assert not target(DENY_ALL).allows_everything()
    assert not d.target([]).allows_everything()


def test_a_hole_in_a_wildcard_rule_is_an_error() -> None:
    with pytest.raises(SpecError) as exc:
        target(DENY_ALL, rule(True, "c", 4, -1, "rw"), rule(False, "c", 4, 1, "w"))
    assert str(exc.value) == (
        "config.json: linux.resources.devices[2]: denying c 4:1 w would need a hole in the "
        "earlier rule c 4:* rw, which the devices cgroup cannot make"
    )
    with pytest.raises(SpecError) as exc:
        target(ALLOW_ALL, {"allow": False, "type": "c", "access": "w"})
    assert str(exc.value) == (
        "config.json: linux.resources.devices: runc's default rule c 1:3 rwm would need a hole "
        "in the earlier rule c *:* w, which the devices cgroup cannot make"
    )
    ok = target(DENY_ALL, rule(True, "c", 4, -1, "rw"), rule(False, "c", 4, 1, "m"))
    assert lines(ok)[0] == "c 4:* rw"


def test_transitions_are_minimal() -> None:
    fresh = d.from_list("a *:* rwm\n")
    wanted = target(DENY_ALL, rule(True, "b", 7, 0, "r"))
    writes = d.transition(fresh, wanted)
    assert writes[0] == ("devices.deny", "a")
    assert writes[1:] == [("devices.allow", text) for text in ["b 7:0 r", *RUNC_DEFAULTS]]
    listed = d.from_list("".join(f"{text}\n" for text in lines(wanted)))
    assert d.transition(listed, wanted) == []
    wider = target(DENY_ALL, rule(True, "b", 7, 0, "rw"), rule(True, "c", 1, 3, "r"))
    assert d.transition(listed, wider) == [("devices.allow", "b 7:0 w")]
    narrower = target(rule(True, "c", 10, 200, "rw"))
    assert d.transition(d.from_list("c 10:200 rwm\nb 7:0 r\n"), narrower) == [
        ("devices.deny", "c 10:200 m"),
        ("devices.deny", "b 7:0 r"),
        *[("devices.allow", text) for text in RUNC_DEFAULTS],
    ]
    # with everything allowed, deny exceptions do not show: always start over
    assert d.transition(fresh, target(ALLOW_ALL)) == [("devices.allow", "a")]
    assert d.transition(listed, target(ALLOW_ALL, rule(False, "b", 8, 0, "w"))) == [
        ("devices.allow", "a"),
        ("devices.deny", "b 8:0 w"),
    ]


# --- cgroup v1 ------------------------------------------------------------------------------


@pytest.fixture
def v1() -> Iterator[V1Cgroup]:
    """A devices cgroup of its own under the host's devices hierarchy, removed with its children."""
    if not os.path.isdir(DEVICES):
        pytest.skip(f"no v1 devices hierarchy at {DEVICES}")
    cg = V1Cgroup({"devices": f"{DEVICES}/ocirt-test-devices-{uuid.uuid4().hex[:8]}"})
    cg.create()
    try:
        yield cg
    finally:
        remove_tree(cg.paths["devices"])


def listed(cg: V1Cgroup) -> list[str]:
    with open(os.path.join(cg.paths["devices"], "devices.list")) as f:
        return f.read().splitlines()


def test_v1_no_rules_gets_runcs_list(v1: V1Cgroup) -> None:
    assert listed(v1) == ["a *:* rwm"]
    v1.apply(None)
    assert listed(v1) == RUNC_DEFAULTS
    v1.apply({})
    assert listed(v1) == RUNC_DEFAULTS


def test_v1_rules_in_order_then_runcs_list(v1: V1Cgroup) -> None:
    v1.apply({"devices": [DENY_ALL, rule(True, "b", 7, 0, "r"), rule(True, "c", 10, 200, "rw")]})
    assert listed(v1) == ["b 7:0 r", "c 10:200 rw", *RUNC_DEFAULTS]
    v1.apply({"devices": [ALLOW_ALL]})
    assert listed(v1) == ["a *:* rwm"]


def test_v1_reapplying_changes_only_what_differs(v1: V1Cgroup) -> None:
    """A child cgroup makes the kernel refuse a reset (``a``) with EINVAL: passing with one
    shows that neither re-applying the same rules nor changing one resets the cgroup."""
    rules = [DENY_ALL, rule(True, "b", 7, 0, "r"), rule(True, "c", 10, 200, "rw")]
    v1.apply({"devices": rules})
    os.mkdir(os.path.join(v1.paths["devices"], "child"))
    v1.apply({"devices": rules})
    assert listed(v1) == ["b 7:0 r", "c 10:200 rw", *RUNC_DEFAULTS]
    v1.apply({"devices": [DENY_ALL, rule(True, "b", 7, 0, "r")]})
    assert listed(v1) == ["b 7:0 r", *RUNC_DEFAULTS]
    with open(os.path.join(v1.paths["devices"], "child", "devices.list")) as f:
        assert "c 10:200 rw" not in f.read().splitlines()  # the kernel passes removals down
    path = v1.paths["devices"]
    with pytest.raises(OcirtError) as exc:
        v1.apply({"devices": [ALLOW_ALL]})
    assert str(exc.value) == f"linux.resources.devices: writing 'a' to {path}/devices.allow: Invalid argument"


def test_v1_kernel_refusal_names_the_rule_and_the_file(v1: V1Cgroup) -> None:
    v1.apply(None)
    child = V1Cgroup({"devices": os.path.join(v1.paths["devices"], "child")})
    child.create()
    with pytest.raises(OcirtError) as exc:
        child.apply({"devices": [DENY_ALL, rule(True, "b", 7, 0, "r")]})
    assert str(exc.value) == (
        f"linux.resources.devices: writing 'b 7:0 r' to {child.paths['devices']}/devices.allow: "
        "Operation not permitted"
    )


def test_v1_bad_rules_fail_before_any_write(v1: V1Cgroup) -> None:
    with pytest.raises(SpecError):
        v1.apply({"devices": [DENY_ALL, rule(True, "c", 4, -1, "rw"), rule(False, "c", 4, 1, "w")]})
    with pytest.raises(SpecError):
        v1.apply({"devices": [DENY_ALL], "memory": {"limit": "lots"}})
    assert listed(v1) == ["a *:* rwm"]


def test_v1_without_the_devices_controller() -> None:
    cg = V1Cgroup({})
    cg.apply(None)
    cg.apply({"devices": [ALLOW_ALL]})
    with pytest.raises(OcirtError) as exc:
        cg.apply({"devices": [DENY_ALL]})
    assert str(exc.value) == "linux.resources.devices: the devices controller is not mounted on this host"


# --- containers -------------------------------------------------------------------------------

PROBE = (
    "echo x > /dev/null && echo null-ok; head -c4 /dev/zero | wc -c; "
    "mknod /dev/blk b 7 0 && echo mknod-ok; head -c1 /dev/blk; echo read=$?; "
    "mkdir /dev/net && mknod /dev/net/tun c 10 200; "
    "true < /dev/net/tun; echo tun-read=$?; true > /dev/net/tun; echo tun-write=$?"
)


def probe(rt: Runtime, devices: list[dict[str, Any]] | None) -> tuple[list[str], str]:
    """Run PROBE with the given rules (None: no resources at all): stdout lines, stderr."""

    def edit(config: dict[str, Any]) -> None:
        if devices is not None:
            config["linux"]["resources"] = {"devices": devices}

    bundle = rt.bundle(["sh", "-c", PROBE], edit)
    res = rt("run", "--bundle", bundle, rt.new_id())
    assert res.returncode == 0, res.stderr
    return res.stdout.split(), res.stderr


def test_deny_all_leaves_runcs_devices_and_blocks_the_rest(rt: Runtime) -> None:
    out, err = probe(rt, [DENY_ALL])
    assert out == ["null-ok", "4", "mknod-ok", "read=1", "tun-read=1", "tun-write=1"]
    assert "head: /dev/blk: Operation not permitted" in err
    assert "can't open /dev/net/tun: Operation not permitted" in err


def test_a_config_without_rules_gets_the_same_protection(rt: Runtime) -> None:
    out, err = probe(rt, None)
    assert out == ["null-ok", "4", "mknod-ok", "read=1", "tun-read=1", "tun-write=1"]
    assert "head: /dev/blk: Operation not permitted" in err


def test_allow_rules_open_exactly_what_they_name(rt: Runtime) -> None:
    out, err = probe(rt, [DENY_ALL, rule(True, "b", 7, 0, "r"), rule(True, "c", 10, 200, "r")])
    assert out == ["null-ok", "4", "mknod-ok", "read=0", "tun-read=0", "tun-write=1"]
    assert err.count("Operation not permitted") == 1
    out, err = probe(rt, [DENY_ALL, rule(True, "c", 10, 200, "rw")])
    assert out == ["null-ok", "4", "mknod-ok", "read=1", "tun-read=0", "tun-write=0"]


def test_runcs_default_spec_runs_and_sees_its_rules(rt: Runtime) -> None:
    config = specgen.default_spec()
    script = "echo x > /dev/null && head -c2 /dev/urandom | wc -c && cat /sys/fs/cgroup/devices/devices.list"
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sh", "-c", script]
    bundle = rt.bundle(config["process"]["args"])
    rt.rewrite(bundle, config)
    res = rt("run", "--bundle", bundle, rt.new_id())
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["2", *RUNC_DEFAULTS]


def test_update_leaves_the_device_rules_alone(rt: Runtime) -> None:
    cid = rt.new_id()
    rules = [DENY_ALL, rule(True, "c", 10, 200, "rw")]

    def edit(config: dict[str, Any]) -> None:
        config["linux"]["cgroupsPath"] = f"/{cid}"
        config["linux"]["resources"] = {"devices": rules}

    bundle = rt.bundle(["sleep", "1000"], edit)
    res = rt("create", "--bundle", bundle, cid)
    assert res.returncode == 0, res.stderr
    path = f"{DEVICES}/{cid}"
    child = os.path.join(path, "child")
    os.mkdir(child)  # makes a reset fail with EINVAL, so a passing update made none
    try:
        res = rt("update", "--pids-limit", "50", cid)
        assert res.returncode == 0, res.stderr
        with open(os.path.join(path, "devices.list")) as f:
            assert f.read().splitlines() == ["c 10:200 rw", *RUNC_DEFAULTS]
    finally:
        os.rmdir(child)

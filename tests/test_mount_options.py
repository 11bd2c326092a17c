"""How ``mounts[].options`` become mount flags, propagation, recursive attributes and data."""

from __future__ import annotations

import os

import pytest
from ocirt.foundation.mountinfo import MountInfo
from ocirt.runtime import mountopts, mounts, paths
from ocirt.runtime import syscalls as S


def test_runc_default_proc_and_dev_options() -> None:
    opts = mountopts.parse_options(["nosuid", "strictatime", "mode=755", "size=65536k"])
    assert opts.flags == S.MS_NOSUID | S.MS_STRICTATIME
    assert opts.clear == 0
    assert opts.data == "mode=755,size=65536k"
    assert opts.propagation == []


def test_every_flag_and_its_opposite() -> None:
    pairs = {
        "ro": "rw",
        "nosuid": "suid",
        "nodev": "dev",
        "noexec": "exec",
        "sync": "async",
        "mand": "nomand",
        "noatime": "atime",
        "nodiratime": "diratime",
        "relatime": "norelatime",
        "strictatime": "nostrictatime",
        "lazytime": "nolazytime",
        "nosymfollow": "symfollow",
    }
    for setter, clearer in pairs.items():
        flag = mountopts.FLAGS[setter][1]
        on = mountopts.parse_options([clearer, setter])
        assert (on.flags, on.clear) == (flag, 0), setter
        off = mountopts.parse_options([setter, clearer])
        assert (off.flags, off.clear) == (0, flag), clearer
    only_set = {"dirsync": S.MS_DIRSYNC, "remount": S.MS_REMOUNT, "bind": S.MS_BIND}
    for name, flag in only_set.items():
        assert mountopts.parse_options([name]).flags == flag


def test_bind_and_rbind() -> None:
    assert mountopts.parse_options(["bind", "ro"]).flags == S.MS_BIND | S.MS_RDONLY
    assert mountopts.parse_options(["rbind"]).flags == S.MS_BIND | S.MS_REC


def test_propagation_is_kept_in_order() -> None:
    opts = mountopts.parse_options(["rbind", "rprivate", "shared", "slave", "runbindable"])
    assert opts.propagation == [
        S.MS_PRIVATE | S.MS_REC,
        S.MS_SHARED,
        S.MS_SLAVE,
        S.MS_UNBINDABLE | S.MS_REC,
    ]
    assert opts.flags == S.MS_BIND | S.MS_REC
    assert opts.data == ""


def test_unknown_options_become_data_and_defaults_vanishes() -> None:
    opts = mountopts.parse_options(["defaults", "newinstance", "ptmxmode=0666", "ro", "gid=5"])
    assert opts.data == "newinstance,ptmxmode=0666,gid=5"
    assert opts.flags == S.MS_RDONLY


def test_recursive_attributes() -> None:
    opts = mountopts.parse_options(["rbind", "rro", "rnosuid", "rexec"])
    assert opts.attr_set == S.MOUNT_ATTR_RDONLY | S.MOUNT_ATTR_NOSUID
    assert opts.attr_clr == S.MOUNT_ATTR_NOEXEC
    assert opts.flags == S.MS_BIND | S.MS_REC
    flipped = mountopts.parse_options(["rro", "rrw"])
    assert (flipped.attr_set, flipped.attr_clr) == (0, S.MOUNT_ATTR_RDONLY)


def test_recursive_access_time_modes_clear_the_atime_field() -> None:
    noatime = mountopts.parse_options(["rnoatime"])
    assert noatime.attr_set == S.MOUNT_ATTR_NOATIME
    assert noatime.attr_clr == S.MOUNT_ATTR__ATIME
    relatime = mountopts.parse_options(["rrelatime"])
    assert (relatime.attr_set, relatime.attr_clr) == (0, S.MOUNT_ATTR__ATIME)
    nodiratime = mountopts.parse_options(["rnodiratime"])
    assert (nodiratime.attr_set, nodiratime.attr_clr) == (S.MOUNT_ATTR_NODIRATIME, 0)


def test_extensions_are_not_data() -> None:
    opts = mountopts.parse_options(["tmpcopyup", "idmap", "size=1m"])
    assert opts.copyup and opts.idmap
    assert opts.data == "size=1m"


def test_statvfs_flags_map_to_mount_flags() -> None:
    f_flag = os.ST_RDONLY | os.ST_NOSUID | os.ST_NODEV | os.ST_NOEXEC | os.ST_RELATIME
    expected = S.MS_RDONLY | S.MS_NOSUID | S.MS_NODEV | S.MS_NOEXEC | S.MS_RELATIME
    assert mountopts.statvfs_flags(f_flag) == expected
    assert mountopts.statvfs_flags(os.ST_NOATIME | os.ST_NODIRATIME) == S.MS_NOATIME | S.MS_NODIRATIME
    assert mountopts.statvfs_flags(0) == 0


def test_mountinfo_line_is_parsed_and_unescaped() -> None:
    line = (
        "36 35 98:0 /my\\040dir /mnt/a\\134b rw,noatime shared:1 master:2 - ext4 /dev/vda rw,errors=continue"
    )
    info = MountInfo(line)
    assert info.root == "/my dir"
    assert info.mountpoint == "/mnt/a\\b"
    assert info.optional == ["shared:1", "master:2"]
    assert info.fstype == "ext4"
    assert info.super_options == "rw,errors=continue"


def test_cgroup_controllers_from_super_options() -> None:
    def info(opts: str) -> MountInfo:
        return MountInfo(f"32 31 0:29 / /sys/fs/cgroup/x rw - cgroup cgroup {opts}")

    assert mounts.controllers(info("rw,cpu,cpuacct")) == "cpu,cpuacct"
    assert mounts.controllers(info("rw,xattr,name=systemd")) == "name=systemd"
    assert mounts.controllers(info("rw,cpuset,clone_children,release_agent=/x")) == "cpuset"


def test_containing_mount_prefers_the_deepest_and_latest() -> None:
    infos = [
        MountInfo("1 0 0:1 / / rw - ext4 a rw"),
        MountInfo("2 1 0:2 / /sys rw - sysfs b rw"),
        MountInfo("3 2 0:3 / /sys/fs/cgroup rw - tmpfs c rw"),
        MountInfo("4 3 0:4 / /sys/fs/cgroup rw - tmpfs d rw"),
    ]
    found = mounts.containing_mount("/sys/fs/cgroup/pids", infos)
    assert found is infos[3]
    assert mounts.containing_mount("/sysx", infos) is infos[0]


@pytest.mark.parametrize(
    ("path", "parts"),
    [("/a/b", ["a", "b"]), ("a//./b/", ["a", "b"]), ("/../x", ["..", "x"]), ("/", [])],
)
def test_split_keeps_dotdot_for_the_kernel(path: str, parts: list[str]) -> None:
    assert paths.split(path) == parts

"""``mounts[].options`` read as runc reads them: mount(2) flags to set and clear, propagation
changes applied after the mount, recursive attributes for mount_setattr(2), and anything else
passed to the filesystem as its data string. The tables are also what ``ocirt features``
lists."""

from __future__ import annotations

import os

from ocirt.runtime import syscalls

# name: (clears the flag, flag)
FLAGS: dict[str, tuple[bool, int]] = {
    "ro": (False, syscalls.MS_RDONLY),
    "rw": (True, syscalls.MS_RDONLY),
    "nosuid": (False, syscalls.MS_NOSUID),
    "suid": (True, syscalls.MS_NOSUID),
    "nodev": (False, syscalls.MS_NODEV),
    "dev": (True, syscalls.MS_NODEV),
    "noexec": (False, syscalls.MS_NOEXEC),
    "exec": (True, syscalls.MS_NOEXEC),
    "sync": (False, syscalls.MS_SYNCHRONOUS),
    "async": (True, syscalls.MS_SYNCHRONOUS),
    "dirsync": (False, syscalls.MS_DIRSYNC),
    "remount": (False, syscalls.MS_REMOUNT),
    "mand": (False, syscalls.MS_MANDLOCK),
    "nomand": (True, syscalls.MS_MANDLOCK),
    "atime": (True, syscalls.MS_NOATIME),
    "noatime": (False, syscalls.MS_NOATIME),
    "diratime": (True, syscalls.MS_NODIRATIME),
    "nodiratime": (False, syscalls.MS_NODIRATIME),
    "bind": (False, syscalls.MS_BIND),
    "rbind": (False, syscalls.MS_BIND | syscalls.MS_REC),
    "relatime": (False, syscalls.MS_RELATIME),
    "norelatime": (True, syscalls.MS_RELATIME),
    "strictatime": (False, syscalls.MS_STRICTATIME),
    "nostrictatime": (True, syscalls.MS_STRICTATIME),
    "lazytime": (False, syscalls.MS_LAZYTIME),
    "nolazytime": (True, syscalls.MS_LAZYTIME),
    "silent": (False, syscalls.MS_SILENT),
    "loud": (True, syscalls.MS_SILENT),
    "symfollow": (True, syscalls.MS_NOSYMFOLLOW),
    "nosymfollow": (False, syscalls.MS_NOSYMFOLLOW),
}
PROPAGATION: dict[str, int] = {
    "private": syscalls.MS_PRIVATE,
    "rprivate": syscalls.MS_PRIVATE | syscalls.MS_REC,
    "shared": syscalls.MS_SHARED,
    "rshared": syscalls.MS_SHARED | syscalls.MS_REC,
    "slave": syscalls.MS_SLAVE,
    "rslave": syscalls.MS_SLAVE | syscalls.MS_REC,
    "unbindable": syscalls.MS_UNBINDABLE,
    "runbindable": syscalls.MS_UNBINDABLE | syscalls.MS_REC,
}
# name: (clears the attribute, MOUNT_ATTR_*), applied to a whole mount tree
RECURSIVE: dict[str, tuple[bool, int]] = {
    "rro": (False, syscalls.MOUNT_ATTR_RDONLY),
    "rrw": (True, syscalls.MOUNT_ATTR_RDONLY),
    "rnosuid": (False, syscalls.MOUNT_ATTR_NOSUID),
    "rsuid": (True, syscalls.MOUNT_ATTR_NOSUID),
    "rnodev": (False, syscalls.MOUNT_ATTR_NODEV),
    "rdev": (True, syscalls.MOUNT_ATTR_NODEV),
    "rnoexec": (False, syscalls.MOUNT_ATTR_NOEXEC),
    "rexec": (True, syscalls.MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, syscalls.MOUNT_ATTR_NODIRATIME),
    "rdiratime": (True, syscalls.MOUNT_ATTR_NODIRATIME),
    "rrelatime": (False, syscalls.MOUNT_ATTR_RELATIME),
    "rnorelatime": (True, syscalls.MOUNT_ATTR_RELATIME),
    "rnoatime": (False, syscalls.MOUNT_ATTR_NOATIME),
    "ratime": (True, syscalls.MOUNT_ATTR_NOATIME),
    "rstrictatime": (False, syscalls.MOUNT_ATTR_STRICTATIME),
    "rnostrictatime": (True, syscalls.MOUNT_ATTR_STRICTATIME),
    "rnosymfollow": (False, syscalls.MOUNT_ATTR_NOSYMFOLLOW),
    "rsymfollow": (True, syscalls.MOUNT_ATTR_NOSYMFOLLOW),
}
# statvfs f_flag bits and the mount flags they report (ST_NOSYMFOLLOW is missing from os)
_STATVFS_FLAGS = (
    (os.ST_RDONLY, syscalls.MS_RDONLY),
    (os.ST_NOSUID, syscalls.MS_NOSUID),
    (os.ST_NODEV, syscalls.MS_NODEV),
    (os.ST_NOEXEC, syscalls.MS_NOEXEC),
    (os.ST_SYNCHRONOUS, syscalls.MS_SYNCHRONOUS),
    (os.ST_MANDLOCK, syscalls.MS_MANDLOCK),
    (os.ST_NOATIME, syscalls.MS_NOATIME),
    (os.ST_NODIRATIME, syscalls.MS_NODIRATIME),
    (os.ST_RELATIME, syscalls.MS_RELATIME),
    (0x2000, syscalls.MS_NOSYMFOLLOW),
)
# flags the kernel locks on mounts copied into a less privileged mount namespace
LOCKED_FLAGS = (
    syscalls.MS_RDONLY
    | syscalls.MS_NOSUID
    | syscalls.MS_NODEV
    | syscalls.MS_NOEXEC
    | syscalls.MS_NOATIME
    | syscalls.MS_NODIRATIME
    | syscalls.MS_RELATIME
)
ATIME_FLAGS = syscalls.MS_NOATIME | syscalls.MS_RELATIME | syscalls.MS_STRICTATIME
# what a plain bind mount ignores, so a remount must apply it
NOT_BIND_FLAGS = ~(syscalls.MS_BIND | syscalls.MS_REC | syscalls.MS_REMOUNT)
DEFAULT_FS_FLAGS = syscalls.MS_NOSUID | syscalls.MS_NODEV | syscalls.MS_NOEXEC


class MountOptions:
    """``flags`` to set and ``clear`` (for mount(2)), ``propagation`` changes in order,
    recursive ``attr_set``/``attr_clr`` for mount_setattr(2), filesystem ``data``."""

    __slots__ = ("attr_clr", "attr_set", "clear", "copyup", "data", "flags", "idmap", "propagation", "ridmap")

    def __init__(self) -> None:
        self.flags = 0
        self.clear = 0
        self.propagation: list[int] = []
        self.attr_set = 0
        self.attr_clr = 0
        self.data = ""
        self.copyup = False
        self.idmap = False
        self.ridmap = False  # the idmapping reaches every mount of an rbind, not the top one


def parse_options(options: list[str]) -> MountOptions:
    """runc's reading of ``mounts[].options``: later options win over earlier ones."""
    out = MountOptions()
    data = []
    for opt in options:
        if opt in FLAGS:
            clear, flag = FLAGS[opt]
            if clear:
                out.flags &= ~flag
                out.clear |= flag
            else:
                out.flags |= flag
                out.clear &= ~flag
        elif opt in PROPAGATION:
            out.propagation.append(PROPAGATION[opt])
        elif opt in RECURSIVE:
            _recursive(out, *RECURSIVE[opt])
        elif opt == "tmpcopyup":
            out.copyup = True
        elif opt in ("idmap", "ridmap"):
            out.idmap = True
            out.ridmap = opt == "ridmap"
        elif opt != "defaults":
            data.append(opt)
    out.data = ",".join(data)
    return out


def _recursive(out: MountOptions, clear: bool, attr: int) -> None:
    if clear:
        out.attr_clr |= attr
        out.attr_set &= ~attr
        return
    out.attr_set |= attr
    out.attr_clr &= ~attr
    if attr & syscalls.MOUNT_ATTR__ATIME == attr:
        # mount_setattr(2): an access-time mode is set only with MOUNT_ATTR__ATIME cleared
        out.attr_clr |= syscalls.MOUNT_ATTR__ATIME


def statvfs_flags(f_flag: int) -> int:
    """The MS_* flags a mount has, from ``os.statvfs(...).f_flag``."""
    flags = 0
    for st_bit, ms_bit in _STATVFS_FLAGS:
        if f_flag & st_bit:
            flags |= ms_bit
    return flags

"""``/proc/<pid>/mountinfo``, the kernel's mount table, read once for every layer.

The format is proc(5)'s: mount ID, parent ID, major:minor, root, mount point, per-mount
options, optional fields up to ``-``, then file system type, source and super-block
options. Paths and sources write space, tab, newline and backslash as ``\\ooo`` octal, so
`` - `` cannot occur inside a field and splits the line safely.
"""

from __future__ import annotations


class MountInfo:
    """One line, paths unescaped."""

    __slots__ = (
        "fstype",
        "mount_id",
        "mountpoint",
        "optional",
        "options",
        "parent_id",
        "root",
        "source",
        "super_options",
    )

    def __init__(self, line: str) -> None:
        head, _, tail = line.partition(" - ")
        fields = head.split(" ")
        self.mount_id = int(fields[0])
        self.parent_id = int(fields[1])
        self.root = unescape(fields[3])
        self.mountpoint = unescape(fields[4])
        self.options = fields[5]
        self.optional = fields[6:]
        rest = tail.split(" ")
        self.fstype = rest[0]
        self.source = unescape(rest[1]) if len(rest) > 1 else ""
        self.super_options = rest[2] if len(rest) > 2 else ""


def unescape(field: str) -> str:
    """The kernel's ``\\ooo`` octal escapes back to characters."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def read_mountinfo(pid: int | str = "self") -> list[MountInfo]:
    # only "\n" ends a line: the kernel leaves "\r" in a path unescaped
    with open(f"/proc/{pid}/mountinfo", encoding="utf-8", errors="surrogateescape", newline="\n") as f:
        return [MountInfo(line.rstrip("\n")) for line in f]

"""Capability sets of the container process, applied across the switch to its user.

The order is forced by the kernel: the bounding set can only shrink while we still hold
CAP_SETPCAP, and setresuid() to a non-root uid clears the permitted set unless KEEPCAPS
is on; ambient capabilities can only be raised once they are permitted and inheritable.
"""

from __future__ import annotations

from ocirt.runtime import syscalls
from ocirt.runtime.errors import SpecError

NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip
_NUMBERS = {name: i for i, name in enumerate(NAMES)}


def last_cap() -> int:
    """The kernel may know fewer capabilities than this table; never touch one it lacks."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return min(int(f.read()), len(NAMES) - 1)
    except OSError:
        return len(NAMES) - 1


def to_mask(names: list[str], field: str) -> int:
    mask = 0
    for i, name in enumerate(names):
        number = _NUMBERS.get(name)
        if number is None:
            raise SpecError(f"{field}[{i}]", f"unknown capability {name!r}")
        mask |= 1 << number
    return mask


class CapabilitySets:
    """Parsed once in the parent so that a bad name fails before anything is created."""

    __slots__ = ("ambient", "bounding", "effective", "inheritable", "permitted")

    def __init__(self, caps: dict[str, list[str]], field: str = "process.capabilities") -> None:
        self.bounding = to_mask(caps["bounding"], f"{field}.bounding")
        self.effective = to_mask(caps["effective"], f"{field}.effective")
        self.inheritable = to_mask(caps["inheritable"], f"{field}.inheritable")
        self.permitted = to_mask(caps["permitted"], f"{field}.permitted")
        self.ambient = to_mask(caps["ambient"], f"{field}.ambient")

    def check_host(self, field: str = "process.capabilities") -> None:
        """A capability missing from our own bounding set can never be granted: say which."""
        available = bounding_set()
        for set_name in ("effective", "permitted", "inheritable", "ambient"):
            missing = getattr(self, set_name) & ~available
            if missing:
                names = [NAMES[i] for i in range(len(NAMES)) if missing >> i & 1]
                raise SpecError(
                    f"{field}.{set_name}",
                    f"{', '.join(names)} not available on this host (not in ocirt's bounding set)",
                )

    def drop_bounding(self) -> None:
        for cap in range(last_cap() + 1):
            if not self.bounding >> cap & 1 and syscalls.prctl(syscalls.PR_CAPBSET_READ, cap):
                syscalls.prctl(syscalls.PR_CAPBSET_DROP, cap)

    def apply_after_setuid(self) -> None:
        syscalls.capset(self.effective, self.permitted, self.inheritable)
        syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_CLEAR_ALL)
        for cap in range(last_cap() + 1):
            if self.ambient >> cap & 1:
                syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_RAISE, cap)


def bounding_set() -> int:
    mask = 0
    for cap in range(last_cap() + 1):
        if syscalls.prctl(syscalls.PR_CAPBSET_READ, cap):
            mask |= 1 << cap
    return mask

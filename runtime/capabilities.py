"""Capability sets of the container process, applied across the switch to its user.

The order is forced by the kernel: the bounding set can only shrink while we still hold
CAP_SETPCAP, and setresuid() to a non-root uid clears the permitted set unless KEEPCAPS
is on; ambient capabilities can only be raised once they are permitted and inheritable.
"""

from __future__ import annotations

from ocirt.runtime import syscalls

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

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
_ORDER = ("bounding", "effective", "inheritable", "permitted", "ambient")


def last_cap() -> int:
    """The kernel may know fewer capabilities than this table; never touch one it lacks."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return min(int(f.read()), len(NAMES) - 1)
    except OSError:
        return len(NAMES) - 1


class CapabilitySets:
    """Parsed once in the parent, trimmed to what the kernel will grant. A name it does not
    know or a capability it would refuse is a warning, the rest is applied: config.md (since
    1.1.0) says runtimes SHOULD NOT fail there, and runc's own ``spec`` lists ambient
    capabilities without inheritable ones, which the kernel cannot raise."""

    __slots__ = ("ambient", "bounding", "effective", "inheritable", "permitted")

    def __init__(
        self, caps: dict[str, list[str]], warn: Callable[[str], None], field: str = "process.capabilities"
    ) -> None:
        available = bounding_set()
        masks = {key: _known_mask(caps[key], f"{field}.{key}", warn) for key in _ORDER}
        for key in _ORDER:
            _keep(masks, key, available, "not in ocirt's own bounding set", field, warn)
        _keep(masks, "inheritable", masks["bounding"], f"not in {field}.bounding", field, warn)
        _keep(masks, "effective", masks["permitted"], f"not in {field}.permitted", field, warn)
        _keep(masks, "ambient", masks["permitted"], f"not in {field}.permitted", field, warn)
        _keep(masks, "ambient", masks["inheritable"], f"not in {field}.inheritable", field, warn)
        self.bounding, self.effective = masks["bounding"], masks["effective"]
        self.inheritable, self.permitted = masks["inheritable"], masks["permitted"]
        self.ambient = masks["ambient"]

    def names(self) -> dict[str, list[str]]:
        """The sets as granted, in config.json's form (``exec`` hands them to its child)."""
        return {key: _names(getattr(self, key)) for key in _ORDER}

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


def _known_mask(names: list[str], field: str, warn: Callable[[str], None]) -> int:
    mask, top, unknown = 0, last_cap(), []
    for name in names:
        number = _NUMBERS.get(name)
        if number is None or number > top:
            unknown.append(name)
        else:
            mask |= 1 << number
    if unknown:
        warn(f"{field}: ignoring capabilities this kernel does not know: {', '.join(unknown)}")
    return mask


def _keep(
    masks: dict[str, int], key: str, allowed: int, why: str, field: str, warn: Callable[[str], None]
) -> None:
    """Leave in ``masks[key]`` only what ``allowed`` has; warn about what goes."""
    dropped = masks[key] & ~allowed
    if dropped:
        warn(f"{field}.{key}: ignoring {', '.join(_names(dropped))}: cannot be granted ({why})")
        masks[key] &= allowed


def _names(mask: int) -> list[str]:
    return [NAMES[i] for i in range(len(NAMES)) if mask >> i & 1]

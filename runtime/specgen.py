"""The ``config.json`` that ``ocirt spec`` writes: runc's ``runc spec`` example, field for field.

Keys are inserted in the order of the runtime-spec's Go structs, so the file reads like
runc's and tools that diff the two see only the intended differences (``ociVersion`` and
``hostname``). Pure functions of their arguments: the caller supplies ids and writes files.
"""

from __future__ import annotations

from ocirt.specs.config import SPEC_VERSION

DEFAULT_CAPS = ("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")
MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
    "/sys/devices/virtual/tpm",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
_ROOTLESS_SYS = {
    "destination": "/sys",
    "type": "none",
    "source": "/sys",
    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
}

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _mount(destination: str, kind: str, source: str, *options: str) -> dict[str, Any]:
    mount: dict[str, Any] = {"destination": destination, "type": kind, "source": source}
    if options:
        mount["options"] = list(options)
    return mount


def default_spec() -> dict[str, Any]:
    """A fresh document each call, so callers may edit it."""
    return {
        "ociVersion": SPEC_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": list(DEFAULT_CAPS),
                "effective": list(DEFAULT_CAPS),
                "permitted": list(DEFAULT_CAPS),
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "ocirt",
        "mounts": [
            _mount("/proc", "proc", "proc"),
            _mount("/dev", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
            _mount(
                "/dev/pts",
                "devpts",
                "devpts",
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ),
            _mount("/dev/shm", "tmpfs", "shm", "nosuid", "noexec", "nodev", "mode=1777", "size=65536k"),
            _mount("/dev/mqueue", "mqueue", "mqueue", "nosuid", "noexec", "nodev"),
            _mount("/sys", "sysfs", "sysfs", "nosuid", "noexec", "nodev", "ro"),
            _mount("/sys/fs/cgroup", "cgroup", "cgroup", "nosuid", "noexec", "nodev", "relatime", "ro"),
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
    }


def _rootless_mount(mount: dict[str, Any]) -> dict[str, Any]:
    """sysfs cannot be mounted from a user namespace that does not own the network namespace,
    and uid=/gid= options name ids the single-id mapping does not contain."""
    if mount["destination"].rstrip("/") == "/sys":
        return dict(_ROOTLESS_SYS, options=list(_ROOTLESS_SYS["options"]))
    out = {k: v for k, v in mount.items() if k != "options"}
    options = [o for o in mount.get("options", []) if not o.startswith(("uid=", "gid="))]
    if options:
        out["options"] = options
    return out


def rootless(spec: dict[str, Any], euid: int, egid: int) -> dict[str, Any]:
    """runc's ``spec --rootless``: a user namespace mapping root to ``euid``/``egid``, the host's
    network, no cgroup resources. Returns a new document; ``spec`` is left as it was."""
    linux = {k: v for k, v in spec.get("linux", {}).items() if k != "resources"}
    kept = [ns for ns in linux.get("namespaces", []) if ns["type"] not in ("network", "user")]
    linux = {
        "uidMappings": [{"containerID": 0, "hostID": euid, "size": 1}],
        "gidMappings": [{"containerID": 0, "hostID": egid, "size": 1}],
        **linux,
        "namespaces": [*kept, {"type": "user"}],
    }
    mounts = [_rootless_mount(m) for m in spec.get("mounts", [])]
    return {**spec, "mounts": mounts, "linux": linux}

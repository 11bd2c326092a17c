"""config-linux.md Devices, Default Devices and the device allowlist (cgroup devices)."""

from __future__ import annotations

from typing import Any

from ocirt.conformance.harness import Context
from ocirt.conformance.probe import probe, refused

CL = "config-linux.md"
DEFAULTS = {
    "/dev/null": "1:3",
    "/dev/zero": "1:5",
    "/dev/full": "1:7",
    "/dev/random": "1:8",
    "/dev/urandom": "1:9",
    "/dev/tty": "5:0",
}
STAT = "stat -L -c '%F %t:%T' {path} | sed 's/character special file/c/'"


def _hex(pair: str) -> str:
    major, minor = pair.split(":")
    return f"{int(major):x}:{int(minor):x}"


probe(
    "devices.default",
    CL,
    "Default Devices",
    "; ".join(STAT.format(path=p) for p in DEFAULTS),
    "\n".join(f"c {_hex(v)}" for v in DEFAULTS.values()),
    doc="The runtime MUST supply /dev/null, zero, full, random, urandom and tty as these devices.",
)
probe(
    "devices.default-usable",
    CL,
    "Default Devices",
    "echo x > /dev/null && head -c 4 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c",
    "4\n4",
    doc="The default devices work: writable null, readable zero and urandom.",
)
probe(
    "devices.ptmx",
    CL,
    "Default Devices",
    "stat -L -c %d:%i /dev/ptmx /dev/pts/ptmx | uniq | wc -l",
    "1",
    doc="/dev/ptmx is a symlink to (or a bind mount of) the container's /dev/pts/ptmx.",
)


def _dev(**extra: Any) -> Any:
    def edit(cfg: dict[str, Any], ctx: Context) -> None:
        entry = {
            "path": "/dev/mine",
            "type": "c",
            "major": 1,
            "minor": 3,
            "fileMode": 0o620,
            "uid": 5,
            "gid": 6,
        }
        entry.update(extra)
        cfg["linux"]["devices"] = [entry]
        cfg["linux"].setdefault("resources", {})["devices"] = [
            {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
        ]

    return edit


probe(
    "devices.create",
    CL,
    "Devices",
    "stat -c '%F %t:%T %a %u %g' /dev/mine",
    "character special file 1:3 620 5 6",
    _dev(),
    doc="devices lists devices that MUST be available: type, numbers, fileMode, uid and gid.",
)
probe(
    "devices.nested-path",
    CL,
    "Devices",
    "stat -c '%t:%T' /dev/sub/dir/mine",
    "1:3",
    _dev(path="/dev/sub/dir/mine"),
    doc="A device in a subdirectory of /dev gets its parents made.",
)
probe(
    "devices.outside-dev",
    CL,
    "Devices",
    "stat -c '%F %t:%T' /opt/devs/mine",
    "character special file 1:3",
    _dev(path="/opt/devs/mine"),
    doc="The path MAY be anywhere in the container filesystem, notably outside of /dev.",
)
probe(
    "devices.trailing-slash",
    CL,
    "Devices",
    "stat -c '%F %t:%T' /dev/mine",
    "character special file 1:3",
    _dev(path="/dev/mine/"),
    doc="A path with a trailing slash names the same device (runc cleans the path).",
)
probe(
    "devices.fifo",
    CL,
    "Devices",
    "stat -c %F /dev/pipe",
    "fifo",
    lambda cfg, ctx: cfg["linux"].__setitem__("devices", [{"path": "/dev/pipe", "type": "p"}]),
    doc="type p: a FIFO, needing no numbers.",
)


def _conflict(cfg: dict[str, Any], ctx: Context) -> None:
    """/dev/null exists after the default devices; asking for it as 1:5 cannot be honoured."""
    cfg["linux"]["devices"] = [{"path": "/etc/passwd", "type": "c", "major": 1, "minor": 5}]


refused(
    "devices.path-conflict",
    CL,
    "Devices",
    _conflict,
    doc="If a file already exists at path that does not match the requested device, the runtime "
    "MUST generate an error. runc 1.1.5 and crun 1.8 accept it.",
)


# /dev/kmsg (1:11) is in no runtime's default allowlist, and opening it write-only needs no
# privilege and writes nothing: what decides is the devices cgroup alone.
KMSG = {"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o600}
OPEN_KMSG = "( : > /dev/kmsg ) 2>/dev/null && echo opened || echo denied"


def _rules(*rules: dict[str, Any]) -> Any:
    def edit(cfg: dict[str, Any], ctx: Context) -> None:
        cfg["linux"]["devices"] = [KMSG]
        cfg["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"}, *rules]}

    return edit


_ALLOW = {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "rw"}
_DENY_W = {"allow": False, "type": "c", "major": 1, "minor": 11, "access": "w"}
probe(
    "devices.allowlist.deny",
    CL,
    "Device allowlist",
    OPEN_KMSG,
    "denied",
    _rules(),
    doc="A device the allowlist denies cannot be opened, though its node exists.",
)
probe(
    "devices.allowlist.allow",
    CL,
    "Device allowlist",
    OPEN_KMSG,
    "opened",
    _rules(_ALLOW),
    doc="An allow entry after deny-all opens that one device.",
)
probe(
    "devices.allowlist.order",
    CL,
    "Device allowlist",
    OPEN_KMSG,
    "denied",
    _rules(_ALLOW, _DENY_W),
    doc="The runtime MUST apply entries in the listed order: a later deny of w wins.",
)

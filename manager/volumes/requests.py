"""``-v`` and ``--mount`` as docker spells them, parsed into one ``MountRequest`` type (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ocirt.manager.containers import units
from ocirt.manager.errors import ManagerError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_BIND_OPTS = ("ro", "rw", "z", "Z", "private", "rprivate", "shared", "rshared", "slave", "rslave", "nocopy")


@dataclass
class MountRequest:
    kind: str  # bind | volume | tmpfs
    target: str
    source: str = ""  # host path, volume name ("" = anonymous), unused for tmpfs
    readonly: bool = False
    options: list[str] = field(default_factory=list)
    copy_up: bool = True


def parse_volume(text: str) -> MountRequest:
    """``-v``: ``/host:/ctr[:opts]``, ``name:/ctr[:opts]`` or ``/ctr`` (anonymous)."""
    parts = text.split(":")
    if len(parts) == 1:
        return MountRequest("volume", _target(parts[0], "-v"))
    if len(parts) > 3:
        raise ManagerError(f"-v: invalid volume {text!r} (SOURCE:TARGET[:OPTIONS])")
    source, target = parts[0], _target(parts[1], "-v")
    opts = parts[2].split(",") if len(parts) == 3 else []
    bad = [o for o in opts if o not in _BIND_OPTS]
    if bad:
        raise ManagerError(f"-v: unknown option {bad[0]!r} in {text!r}")
    req = MountRequest("bind" if source.startswith("/") else "volume", target, source, "ro" in opts)
    req.copy_up = "nocopy" not in opts
    req.options = [o for o in opts if o in ("private", "rprivate", "shared", "rshared", "slave", "rslave")]
    if req.kind == "volume":
        check_name(source, "-v")
    return req


def parse_mount(text: str) -> MountRequest:
    """``--mount type=bind|volume|tmpfs,source=,target=[,readonly][,tmpfs-size=][,tmpfs-mode=]``."""
    fields: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        fields[key.strip()] = value if sep else "true"
    kind = fields.pop("type", "volume")
    if kind not in ("bind", "volume", "tmpfs"):
        raise ManagerError(f"--mount: unknown type {kind!r} (bind, volume, tmpfs)")
    target = fields.pop("target", None) or fields.pop("destination", None) or fields.pop("dst", None)
    if target is None:
        raise ManagerError(f"--mount: {text!r} has no target")
    source = fields.pop("source", None) or fields.pop("src", None) or ""
    readonly = fields.pop("readonly", fields.pop("ro", "false")) in ("true", "1")
    req = MountRequest(kind, _target(target, "--mount"), source, readonly)
    _mount_extras(req, fields, text)
    return req


def _mount_extras(req: MountRequest, fields: dict[str, str], text: str) -> None:
    if req.kind == "bind" and not req.source.startswith("/"):
        raise ManagerError(f"--mount: bind source must be an absolute path in {text!r}")
    if req.kind == "volume" and req.source:
        check_name(req.source, "--mount")
    if req.kind == "tmpfs":
        if "tmpfs-size" in fields:
            req.options.append(units.tmpfs_option(f"size={fields.pop('tmpfs-size')}", "--mount tmpfs-size"))
        if "tmpfs-mode" in fields:
            req.options.append(units.tmpfs_option(f"mode={fields.pop('tmpfs-mode')}", "--mount tmpfs-mode"))
    if fields.pop("volume-nocopy", "false") == "true":
        req.copy_up = False
    if "bind-propagation" in fields:
        req.options.append(fields.pop("bind-propagation"))
    if fields:
        raise ManagerError(f"--mount: unknown field {next(iter(fields))!r} in {text!r}")


def parse_volumes_from(text: str) -> tuple[str, str | None]:
    """``NAME[:ro|rw]`` → (name, mode or None to keep each mount's own)."""
    name, _, mode = text.partition(":")
    if mode not in ("", "ro", "rw"):
        raise ManagerError(f"--volumes-from: unknown mode {mode!r} in {text!r}")
    return name, mode or None


def check_name(name: str, flag: str) -> None:
    if not NAME_RE.match(name):
        raise ManagerError(f"{flag}: invalid volume name {name!r} ([A-Za-z0-9][A-Za-z0-9_.-]*)")


def _target(path: str, flag: str) -> str:
    if not path.startswith("/"):
        raise ManagerError(f"{flag}: mount target {path!r} is not an absolute path")
    return "/" + "/".join(p for p in path.split("/") if p and p != ".")

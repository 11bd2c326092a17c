"""From an image config to the ``config.json`` of a runtime bundle.

``ProcessDefaults`` is what the image says about its process (docker's rules: ``Entrypoint``
then ``Cmd``, a command given at run time replacing ``Cmd``); ``resolve_user`` turns a
``User`` such as ``www:staff`` into ids by reading the image's own ``/etc/passwd`` and
``/etc/group`` through ``RESOLVE_IN_ROOT``, so a symlinked ``/etc/passwd`` cannot point at the
host's; ``runtime_config`` writes the whole document for ``ocirt``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ocirt.manager.errors import ManagerError

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# docker's default capability set (moby's oci/caps/defaults.go)
DOCKER_CAPS = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)


@dataclass(frozen=True)
class ProcessDefaults:
    """The image config's process settings, with docker's defaults filled in."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = (DEFAULT_PATH,)
    cwd: str = "/"
    user: str = ""
    stop_signal: str = "SIGTERM"
    exposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)

    def args(self, command: list[str] | None = None, entrypoint: list[str] | None = None) -> list[str]:
        """``docker run``'s rule: a given command replaces ``Cmd``, a given entrypoint
        replaces ``Entrypoint`` and drops ``Cmd``."""
        ep = list(self.entrypoint) if entrypoint is None else entrypoint
        cmd = list(command) if command else ([] if entrypoint is not None else list(self.cmd))
        out = ep + cmd
        if not out:
            raise ManagerError("no command given and the image has neither Entrypoint nor Cmd")
        return out


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return ("/bin/sh", "-c", value)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ManagerError(f"image config {where}: must be a list of strings")
    return tuple(value)


def process_defaults(image_config: dict[str, Any]) -> ProcessDefaults:
    """``ProcessDefaults`` from an OCI image config (its ``config`` object may be absent)."""
    cfg = image_config.get("config") or {}
    if not isinstance(cfg, dict):
        raise ManagerError("image config: config must be an object")
    env = _strings(cfg.get("Env"), "config.Env")
    if not any(e.startswith("PATH=") for e in env):
        env = (DEFAULT_PATH, *env)
    labels = cfg.get("Labels") or {}
    return ProcessDefaults(
        entrypoint=_strings(cfg.get("Entrypoint"), "config.Entrypoint"),
        cmd=_strings(cfg.get("Cmd"), "config.Cmd"),
        env=env,
        cwd=str(cfg.get("WorkingDir") or "/"),
        user=str(cfg.get("User") or ""),
        stop_signal=str(cfg.get("StopSignal") or "SIGTERM"),
        exposed_ports=tuple(sorted(cfg.get("ExposedPorts") or {})),
        volumes=tuple(sorted(cfg.get("Volumes") or {})),
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
    )


def _read_in_root(rootfs: str, path: str) -> list[list[str]]:
    """Colon-separated records of a file inside ``rootfs``; none if it is missing."""
    from ocirt.runtime import paths

    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = paths.open_in_root(root_fd, path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return []
    finally:
        os.close(root_fd)
    with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as f:
        text = f.read(4 << 20)
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def resolve_user(rootfs: str, spec: str) -> tuple[int, int, list[int]]:
    """``uid, gid, additional gids`` for a docker ``--user``/``User`` value: ``name``,
    ``uid``, ``name:group``, ``uid:gid`` and mixes. Unknown names are an error; unknown
    numbers are taken as they are (gid defaults to the user's, else 0). Additional gids are
    the groups listing the user, unless a group is given explicitly."""
    user, _, group = (spec or "0").partition(":")
    passwd = [r for r in _read_in_root(rootfs, "/etc/passwd") if len(r) >= 4]
    groups = [r for r in _read_in_root(rootfs, "/etc/group") if len(r) >= 3]
    entry = next((r for r in passwd if r[0] == user or (user.isdigit() and r[2] == user)), None)
    if entry is None and not user.isdigit():
        raise ManagerError(f"user {user!r}: no such user in the image's /etc/passwd")
    uid = int(user) if user.isdigit() else int(entry[2]) if entry else 0
    gid = int(entry[3]) if entry and entry[3].isdigit() else 0
    if group:
        hit = next((r for r in groups if r[0] == group or (group.isdigit() and r[2] == group)), None)
        if hit is None and not group.isdigit():
            raise ManagerError(f"group {group!r}: no such group in the image's /etc/group")
        gid = int(group) if group.isdigit() else int(hit[2]) if hit else 0
    # supplementary groups only in the implicit form, as runc's GetExecUser does
    name = entry[0] if entry and not group else None
    extra: list[int] = []
    for r in groups:
        members = r[3].split(",") if len(r) > 3 else []
        if name is not None and name in members and r[2].isdigit() and int(r[2]) not in extra:
            extra.append(int(r[2]))
    return uid, gid, extra


def group_ids(rootfs: str, groups: list[str]) -> list[int]:
    """``--group-add`` values as gids: a number as it is, a name from the image's /etc/group."""
    table = [r for r in _read_in_root(rootfs, "/etc/group") if len(r) >= 3] if groups else []
    out = []
    for name in groups:
        hit = next((r for r in table if r[0] == name and r[2].isdigit()), None)
        if hit is None and not name.isdigit():
            raise ManagerError(f"--group-add: no group {name!r} in the image's /etc/group")
        out.append(int(name) if name.isdigit() else int(hit[2]) if hit else 0)
    return out


def merge_env(image_env: tuple[str, ...] | list[str], extra: list[str]) -> list[str]:
    """Image env overridden key by key by ``extra`` (``KEY=value`` strings), order kept."""
    out: dict[str, str] = {}
    for item in (*image_env, *extra):
        key, _, _ = item.partition("=")
        out[key] = item
    return list(out.values())


def runtime_config(
    defaults: ProcessDefaults,
    rootfs: str,
    *,
    command: list[str] | None = None,
    entrypoint: list[str] | None = None,
    env: list[str] | None = None,
    cwd: str | None = None,
    user: str | None = None,
    hostname: str = "ocirt",
    terminal: bool = False,
    readonly: bool = False,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A complete ``config.json`` for ``ocirt`` running the image's process over ``rootfs``
    (absolute, or relative to the bundle): runc's default spec with docker's capabilities."""
    from ocirt.runtime.specgen import default_spec

    spec = default_spec()
    uid, gid, extra = resolve_user(
        rootfs if os.path.isabs(rootfs) else os.path.abspath(rootfs), user or defaults.user
    )
    process = spec["process"]
    process["terminal"] = terminal
    process["args"] = defaults.args(command, entrypoint)
    process["env"] = merge_env(defaults.env, [f"HOSTNAME={hostname}", *(env or [])])
    process["cwd"] = cwd or defaults.cwd
    process["user"] = {"uid": uid, "gid": gid, **({"additionalGids": extra} if extra else {})}
    caps = list(DOCKER_CAPS)
    process["capabilities"] = {"bounding": caps, "effective": caps, "permitted": list(caps)}
    process["noNewPrivileges"] = False
    spec["root"] = {"path": rootfs, "readonly": readonly}
    spec["hostname"] = hostname
    spec["annotations"] = {
        **defaults.labels,
        "org.opencontainers.image.stopSignal": defaults.stop_signal,
        **(annotations or {}),
    }
    return spec

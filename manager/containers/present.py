"""What ``ps`` and ``inspect`` print: docker's shapes, built from the record (pure)."""

from __future__ import annotations

import json
import time
from typing import Any

from ocirt.foundation import timefmt
from ocirt.manager.containers import status
from ocirt.manager.containers.state import ContainerState
from ocirt.manager.containers.store import Container
from ocirt.manager.gotemplate import Record
from ocirt.manager.volumes import service as volumes


def _iso(t: float | None) -> str:
    if t is None:
        return "0001-01-01T00:00:00Z"
    return timefmt.rfc3339nano_of(t)


def ports_text(c: Container) -> str:
    return ", ".join(
        f"{p['host_ip'] or '0.0.0.0'}:{p['host_port']}->{p['container_port']}/{p['protocol']}"
        for p in ports(c)
    )


def ports(c: Container) -> list[dict[str, Any]]:
    published: list[dict[str, Any]] = (c.plan.get("network") or {}).get("ports", [])
    return published


def command_of(c: Container) -> str:
    return " ".join(c.plan.get("args", []))


def ps_row(c: Container) -> dict[str, Any]:
    return {
        "ID": c.id,
        "Names": c.name,
        "Image": c.image,
        "ImageID": c.image_id,
        "Command": command_of(c),
        "Created": int(c.created),
        "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(c.created)),
        "State": c.state,
        "Status": status.describe(c),
        "ExitCode": c.exit_code,
        "Ports": ports_text(c),
        "Labels": c.options.labels,
        "Pid": c.pid,
    }


def mounts_of(root: str, c: Container) -> list[dict[str, Any]]:
    out = []
    for m in c.plan.get("mounts", []):
        entry = {"Type": m["type"], "Destination": m["destination"], "RW": not m["readonly"]}
        if m["type"] == "volume":
            entry.update(Name=m["source"], Source=volumes.volume_dir(root, m["source"]), Driver="local")
        elif m["type"] == "bind":
            entry["Source"] = m["source"]
        out.append(entry)
    return out


def inspect(root: str, c: Container) -> dict[str, Any]:
    opts = c.options
    args = c.plan.get("args") or []
    net = c.plan.get("network") or {}
    return {
        "Id": c.id,
        "Name": c.name,
        "Created": _iso(c.created),
        "Path": args[0] if args else "",
        "Args": args[1:],
        "State": {
            "Status": c.state,
            "Running": c.state.live,
            "Paused": c.state is ContainerState.PAUSED,
            "OOMKilled": c.oom_killed,
            "Pid": c.pid,
            "ExitCode": c.exit_code,
            "StartedAt": _iso(c.started_at),
            "FinishedAt": _iso(c.finished_at),
        },
        "Image": c.image_id,
        "ImageName": c.image,
        "RestartCount": c.restart_count,
        "Rootfs": c.plan.get("rootfs"),
        "Mounts": mounts_of(root, c),
        "Config": {
            "Hostname": opts.hostname or c.id[:12],
            "Env": opts.env,
            "Cmd": opts.command,
            "Entrypoint": opts.entrypoint,
            "WorkingDir": opts.workdir or "",
            "User": opts.user or "",
            "Labels": opts.labels,
            "StopSignal": c.plan.get("stop_signal"),
            "Tty": opts.tty,
            "OpenStdin": opts.interactive,
        },
        "HostConfig": {
            "RestartPolicy": {"Name": opts.restart, "MaximumRetryCount": opts.restart_max},
            "AutoRemove": opts.auto_remove,
            "NetworkMode": opts.network,
            "Privileged": opts.privileged,
            "ReadonlyRootfs": opts.read_only,
            "CapAdd": opts.cap_add,
            "CapDrop": opts.cap_drop,
            "LogConfig": {"Type": opts.log_driver, "Config": opts.log_opts},
            "Resources": vars(opts.resources),
            "Init": opts.init,
        },
        "NetworkSettings": {
            "Networks": net.get("networks", {}),
            "Ports": ports(c),
            "SandboxKey": net.get("netns"),
        },
        "LogPath": c.plan.get("log_path"),
    }


# docker's column names for ``ps --format 'table ...'`` (cli/command/formatter/container.go)
PS_HEADERS = {
    "ID": "CONTAINER ID",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED",
    "Ports": "PORTS",
    "State": "STATE",
    "Status": "STATUS",
    "Size": "SIZE",
    "Names": "NAMES",
    "Labels": "LABELS",
    "Label": "LABEL",
    "Mounts": "MOUNTS",
    "LocalVolumes": "LOCAL VOLUMES",
    "Networks": "NETWORKS",
}


def _ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def ps_context(c: Container, trunc: bool = True) -> Record:
    """What ``ps --format`` templates see: docker's container context, every field a string
    (``{{json .}}`` prints them in this, alphabetical, order), ``.Label KEY`` a method."""
    args = c.plan.get("args") or []
    command = _ellipsis(" ".join(args), 20) if trunc else " ".join(args)
    names = [m.get("source", "") for m in c.plan.get("mounts", []) if m["type"] in ("volume", "bind")]
    local = sum(1 for m in c.plan.get("mounts", []) if m["type"] == "volume")
    labels = c.options.labels
    fields: dict[str, Any] = {
        "Command": json.dumps(command, ensure_ascii=False),
        "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(c.created)),
        "ID": c.id[:12] if trunc else c.id,
        "Image": c.image,
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "LocalVolumes": str(local),
        "Mounts": ",".join(_ellipsis(n, 15) if trunc else n for n in names),
        "Names": c.name,
        "Networks": ",".join(sorted(network_names(c))),
        "Ports": ports_text(c),
        "RunningFor": f"{status.ago(c.created)} ago",
        "Size": "0B",
        "State": c.state,
        "Status": status.describe(c),
        "Label": lambda key: labels.get(key, ""),
    }
    return Record("*formatter.ContainerContext", fields)


def network_names(c: Container) -> list[str]:
    """The networks a container is on, by name; host and none count as docker's networks."""
    joined = (c.plan.get("network") or {}).get("networks") or {}
    return list(joined) or [c.options.network or "bridge"]

"""What ``ps`` and ``inspect`` print: docker's shapes, built from the record (pure)."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ocirt.foundation import timefmt
from ocirt.manager.containers import status
from ocirt.manager.containers.state import ContainerState
from ocirt.manager.containers.store import Container
from ocirt.manager.gotemplate import Record
from ocirt.manager.images import reference
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
    """docker's MountPoint list: volumes by name and driver, binds with their propagation."""
    out = []
    for m in c.plan.get("mounts", []):
        rw = not m["readonly"]
        if m["type"] == "volume":
            source = volumes.volume_dir(root, m["source"])
            out.append(_mount("volume", source, m["destination"], rw, name=m["source"], driver="local"))
        elif m["type"] == "bind":
            out.append(_mount("bind", m["source"], m["destination"], rw, propagation="rprivate"))
        else:
            out.append(_mount(m["type"], m.get("source") or "", m["destination"], rw))
    return out


def _mount(
    kind: str, source: str, dest: str, rw: bool, name: str = "", driver: str = "", propagation: str = ""
) -> dict[str, Any]:
    head: dict[str, Any] = {"Type": kind, **({"Name": name} if name else {})}
    tail = {"Mode": "", "RW": rw, "Propagation": propagation}
    return {**head, "Source": source, "Destination": dest, **({"Driver": driver} if driver else {}), **tail}


def inspect(
    root: str, c: Container, image: dict[str, Any], networks: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """``docker inspect CONTAINER`` (Engine API v1.41 ContainerJSON), from the record, the
    image config (Config holds the merged values) and the networks the container is on
    (by name: their ``Id``, ``Gateway`` and ``Subnet``)."""
    args = c.plan.get("args") or []
    container_dir = os.path.dirname(c.plan.get("log_path") or "")
    return {
        "Id": c.id,
        "Created": _iso(c.created),
        "Path": args[0] if args else "",
        "Args": args[1:],
        "State": state_of(c) | _health(c),
        "Image": c.image_id,
        "ResolvConfPath": os.path.join(container_dir, "resolv.conf") if container_dir else "",
        "HostnamePath": os.path.join(container_dir, "hostname") if container_dir else "",
        "HostsPath": os.path.join(container_dir, "hosts") if container_dir else "",
        "LogPath": c.plan.get("log_path") or "",
        "Name": "/" + c.name,
        "RestartCount": c.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": host_config(c),
        "GraphDriver": {"Data": {"MergedDir": c.plan.get("rootfs") or ""}, "Name": "overlay2"},
        "Mounts": mounts_of(root, c),
        "Config": config_of(c, image),
        "NetworkSettings": network_settings(c, networks),
    }


def state_of(c: Container) -> dict[str, Any]:
    """docker's ContainerState: ExitCode 0 until there is one, zero times as Go's zero time.
    An exit nobody saw (the monitor died) is docker's 255 with the reason in Error."""
    unknown = c.state is ContainerState.EXITED and c.exit_code is None
    return {
        "Status": str(c.state),
        "Running": c.state.live,
        "Paused": c.state is ContainerState.PAUSED,
        "Restarting": c.state is ContainerState.RESTARTING,
        "OOMKilled": c.oom_killed,
        "Dead": str(c.state) == "dead",
        "Pid": c.pid if c.state.live else 0,
        "ExitCode": 255 if unknown else c.exit_code or 0,
        "Error": "exit status unknown: the container's monitor was gone when it exited" if unknown else "",
        "StartedAt": _iso(c.started_at),
        "FinishedAt": _iso(c.finished_at),
    }


def _health(c: Container) -> dict[str, Any]:
    from ocirt.manager.containers import health

    doc = health.state(c)
    return {} if doc is None else {"Health": doc}


def config_of(c: Container, image: dict[str, Any]) -> dict[str, Any]:
    """docker's Config: the user's flags merged over the image's config, as the process sees them."""
    opts = c.options
    img = image.get("config") or {}
    env = _merged_env(list(img.get("Env") or []), opts.env)
    exposed: dict[str, Any] = {key: {} for key in _ports_map(c)}
    out: dict[str, Any] = {
        "Hostname": opts.hostname or c.id[:12],
        "Domainname": opts.domainname or "",
        "User": opts.user if opts.user is not None else img.get("User") or "",
        "AttachStdin": opts.interactive,
        "AttachStdout": True,
        "AttachStderr": True,
        **({"ExposedPorts": exposed} if exposed else {}),
        "Tty": opts.tty,
        "OpenStdin": opts.interactive,
        "StdinOnce": opts.interactive,
        "Env": env,
        "Cmd": opts.command or (None if opts.entrypoint is not None else img.get("Cmd")),
        "Image": c.image,
        "Volumes": img.get("Volumes") or None,
        "WorkingDir": opts.workdir or img.get("WorkingDir") or "",
        "Entrypoint": opts.entrypoint if opts.entrypoint is not None else img.get("Entrypoint"),
        "OnBuild": img.get("OnBuild"),
        "Labels": {**(img.get("Labels") or {}), **opts.labels},
    }
    if c.plan.get("stop_signal") and c.plan.get("stop_signal") != "SIGTERM":
        out["StopSignal"] = c.plan["stop_signal"]
    if opts.stop_timeout is not None:
        out["StopTimeout"] = opts.stop_timeout
    from ocirt.manager.containers.health import merged

    if healthcheck := merged(img, opts.healthcheck):
        out["Healthcheck"] = healthcheck
    return out


def _merged_env(image_env: list[str], user_env: list[str]) -> list[str]:
    """The user's variables, then the image's the user did not set (docker's merge order)."""
    names = {e.partition("=")[0] for e in user_env}
    return [*user_env, *(e for e in image_env if e.partition("=")[0] not in names)]


def host_config(c: Container) -> dict[str, Any]:
    """docker's HostConfig with every key, docker's zero values where no flag set one."""
    opts = c.options
    r = opts.resources
    return {
        "Binds": [v for v in opts.volumes if v.partition(":")[0].startswith("/")] or None,
        "ContainerIDFile": opts.cidfile or "",
        "LogConfig": {"Type": opts.log_driver, "Config": dict(opts.log_opts)},
        "NetworkMode": "default" if opts.network == "bridge" else opts.network,
        "PortBindings": _port_bindings(c),
        "RestartPolicy": {"Name": opts.restart, "MaximumRetryCount": opts.restart_max},
        "AutoRemove": opts.auto_remove,
        "VolumeDriver": "",
        "VolumesFrom": opts.volumes_from or None,
        "CapAdd": opts.cap_add or None,
        "CapDrop": opts.cap_drop or None,
        "CgroupnsMode": opts.cgroupns or "host",
        "Dns": list(opts.dns),
        "DnsOptions": list(opts.dns_options),
        "DnsSearch": list(opts.dns_search),
        "ExtraHosts": [f"{name}:{address}" for name, address in opts.extra_hosts] or None,
        "GroupAdd": list(opts.group_add) or None,
        "IpcMode": opts.ipc or "private",
        "Cgroup": "",
        "Links": None,
        "OomScoreAdj": r.oom_score_adj or 0,
        "PidMode": opts.pid if opts.pid != "private" else "",
        "Privileged": opts.privileged,
        "PublishAllPorts": opts.publish_all,
        "ReadonlyRootfs": opts.read_only,
        "SecurityOpt": ["no-new-privileges"] if opts.no_new_privileges else None,
        "UTSMode": opts.uts if opts.uts != "private" else "",
        "UsernsMode": "",
        "ShmSize": opts.shm_size or 64 << 20,
        "Runtime": "runc",
        "ConsoleSize": [0, 0],
        "Isolation": "",
        **_resources(opts),
        "MaskedPaths": list(MASKED_PATHS),
        "ReadonlyPaths": list(READONLY_PATHS),
        **({"Init": True} if opts.init else {}),
        **({"Sysctls": dict(opts.sysctls)} if opts.sysctls else {}),
        **({"Tmpfs": {t[0]: t[1] if len(t) > 1 else "" for t in opts.tmpfs}} if opts.tmpfs else {}),
    }


# what docker masks and makes read-only in every unprivileged container (moby's defaults)
MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
)  # fmt: skip
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")


def _throttle(rows: list[list[Any]], key: str) -> list[dict[str, Any]] | None:
    return [{"Path": row[0], key: row[1]} for row in rows] or None


def _resources(opts: Any) -> dict[str, Any]:
    """docker's Resources, inline in HostConfig as the API has them."""
    r = opts.resources
    return {
        "CpuShares": r.cpu_shares or 0,
        "Memory": r.memory or 0,
        "NanoCpus": round((r.cpus or 0) * 1e9),
        "CgroupParent": opts.cgroup_parent or "",
        "BlkioWeight": r.blkio_weight or 0,
        "BlkioWeightDevice": [],
        "BlkioDeviceReadBps": _throttle(r.device_read_bps, "Rate"),
        "BlkioDeviceWriteBps": _throttle(r.device_write_bps, "Rate"),
        "BlkioDeviceReadIOps": _throttle(r.device_read_iops, "Rate"),
        "BlkioDeviceWriteIOps": _throttle(r.device_write_iops, "Rate"),
        "CpuPeriod": r.cpu_period or 0,
        "CpuQuota": r.cpu_quota or 0,
        "CpuRealtimePeriod": 0,
        "CpuRealtimeRuntime": 0,
        "CpusetCpus": r.cpuset_cpus or "",
        "CpusetMems": r.cpuset_mems or "",
        "Devices": [_device(d) for d in opts.devices],
        "DeviceCgroupRules": None,
        "DeviceRequests": None,
        "KernelMemory": 0,
        "KernelMemoryTCP": 0,
        "MemoryReservation": r.memory_reservation or 0,
        "MemorySwap": r.memory_swap or 0,
        "MemorySwappiness": r.memory_swappiness,
        "OomKillDisable": r.oom_kill_disable,
        "PidsLimit": r.pids_limit,
        "Ulimits": [{"Name": u[0], "Hard": u[2], "Soft": u[1]} for u in opts.ulimits] or None,
        "CpuCount": 0,
        "CpuPercent": 0,
        "IOMaximumIOps": 0,
        "IOMaximumBandwidth": 0,
    }


def _device(d: list[str]) -> dict[str, str]:
    host = d[0]
    return {
        "PathOnHost": host,
        "PathInContainer": d[1] if len(d) > 1 else host,
        "CgroupPermissions": d[2] if len(d) > 2 else "rwm",
    }


def _port_bindings(c: Container) -> dict[str, Any]:
    out: dict[str, list[dict[str, str]]] = {}
    for p in ports(c):
        key = f"{p['container_port']}/{p['protocol']}"
        out.setdefault(key, []).append({"HostIp": p["host_ip"] or "", "HostPort": str(p["host_port"])})
    return out


def _ports_map(c: Container) -> dict[str, Any]:
    """NetworkSettings.Ports: every exposed port, with its host bindings or null."""
    out: dict[str, Any] = {}
    for p in [*c.plan.get("exposed", []), *c.options.expose]:
        out[p if "/" in p else p + "/tcp"] = None
    for key, binds in _port_bindings(c).items():
        out[key] = [{"HostIp": b["HostIp"] or "0.0.0.0", "HostPort": b["HostPort"]} for b in binds]
    return out


def _endpoint(name: str, joined: dict[str, Any], network: dict[str, Any]) -> dict[str, Any]:
    subnet = str(network.get("Subnet") or "")
    return {
        "IPAMConfig": None,
        "Links": None,
        "Aliases": joined.get("Aliases"),
        "NetworkID": network.get("Id", ""),
        "EndpointID": joined.get("EndpointID", ""),
        "Gateway": network.get("Gateway", "") if joined.get("IPAddress") else "",
        "IPAddress": joined.get("IPAddress") or "",
        "IPPrefixLen": int(subnet.partition("/")[2] or 0) if joined.get("IPAddress") else 0,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "MacAddress": joined.get("MacAddress") or "",
        "DriverOpts": None,
    }


def network_settings(c: Container, networks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """docker's NetworkSettings: the default network's address at the top, as docker shows it."""
    net = c.plan.get("network") or {}
    joined = net.get("networks") or {}
    names = list(joined) or [c.options.network]
    endpoints = {n: _endpoint(n, joined.get(n) or {}, networks.get(n) or {}) for n in names}
    first = endpoints.get("bridge") or _endpoint("", {}, {})
    return {
        "Bridge": "",
        "SandboxID": "",
        "HairpinMode": False,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": _ports_map(c),
        "SandboxKey": net.get("netns") or "",
        "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None,
        "EndpointID": first["EndpointID"],
        "Gateway": first["Gateway"],
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": first["IPAddress"],
        "IPPrefixLen": first["IPPrefixLen"],
        "IPv6Gateway": "",
        "MacAddress": first["MacAddress"],
        "Networks": endpoints,
    }


# docker's container Config with nothing set: the shape of an image's Config and ContainerConfig
_EMPTY_CONFIG: dict[str, Any] = {
    "Hostname": "",
    "Domainname": "",
    "User": "",
    "AttachStdin": False,
    "AttachStdout": False,
    "AttachStderr": False,
    "Tty": False,
    "OpenStdin": False,
    "StdinOnce": False,
    "Env": None,
    "Cmd": None,
    "Image": "",
    "Volumes": None,
    "WorkingDir": "",
    "Entrypoint": None,
    "OnBuild": None,
    "Labels": None,
}


def image_document(rec: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    """``docker image inspect`` (API v1.41 ImageInspect) from the record and its OCI config."""
    history = cfg.get("history") or []
    return {
        "Id": rec.id,
        "RepoTags": [reference.parse(n).familiar for n in rec.names],
        "RepoDigests": [reference.parse(d).familiar for d in rec.repo_digests],
        "Parent": "",
        "Comment": history[-1].get("comment", "") if history else "",
        "Created": rec.created or "0001-01-01T00:00:00Z",
        "Container": "",
        "ContainerConfig": dict(_EMPTY_CONFIG),
        "DockerVersion": "",
        "Author": cfg.get("author", ""),
        "Config": {**_EMPTY_CONFIG, **(cfg.get("config") or {})},
        "Architecture": cfg.get("architecture", ""),
        **({"Variant": cfg["variant"]} if cfg.get("variant") else {}),
        "Os": cfg.get("os", ""),
        "Size": rec.size,
        "VirtualSize": rec.size,
        "GraphDriver": {"Data": None, "Name": "overlay2"},
        "RootFS": {"Type": "layers", "Layers": list(rec.diff_ids)},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    }


def volume_document(root: str, vol: Any) -> dict[str, Any]:
    """``docker volume inspect`` (API v1.41 Volume)."""
    return {
        "CreatedAt": timefmt.rfc3339(vol.created),
        "Driver": "local",
        "Labels": dict(vol.labels),
        "Mountpoint": volumes.volume_dir(root, vol.name),
        "Name": vol.name,
        "Options": {},
        "Scope": "local",
    }


def network_document(raw: dict[str, Any]) -> dict[str, Any]:
    """``docker network inspect`` (API v1.41 NetworkResource) from the network service's
    record of it: docker's keys, times as RFC 3339, endpoints as docker lists them."""
    ipam = [
        {
            "Subnet": c["Subnet"],
            "Gateway": c["Gateway"],
            **({"IPRange": c["IPRange"]} if c.get("IPRange") and c["IPRange"] != c["Subnet"] else {}),
        }
        for c in raw["IPAM"]["Config"]
    ]
    containers = {
        cid: {
            "Name": ep["Name"],
            "EndpointID": ep["EndpointID"],
            "MacAddress": ep["MacAddress"],
            "IPv4Address": ep["IPv4Address"],
            "IPv6Address": "",
        }
        for cid, ep in raw["Containers"].items()
    }
    return {
        "Name": raw["Name"],
        "Id": raw["Id"],
        "Created": _iso(raw["Created"]),
        "Scope": "local",
        "Driver": raw["Driver"],
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": {}, "Config": ipam},
        "Internal": raw["Internal"],
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": containers,
        "Options": raw["Options"],
        "Labels": {},
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


def docker_command(args: list[str]) -> str:
    """The command as dockerd lists it: the arguments after the first that hold a space
    in single quotes (nothing escaped, as docker does it)."""
    return " ".join(args[:1] + [f"'{a}'" if " " in a else a for a in args[1:]])


def ps_context(c: Container, trunc: bool = True) -> Record:
    """What ``ps --format`` templates see: docker's container context, every field a string
    (``{{json .}}`` prints them in this, alphabetical, order), ``.Label KEY`` a method."""
    line = docker_command(c.plan.get("args") or [])
    command = _ellipsis(line, 20) if trunc else line
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

"""The Engine API's routing table, and its system, image, network and volume endpoints."""

from __future__ import annotations

import json
import os
import platform
import socket
import time
from typing import Any

from ocirt.manager import db
from ocirt.manager.api import containers, execs
from ocirt.manager.api.containers import filters_of
from ocirt.manager.api.server import API_VERSION, MIN_API_VERSION, ApiError, Reply, Request, Route
from ocirt.manager.containers import present, status
from ocirt.manager.containers.runtime import Context
from ocirt.manager.containers.state import ContainerState
from ocirt.manager.errors import ManagerError
from ocirt.manager.images import service as images
from ocirt.manager.network import service as networks
from ocirt.manager.volumes import service as volumes
from ocirt.manager.volumes import store as volstore

VERSION = "0.1.0"


def ping(ctx: Context, req: Request) -> Reply:
    headers = {
        "Builder-Version": "1",
        "Cache-Control": "no-cache, no-store, must-revalidate",
        "Pragma": "no-cache",
    }
    return Reply(200, b"OK", "text/plain; charset=utf-8", headers)


def version(ctx: Context, req: Request) -> Reply:
    return Reply(200, version_document())


def version_document() -> dict[str, Any]:
    """The Engine's ``/version``; ``ocirtctl version`` shows it as docker's Server part."""
    uname = os.uname()
    details = {
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": f"python{platform.python_version()}",
        "Os": "linux",
        "Arch": {"x86_64": "amd64", "aarch64": "arm64"}.get(uname.machine, uname.machine),
        "KernelVersion": uname.release,
        "BuildTime": "",
        "Experimental": "false",
    }
    engine = {"Name": "Engine", "Version": VERSION, "Details": details}
    body: dict[str, Any] = {"Platform": {"Name": "ocirt"}, "Components": [engine], "Version": VERSION}
    return {**body, **details, "Experimental": False}


def info(ctx: Context, req: Request) -> Reply:
    return Reply(200, info_document(ctx))


def info_document(ctx: Context) -> dict[str, Any]:
    """The Engine's ``/info``, which ``ocirtctl info`` prints too."""
    listing = status.listing(ctx)
    count = {s: sum(1 for c in listing if c.state is s) for s in ContainerState}
    uname = os.uname()
    return {
        "ID": "",
        "Name": socket.gethostname(),
        "Containers": len(listing),
        "ContainersRunning": count[ContainerState.RUNNING],
        "ContainersPaused": count[ContainerState.PAUSED],
        "ContainersStopped": len(listing) - count[ContainerState.RUNNING] - count[ContainerState.PAUSED],
        "Images": len(images.list_images(ctx.root)),
        "Driver": "overlay2",
        "DriverStatus": [],
        "Plugins": {
            "Volume": ["local"],
            "Network": ["bridge", "host", "macvlan", "none"],
            "Log": ["json-file", "k8s-file", "none"],
        },
        "MemoryLimit": True,
        "SwapLimit": True,
        "CpuCfsPeriod": True,
        "CpuCfsQuota": True,
        "CPUShares": True,
        "CPUSet": True,
        "PidsLimit": True,
        "IPv4Forwarding": True,
        "Debug": False,
        "NFd": len(os.listdir("/proc/self/fd")),
        "NGoroutines": 0,
        "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1",
        "NEventsListener": 0,
        "KernelVersion": uname.release,
        "OperatingSystem": _os_name(),
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": uname.machine,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"], "Mirrors": []},
        "NCPU": os.cpu_count() or 1,
        "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "DockerRootDir": ctx.root,
        "Labels": [],
        "ExperimentalBuild": False,
        "ServerVersion": VERSION,
        "Runtimes": {"ocirt": {"path": ctx.runtime}},
        "DefaultRuntime": "ocirt",
        "Swarm": {"LocalNodeState": "inactive", "ControlAvailable": False, "NodeID": "", "NodeAddr": ""},
        "LiveRestoreEnabled": True,  # the shims keep containers running without the service
        "Isolation": "",
        "InitBinary": "",
        "ContainerdCommit": {"ID": ""},
        "RuncCommit": {"ID": ""},
        "InitCommit": {"ID": ""},
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Warnings": [],
    }


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            fields = dict(line.rstrip("\n").partition("=")[::2] for line in f if "=" in line)
    except OSError:
        return "Linux"
    return fields.get("PRETTY_NAME", "Linux").strip('"')


def stream_events(ctx: Context, req: Request) -> Reply | None:
    """``docker events``: the stored ones from ``since``, then each as it is recorded, as
    JSON lines, until ``until`` or the client hangs up."""
    from ocirt.manager import events
    from ocirt.manager.gotemplate import to_json
    from ocirt.manager.timeargs import timestamp_ns

    now = time.time_ns()
    since, until = (timestamp_ns(req.arg(k), k, now) if req.arg(k) else None for k in ("since", "until"))
    chosen = events.parse_filters([f"{k}={v}" for k, values in filters_of(req).items() for v in values])
    write = req.stream("application/json")
    for ev in events.stream(ctx.root, since, until, chosen, wanted=lambda: not req.gone()):
        write(to_json(ev.message()).encode() + b"\n")
    return None


def list_images(ctx: Context, req: Request) -> Reply:
    rows = []
    for rec in images.list_images(ctx.root):
        rows.append(
            {
                "Id": rec.id,
                "ParentId": "",
                "RepoTags": list(rec.names),
                "RepoDigests": list(rec.repo_digests),
                "Created": int(rec.added),
                "Size": rec.size,
                "SharedSize": -1,
                "VirtualSize": rec.size,
                "Labels": {},
                "Containers": -1,
            }
        )
    return Reply(200, rows)


def inspect_image(ctx: Context, req: Request) -> Reply:
    from ocirt.manager.commands.images import image_document

    rec = images.find(ctx.root, req.params["name"])
    if rec is None:
        raise ApiError(404, f"No such image: {req.params['name']}")
    return Reply(200, image_document(ctx.root, rec))


def pull_image(ctx: Context, req: Request) -> Reply | None:
    """``docker pull``: JSON progress lines, and an error as the stream's last line."""
    name, tag = req.arg("fromImage"), req.arg("tag")
    if not name:
        raise ApiError(400, "fromImage: an image to pull is required (import is not supported)")
    ref = (
        name
        if not tag or "@" in name
        else (f"{name}@{tag}" if tag.startswith("sha256:") else f"{name}:{tag}")
    )
    write = req.stream("application/json")
    write(json.dumps({"status": f"Pulling from {name}", "id": tag or "latest"}).encode() + b"\n")
    try:
        rec = images.pull(ctx.root, ref, tls_verify=not _loopback(ref), quiet=True)
    except ManagerError as exc:
        write(json.dumps({"errorDetail": {"message": str(exc)}, "error": str(exc)}).encode() + b"\n")
        return None
    write(json.dumps({"status": f"Digest: {rec.manifest_digest}"}).encode() + b"\n")
    write(json.dumps({"status": f"Status: Image is up to date for {ref}"}).encode() + b"\n")
    return None


def _loopback(ref: str) -> bool:
    """docker talks plain HTTP to a registry on this machine (127.0.0.0/8, localhost)."""
    host = ref.split("/", 1)[0] if "/" in ref else ""
    host = host.rsplit(":", 1)[0]
    return host == "localhost" or host.startswith("127.")


def remove_image(ctx: Context, req: Request) -> Reply:
    removed = images.remove(ctx.root, req.params["name"], force=req.flag("force"))
    return Reply(200, [{kind: value} for kind, _, value in (line.partition(": ") for line in removed)])


def tag_image(ctx: Context, req: Request) -> Reply:
    repo, tag = req.arg("repo"), req.arg("tag")
    if not repo:
        raise ApiError(400, "repo: a repository name is required")
    images.tag(ctx.root, req.params["name"], f"{repo}:{tag}" if tag else repo)
    return Reply(201)


def list_networks(ctx: Context, req: Request) -> Reply:
    wanted = filters_of(req)
    from ocirt.manager.network import drivers

    docs = [
        present.network_document(networks.inspect_network(ctx.root, n.name))
        for n in networks.list_networks(ctx.root)
    ]
    docs += [_predefined(n.name, n.id, n.driver) for n in drivers.predefined_records()]
    for key in ("name", "id", "driver"):
        field = {"name": "Name", "id": "Id", "driver": "Driver"}[key]
        if key in wanted:
            docs = [d for d in docs if any(v in d[field] for v in wanted[key])]
    return Reply(200, docs)


def _predefined(name: str, ident: str, driver: str) -> dict[str, Any]:
    """``host`` and ``none`` as dockerd lists them: no store record, no addresses."""
    ipam: dict[str, Any] = {"Driver": "default", "Options": None, "Config": []}
    flags = {"EnableIPv6": False, "Internal": False, "Attachable": False, "Ingress": False}
    return {"Name": name, "Id": ident, "Scope": "local", "Driver": driver, "IPAM": ipam, **flags,
            "Containers": {}, "Options": {}, "Labels": {}}  # fmt: skip


def inspect_network(ctx: Context, req: Request) -> Reply:
    return Reply(200, present.network_document(networks.inspect_network(ctx.root, req.params["id"])))


def create_network(ctx: Context, req: Request) -> Reply:
    body = req.json()
    name = body.get("Name")
    if not isinstance(name, str) or not name:
        raise ApiError(400, "Name: a network name is required")
    config = ((body.get("IPAM") or {}).get("Config") or [{}])[0]
    net = networks.create_network(
        ctx.root,
        name,
        driver=body.get("Driver") or "bridge",
        subnet=config.get("Subnet"),
        gateway=config.get("Gateway"),
        ip_range=config.get("IPRange"),
        internal=bool(body.get("Internal")),
        options=body.get("Options") or {},
    )
    return Reply(201, {"Id": net.id, "Warning": ""})


def remove_network(ctx: Context, req: Request) -> Reply:
    networks.remove_network(ctx.root, req.params["id"])
    return Reply(204)


def list_volumes(ctx: Context, req: Request) -> Reply:
    vols = volstore.all_volumes(db.connect(ctx.root))
    return Reply(200, {"Volumes": [present.volume_document(ctx.root, v) for v in vols], "Warnings": []})


def create_volume(ctx: Context, req: Request) -> Reply:
    body = req.json()
    driver = body.get("Driver") or "local"
    if driver != "local":
        raise ApiError(400, f"Driver: unsupported volume driver {driver!r} (local)")
    vol = volumes.create(ctx.root, body.get("Name") or None, body.get("Labels") or {})
    return Reply(201, present.volume_document(ctx.root, vol))


def inspect_volume(ctx: Context, req: Request) -> Reply:
    return Reply(200, present.volume_document(ctx.root, volumes.get(ctx.root, req.params["name"])))


def remove_volume(ctx: Context, req: Request) -> Reply:
    volumes.remove(ctx.root, req.params["name"], force=req.flag("force"))
    return Reply(204)


ROUTES: list[tuple[str, str, Route]] = [
    ("GET", "/_ping", ping),
    ("GET", "/version", version),
    ("GET", "/info", info),
    ("GET", "/events", stream_events),
    *containers.ROUTES,
    *execs.ROUTES,
    ("GET", "/images/json", list_images),
    ("POST", "/images/create", pull_image),
    ("GET", "/images/{name:path}/json", inspect_image),
    ("POST", "/images/{name:path}/tag", tag_image),
    ("DELETE", "/images/{name:path}", remove_image),
    ("GET", "/networks", list_networks),
    ("POST", "/networks/create", create_network),
    ("GET", "/networks/{id}", inspect_network),
    ("DELETE", "/networks/{id}", remove_network),
    ("GET", "/volumes", list_volumes),
    ("POST", "/volumes/create", create_volume),
    ("GET", "/volumes/{name}", inspect_volume),
    ("DELETE", "/volumes/{name}", remove_volume),
]

"""The Engine API's container endpoints, each a call into the code ``ocirtctl`` runs."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from ocirt.manager import db
from ocirt.manager.api.server import MULTIPLEXED_STREAM, RAW_STREAM, ApiError, Reply, Request
from ocirt.manager.containers import (
    actions,
    exits,
    flags,
    layout,
    logs,
    options,
    present,
    remove,
    start,
    status,
    store,
)
from ocirt.manager.containers import create as creating
from ocirt.manager.containers import stop as stopping
from ocirt.manager.containers.runtime import Context
from ocirt.manager.errors import ManagerError
from ocirt.manager.images import service as images
from ocirt.shim.logs import DRIVERS as LOG_DRIVERS

_STREAM_IDS = {"stdout": 1, "stderr": 2}


def filters_of(req: Request) -> dict[str, list[str]]:
    """The ``filters`` argument: ``{"key": ["v"]}`` or the old ``{"key": {"v": true}}``."""
    text = req.arg("filters")
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except ValueError:
        raise ApiError(400, f"invalid filter {text!r}") from None
    if not isinstance(raw, dict):
        raise ApiError(400, f"invalid filter {text!r}")
    return {k: list(v) if isinstance(v, list | dict) else [str(v)] for k, v in raw.items()}


def list_containers(ctx: Context, req: Request) -> Reply:
    wanted = filters_of(req)
    pairs = [f"{k}={v}" for k, values in wanted.items() for v in values]
    every = req.flag("all") or "status" in wanted
    rows = []
    for c in status.listing(ctx):
        if (every or c.state.live) and _any_match(c, wanted, pairs):
            rows.append(summary(ctx, c))
    limit = int(req.arg("limit") or -1)
    return Reply(200, rows[::-1][:limit] if limit > 0 else rows[::-1])


def _any_match(c: store.Container, wanted: dict[str, list[str]], pairs: list[str]) -> bool:
    """docker ORs the values of one key and ANDs the keys."""
    try:
        return all(any(actions.matches(c, [f"{k}={v}"]) for v in values) for k, values in wanted.items())
    except ManagerError as exc:
        raise ApiError(400, str(exc).replace("--filter", "filters")) from None


def summary(ctx: Context, c: store.Container) -> dict[str, Any]:
    """One entry of ``GET /containers/json`` (API ContainerSummary)."""
    return {
        "Id": c.id,
        "Names": ["/" + c.name],
        "Image": c.image,
        "ImageID": c.image_id,
        "Command": present.command_of(c),
        "Created": int(c.created),
        "Ports": [
            {
                "IP": p["host_ip"] or "0.0.0.0",
                "PrivatePort": p["container_port"],
                "PublicPort": p["host_port"],
                "Type": p["protocol"],
            }
            for p in present.ports(c)
        ],
        "Labels": dict(c.options.labels),
        "State": str(c.state),
        "Status": status.describe(c),
        "HostConfig": {"NetworkMode": c.options.network},
        "NetworkSettings": {"Networks": {name: {} for name in present.network_names(c)}},
        "Mounts": present.mounts_of(ctx.root, c),
    }


def create_container(ctx: Context, req: Request) -> Reply:
    opts = create_options(req.json(), req.arg("name") or None)
    if images.find(ctx.root, opts.image) is None:
        raise ApiError(404, f"No such image: {opts.image}")
    c = creating.create(ctx, opts)
    return Reply(201, {"Id": c.id, "Warnings": []})


def create_options(body: Any, name: str | None) -> options.CreateOptions:
    """The create body (Config with HostConfig) as the options ``ocirtctl create`` builds
    from its flags, checked by the same functions."""
    if not isinstance(body, dict) or not isinstance(body.get("Image"), str) or not body["Image"]:
        raise ApiError(400, "Config.Image: an image is required")
    host = body.get("HostConfig") or {}
    opts = options.CreateOptions(image=body["Image"], command=_strings(body, "Cmd"), name=name)
    if body.get("Entrypoint") is not None:
        opts.entrypoint = _strings(body, "Entrypoint")
    opts.env = _strings(body, "Env")
    opts.labels = {str(k): str(v) for k, v in (body.get("Labels") or {}).items()}
    opts.workdir = body.get("WorkingDir") or None
    if opts.workdir is not None and not opts.workdir.startswith("/"):
        raise ApiError(400, f"Config.WorkingDir: {opts.workdir!r} is not an absolute path")
    opts.user, opts.hostname = body.get("User") or None, body.get("Hostname") or None
    opts.tty, opts.interactive = bool(body.get("Tty")), bool(body.get("OpenStdin"))
    opts.stop_signal = body.get("StopSignal") or None
    opts.stop_timeout = body.get("StopTimeout")
    _host_config(host, opts)
    return opts


def _strings(doc: dict[str, Any], key: str) -> list[str]:
    value = doc.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(400, f"{key}: expected a list of strings")
    return list(value)


def _host_config(host: dict[str, Any], opts: options.CreateOptions) -> None:
    opts.volumes = _strings(host, "Binds")
    opts.ports = [
        f"{b.get('HostIp') or ''}{':' if b.get('HostIp') else ''}{b.get('HostPort') or ''}:{port}"
        if b.get("HostPort") or b.get("HostIp")
        else port
        for port, bindings in (host.get("PortBindings") or {}).items()
        for b in bindings or [{}]
    ]
    opts.publish_all = bool(host.get("PublishAllPorts"))
    mode = host.get("NetworkMode") or "default"
    opts.network = "bridge" if mode == "default" else mode
    policy = host.get("RestartPolicy") or {}
    if policy.get("Name"):
        count = policy.get("MaximumRetryCount") or 0
        opts.restart, opts.restart_max = options.restart_policy(
            f"{policy['Name']}:{count}" if count else policy["Name"]
        )
    _log_config(host.get("LogConfig") or {}, opts)
    opts.auto_remove = bool(host.get("AutoRemove"))
    if opts.auto_remove and opts.restart != "no":
        raise ApiError(400, "can't create 'AutoRemove' container with restart policy")
    opts.privileged, opts.read_only = bool(host.get("Privileged")), bool(host.get("ReadonlyRootfs"))
    opts.init = bool(host.get("Init"))
    opts.cap_add, opts.cap_drop = _strings(host, "CapAdd"), _strings(host, "CapDrop")
    if host.get("Memory"):
        opts.resources.memory = int(host["Memory"])
    if host.get("NanoCpus"):
        opts.resources.cpus = int(host["NanoCpus"]) / 1e9
    if host.get("PidsLimit"):
        opts.resources.pids_limit = int(host["PidsLimit"])
    flags.check_before_pull(opts)


def _log_config(config: dict[str, Any], opts: options.CreateOptions) -> None:
    """dockerd's default driver, json-file, unless the body names one: docker-py reads a
    container's output back only from json-file (or journald) containers."""
    driver = config.get("Type") or "json-file"
    if driver not in LOG_DRIVERS:
        raise ApiError(400, f"HostConfig.LogConfig.Type: unsupported driver {driver!r}")
    opts.log_driver = driver
    opts.log_opts = dict(options.log_opt(f"{k}={v}", driver) for k, v in (config.get("Config") or {}).items())


def _ref(ctx: Context, req: Request) -> store.Container:
    return status.refresh(ctx, store.get(db.connect(ctx.root), req.params["id"]))


def inspect_container(ctx: Context, req: Request) -> Reply:
    found = actions.container_document(ctx, req.params["id"])
    if found is None:
        raise ApiError(404, f"No such container: {req.params['id']}")
    return Reply(200, found)


def start_container(ctx: Context, req: Request) -> Reply:
    if _ref(ctx, req).state.live:
        return Reply(304)
    start.start(ctx, req.params["id"])
    return Reply(204)


def _timeout(req: Request) -> int | None:
    text = req.arg("t") or req.arg("timeout")
    return None if not text else int(text)


def stop_container(ctx: Context, req: Request) -> Reply:
    if not _ref(ctx, req).state.live:
        return Reply(304)
    stopping.stop(ctx, req.params["id"], _timeout(req))
    return Reply(204)


def restart_container(ctx: Context, req: Request) -> Reply:
    c = _ref(ctx, req)
    if c.state.live:
        stopping.stop(ctx, c.id, _timeout(req))
    start.start(ctx, c.id)
    return Reply(204)


def kill_container(ctx: Context, req: Request) -> Reply:
    stopping.kill(ctx, _ref(ctx, req).id, req.arg("signal") or "KILL")
    return Reply(204)


def pause_container(ctx: Context, req: Request) -> Reply:
    stopping.pause(ctx, _ref(ctx, req).id, resume=req.path.endswith("/unpause"))
    return Reply(204)


def remove_container(ctx: Context, req: Request) -> Reply:
    remove.remove(ctx, _ref(ctx, req).id, req.flag("force"), req.flag("v"))
    return Reply(204)


def wait_container(ctx: Context, req: Request) -> Reply | None:
    """Headers at once (the CLI waits before it starts), the exit status once there is one."""
    condition = req.arg("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise ApiError(400, f"invalid condition {condition!r}: not-running, next-exit or removed")
    c = _ref(ctx, req)
    write = req.stream("application/json")
    if condition == "next-exit":
        while not c.state.live:
            if req.gone():
                return None
            time.sleep(0.05)
            c = _ref(ctx, req)
    if c.state.live:
        if not _exited(ctx, c, req):
            return None
        exits.finish(ctx, c.id)
    conn = db.connect(ctx.root)
    done = store.find(conn, c.id) or c
    if condition == "removed":
        while store.find(conn, c.id) is not None:
            if req.gone():
                return None
            time.sleep(0.05)
    code = done.exit_code if done.exit_code is not None else -1
    write(json.dumps({"StatusCode": code, "Error": None}).encode() + b"\n")
    return None


def _exited(ctx: Context, c: store.Container, req: Request) -> bool:
    """Wait on the shim in a helper thread while watching the client; False if it left."""
    done = threading.Event()

    def block() -> None:
        try:
            start.shim_client(ctx, c).wait()
        except OSError:
            pass
        finally:
            done.set()

    threading.Thread(target=block, daemon=True).start()
    while not done.wait(0.2):
        if req.gone():
            return False
    return True


def container_logs(ctx: Context, req: Request) -> Reply | None:
    c = _ref(ctx, req)
    driver = c.options.log_driver
    if LOG_DRIVERS[driver].parse is None:
        raise ApiError(501, f"configured logging driver does not support reading: {driver}")
    wanted = {s for s in ("stdout", "stderr") if req.flag(s)}
    if not wanted:
        raise ApiError(400, "Bad parameters: you must choose at least one stream")
    tail_text = req.arg("tail") or "all"
    tail = None if tail_text == "all" else int(tail_text)
    since = req.arg("since")
    path = layout.log_path(ctx.root, c.id)
    shown, offset = logs.collect(
        path,
        driver,
        int(c.options.log_opts.get("max-file", "1")),
        None if since in ("", "0") else since,
        tail,
    )
    write = req.stream(RAW_STREAM if c.options.tty else MULTIPLEXED_STREAM)
    stamps, tty = req.flag("timestamps"), c.options.tty

    def emit(line: logs.Line) -> None:
        if line.stream in wanted:
            data = (line.time.encode() + b" " if stamps else b"") + line.text
            head = b"" if tty else bytes([_STREAM_IDS[line.stream], 0, 0, 0]) + len(data).to_bytes(4, "big")
            write(head + data)

    for line in shown:
        emit(line)
    if req.flag("follow"):
        logs.follow(path, driver, offset, lambda: not req.gone() and _ref(ctx, req).state.live, emit)
    return None


ROUTES = [
    ("GET", "/containers/json", list_containers),
    ("POST", "/containers/create", create_container),
    ("GET", "/containers/{id}/json", inspect_container),
    ("POST", "/containers/{id}/start", start_container),
    ("POST", "/containers/{id}/stop", stop_container),
    ("POST", "/containers/{id}/restart", restart_container),
    ("POST", "/containers/{id}/kill", kill_container),
    ("POST", "/containers/{id}/pause", pause_container),
    ("POST", "/containers/{id}/unpause", pause_container),
    ("POST", "/containers/{id}/wait", wait_container),
    ("DELETE", "/containers/{id}", remove_container),
    ("GET", "/containers/{id}/logs", container_logs),
]

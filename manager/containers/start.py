"""``start``: network, ``config.json`` and a new shim, which runs the runtime's create and
start and stays as the container's parent. The shim's exit command brings the container
back here (``exits.finish``) when its process ends."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from typing import Any

from ocirt.foundation.procfs import start_ticks
from ocirt.manager import db
from ocirt.manager.containers import (
    create,
    etcfiles,
    health,
    layout,
    liveness,
    mounts,
    networking,
    spec,
    store,
)
from ocirt.manager.containers.options import Resources
from ocirt.manager.containers.runtime import Context
from ocirt.manager.containers.state import ContainerState
from ocirt.manager.containers.store import Container
from ocirt.manager.containers.units import size
from ocirt.manager.errors import ManagerError, start_failure
from ocirt.manager.images import bundle
from ocirt.shim.client import ShimClient, ShimError, ShimHandle, ShimOptions, launch
from ocirt.shim.logs import DRIVERS as LOG_DRIVERS


def start(ctx: Context, ref: str, no_start: bool = False) -> tuple[Container, ShimHandle]:
    c = store.get(db.connect(ctx.root), ref)
    with layout.locked(ctx.root, c.id):
        c = store.get(db.connect(ctx.root), c.id)
        if not c.state.can_start:
            raise ManagerError(f"container {c.name} is already running")
        return c, launch_locked(ctx, c, no_start)


def launch_locked(ctx: Context, c: Container, no_start: bool = False) -> ShimHandle:
    """Start ``c`` (its lock held); with ``no_start`` the process waits for ``client.start``."""
    c.plan["network"] = networking.setup(ctx, c)
    try:
        write_bundle(ctx, c)
        handle = _shim(ctx, c, no_start)
    except BaseException:
        if c.state is ContainerState.CREATED:
            networking.teardown(ctx, c)
        raise
    c.state, c.pid, c.started_at = c.state.to(ContainerState.RUNNING), handle.container_pid, time.time()
    c.plan[liveness.PID_START] = start_ticks(c.pid)
    c.exit_code, c.oom_killed, c.stopped_by_user = None, False, False
    conn = db.connect(ctx.root)
    with db.transaction(conn):
        store.save(conn, c)
    mounts.announce(ctx.root, c.id, c.plan.get("mounts", []), "mount")
    store.event(ctx.root, c, "start")
    return handle


def shim_client(ctx: Context, c: Container) -> ShimClient:
    return ShimClient(layout.shim_dir(ctx.root, c.id, int(c.plan.get("serial", 0))))


def write_bundle(ctx: Context, c: Container) -> None:
    _, image = create.image_config(ctx.root, c.image_id)
    defaults = bundle.process_defaults(image)
    opts = c.options
    rootfs = c.plan["rootfs"]
    base = bundle.runtime_config(
        defaults,
        rootfs,
        command=opts.command or None,
        entrypoint=opts.entrypoint,
        env=opts.env + (["TERM=xterm"] if opts.tty else []),
        cwd=opts.workdir,
        user=opts.user,
        hostname=networking.hostname_of(c),
        terminal=opts.tty,
        readonly=opts.read_only,
        annotations=opts.labels,
    )
    plumbing = spec.Plumbing(
        mounts=etcfiles.mounts(ctx.root, c.id) + mounts.oci_mounts(ctx.root, c.plan["mounts"]),
        netns=c.plan["network"]["netns"],
        devices=[_device(host, target) for host, target, _ in opts.devices],
        block_devices=block_devices(opts.resources),
        init=_init_binary(ctx) if opts.init else None,
        cgroups_path=layout.cgroups_path(c.id, opts.cgroup_parent),
        group_ids=bundle.group_ids(rootfs, opts.group_add),
    )
    config = spec.build(base, opts, plumbing)
    check_config(config)
    path = layout.bundle_dir(ctx.root, c.id)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json.tmp"), "w") as f:
        json.dump(config, f, indent=1)
    os.replace(os.path.join(path, "config.json.tmp"), os.path.join(path, "config.json"))


def check_config(config: dict[str, Any]) -> None:
    """Through the runtime's own typed model before it is written: a document the runtime
    would refuse fails here, naming its field, instead of as a create failure in the shim.
    (The typed parser, not the JSON schema: jsonschema's import alone costs 0.1 s a start.)"""
    from ocirt.foundation.errors import SpecError
    from ocirt.specs.config import Config

    try:
        Config(config)
    except SpecError as err:
        raise ManagerError(f"the container's {err}") from None


def _device(host: str, target: str) -> dict[str, Any]:
    try:
        entry = spec.device_entry(host, target)
    except OSError as exc:
        raise ManagerError(f"--device: {host}: {exc.strerror}") from None
    if not entry["type"]:
        raise ManagerError(f"--device: {host} is not a device node")
    return entry


def block_devices(res: Resources) -> dict[str, tuple[int, int]]:
    out = {}
    for entries in (res.device_read_bps, res.device_write_bps, res.device_read_iops, res.device_write_iops):
        for path, _ in entries:
            try:
                rdev = os.stat(path).st_rdev
            except OSError as exc:
                raise ManagerError(f"--device-*-bps/iops: {path}: {exc.strerror}") from None
            out[path] = (os.major(rdev), os.minor(rdev))
    return out


def _init_binary(ctx: Context) -> str:
    from ocirt.manager.containers import init

    return init.binary(ctx.root)


def _sender_options(c: Container) -> dict[str, str]:
    """A sending driver's options for the shim, with ``tag`` run as docker's log tag
    template (``{{.ID}}``, ``{{.Name}}``, ``{{.ImageName}}``, ...; docker's default is the
    short id, which the shim applies)."""
    out = dict(c.options.log_opts)
    if "{{" in out.get("tag", ""):
        from ocirt.manager import formats
        from ocirt.manager.gotemplate import Record

        info = {"ID": c.id[:12], "FullID": c.id, "Name": c.name, "ImageFullID": c.image_id}
        info |= {
            "ImageID": c.image_id.removeprefix("sha256:")[:12],
            "ImageName": c.image,
            "DaemonName": "docker",
        }
        out["tag"] = formats.row_renderer(out["tag"])(Record("logger.Info", info))
    return out


def _sender_info(c: Container) -> dict[str, str]:
    """What docker's ``logger.Info`` tells a sending driver about the container, with the
    labels and environment variables its ``labels``/``env`` options name as extras."""
    from ocirt.foundation.timefmt import rfc3339nano_of

    info = {
        "name": c.name,
        "image-id": c.image_id,
        "image-name": c.image,
        "created": rfc3339nano_of(c.created),
    }
    info["command"] = " ".join(c.plan.get("args", []))
    opts = c.options.log_opts
    env = dict(e.partition("=")[::2] for e in c.options.env)
    for key in filter(None, opts.get("labels", "").split(",")):
        if key in c.options.labels:
            info[f"attr:{key}"] = c.options.labels[key]
    for key in filter(None, opts.get("env", "").split(",")):
        if key in env:
            info[f"attr:{key}"] = env[key]
    return info


def _shim(ctx: Context, c: Container, no_start: bool) -> ShimHandle:
    old = layout.shim_dir(ctx.root, c.id, int(c.plan.get("serial", 0)))
    if os.path.isdir(old) and not ShimClient(old).alive():
        shutil.rmtree(old, ignore_errors=True)
    c.plan["serial"] = int(c.plan.get("serial", 0)) + 1
    if c.plan.get("healthcheck"):  # where this start's shim records State.Health
        c.plan["health_file"] = health.path(layout.shim_dir(ctx.root, c.id, c.plan["serial"]))
    exit_cmd, exit_args = ctx.exit_command()
    opts = c.options
    shim_opts = ShimOptions(
        id=c.id,
        bundle=layout.bundle_dir(ctx.root, c.id),
        state_dir=layout.shim_dir(ctx.root, c.id, c.plan["serial"]),
        runtime=ctx.runtime,
        runtime_root=ctx.runtime_root,
        log_path=layout.log_path(ctx.root, c.id),
        log_driver=opts.log_driver,
        log_max_size=size(opts.log_opts.get("max-size", "0"), "--log-opt max-size"),
        log_max_file=int(opts.log_opts.get("max-file", "1")),
        log_opts=_sender_options(c) if LOG_DRIVERS[opts.log_driver].sink else {},
        log_info=_sender_info(c) if LOG_DRIVERS[opts.log_driver].sink else {},
        healthcheck=c.plan.get("healthcheck"),
        health_command=[sys.executable, "-m", "ocirt.manager.containers.health", ctx.root, c.id],
        tty=opts.tty,
        stdin=opts.interactive,
        exit_command=exit_cmd,
        exit_command_args=[*exit_args, c.id],
        no_start=no_start,
        delete_on_exit=True,
    )
    try:
        return launch(shim_opts)
    except ShimError as exc:
        raise start_failure(f"start {c.name}", str(exc)) from None

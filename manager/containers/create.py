"""``ocirtctl create``: reserve the name, prepare the rootfs and volumes; no process yet.

As in podman, the runtime's ``create`` happens at ``start``: a created container is a
record, a mounted snapshot and its volumes, and the ``config.json`` is written fresh at
each start (its network namespace and ``container:`` peers exist only then).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import time
from typing import Any

from ocirt.manager import db
from ocirt.manager.containers import health, layout, mounts, names, store
from ocirt.manager.containers.options import CreateOptions
from ocirt.manager.containers.runtime import Context
from ocirt.manager.containers.store import Container
from ocirt.manager.errors import ManagerError
from ocirt.manager.images import bundle, snapshots
from ocirt.manager.images import service as images
from ocirt.manager.images.records import ImageRecord
from ocirt.manager.volumes import requests, service

SHIM_FINISH = 10.0  # a shim's last output grace (2 s) and its runtime delete, with room


def image_config(
    root: str, ref: str, tls_verify: bool = True, pull: str = "missing", platform: str | None = None
) -> tuple[ImageRecord, dict[str, Any]]:
    """The image record and its config, pulled first as ``--pull`` says (``missing``: when
    it is not in the store, or is there for another ``--platform``)."""
    from ocirt.manager.images import manifest

    rec = None if pull == "always" else images.find(root, ref)
    if (
        rec is not None
        and platform
        and manifest.normalize_platform(rec.platform) != manifest.normalize_platform(platform)
    ):
        rec = None
    if rec is None:
        if pull == "never":
            raise ManagerError(f"no such image: {ref} (--pull never: not pulled)")
        rec = images.pull(root, ref, tls_verify=tls_verify, platform=platform, out=sys.stderr)
    return rec, images.config(root, rec)


def create(ctx: Context, opts: CreateOptions, tls_verify: bool = True) -> Container:
    if opts.cidfile is not None and os.path.exists(opts.cidfile):
        raise ManagerError(f"--cidfile: {opts.cidfile} exists (another container's? remove it first)")
    rec, config = image_config(ctx.root, opts.image, tls_verify, opts.pull, opts.platform)
    defaults = bundle.process_defaults(config)
    args = defaults.args(opts.command, opts.entrypoint)  # no command: fails before anything is made
    conn = db.connect(ctx.root)
    inherited = _volumes_from(conn, opts.volumes_from)
    planned = mounts.requested(opts, list(defaults.volumes), inherited)
    c = Container(
        os.urandom(32).hex(),
        names.check(opts.name) if opts.name else names.generate(),
        opts.image,
        rec.id,
        opts,
    )
    with db.transaction(conn):
        store.insert(conn, c)
    try:
        os.makedirs(layout.userdata(ctx.root, c.id), mode=0o700)
        rootfs = snapshots.prepare(ctx.root, rec, c.id)
        made = mounts.realise(ctx.root, planned, rootfs)
        c.plan = {
            "rootfs": rootfs,
            "mounts": planned,
            "volumes": mounts.volume_names(planned),
            "anonymous": made,
            "serial": 0,
            "args": args,
            "log_path": layout.log_path(ctx.root, c.id),
            "exposed": list(dict.fromkeys([*defaults.exposed_ports, *opts.expose])),
            "stop_signal": opts.stop_signal or defaults.stop_signal,
            "healthcheck": health.effective(config, opts.healthcheck),
        }
        with db.transaction(conn):
            store.save(conn, c)
        if opts.cidfile is not None:
            _write_cidfile(opts.cidfile, c.id)
    except BaseException:
        discard(ctx, c)
        raise
    store.event(ctx.root, c, "create")
    return c


def _write_cidfile(path: str, cid: str) -> None:
    """As docker: made anew (never over another container's), the id without a newline."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise ManagerError(f"--cidfile: {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as f:
        f.write(cid)


def _volumes_from(conn: sqlite3.Connection, refs: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for text in refs:
        ref, mode = requests.parse_volumes_from(text)
        found = store.find(conn, ref)
        if found is None:
            raise ManagerError(f"--volumes-from: no such container: {ref}")
        out += mounts.inherit(found.plan.get("mounts", []), mode)
    return out


def _wait_shims(base: str) -> None:
    """Until no shim of the container runs (bounded): a shim still finishing after its
    container's exit writes into its directory (the runtime's error file), and a file made
    while the tree is being removed would leave the directory behind for good. A shim never
    waits for its exit command, so this cannot wait on our own lock."""
    from ocirt.shim.client import ShimClient

    deadline = time.monotonic() + SHIM_FINISH
    while time.monotonic() < deadline:
        try:
            dirs = [os.path.join(base, d) for d in os.listdir(base)]
        except FileNotFoundError:
            return
        if not any(ShimClient(d).alive() for d in dirs):
            return
        time.sleep(0.05)


def discard(ctx: Context, c: Container) -> None:
    """Undo a create (or finish a remove): snapshot, record, anonymous volumes, files."""
    snapshots.remove(ctx.root, c.id)
    conn = db.connect(ctx.root)
    with db.transaction(conn):
        store.delete(conn, c.id)
    for name in c.plan.get("anonymous", []):
        try:
            service.remove(ctx.root, name, force=True)
        except ManagerError:
            continue
    shutil.rmtree(layout.container_dir(ctx.root, c.id), ignore_errors=True)
    _wait_shims(layout.shim_base(ctx.root, c.id))
    shutil.rmtree(layout.shim_base(ctx.root, c.id), ignore_errors=True)
    try:
        os.rmdir(os.path.dirname(layout.shim_base(ctx.root, c.id)))  # the root's, once empty
    except OSError:
        pass

"""A container's mounts, planned once at ``create``: volumes made (and filled from the
image), binds checked, and each kept as a plain record in the container's plan.

Precedence follows docker: ``--volumes-from`` first, then the image's ``VOLUME``s, then
``-v``/``--mount``/``--tmpfs``; a later one for the same target replaces an earlier one.
"""

from __future__ import annotations

import os
from typing import Any

from ocirt.manager import events
from ocirt.manager.containers.options import CreateOptions
from ocirt.manager.errors import ManagerError
from ocirt.manager.rootpath import resolve
from ocirt.manager.volumes import requests, service
from ocirt.manager.volumes.requests import MountRequest


def requested(
    opts: CreateOptions, image_volumes: list[str], inherited: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Every mount by target, as records without volumes made yet (pure)."""
    by_target: dict[str, dict[str, Any]] = {m["destination"]: dict(m) for m in inherited}
    for path in image_volumes:
        if path not in by_target:
            by_target[path] = _record(MountRequest("volume", requests.parse_volume(path).target))
    reqs = [requests.parse_volume(v) for v in opts.volumes] + [requests.parse_mount(m) for m in opts.mounts]
    reqs += [
        MountRequest("tmpfs", path, options=[o for o in extra.split(",") if o]) for path, extra in opts.tmpfs
    ]
    for req in reqs:
        by_target[req.target] = _record(req)
    return list(by_target.values())


def _record(req: MountRequest) -> dict[str, Any]:
    return {
        "type": req.kind,
        "source": req.source,
        "destination": req.target,
        "readonly": req.readonly,
        "options": req.options,
        "copy_up": req.copy_up,
    }


def inherit(mounts: list[dict[str, Any]], mode: str | None) -> list[dict[str, Any]]:
    """``--volumes-from`` takes the binds and volumes of another container, ``:ro`` forcing."""
    out = []
    for m in mounts:
        if m["type"] in ("bind", "volume"):
            copy = dict(m, copy_up=False, anonymous=False)
            if mode is not None:
                copy["readonly"] = mode == "ro"
            out.append(copy)
    return out


def realise(root: str, records: list[dict[str, Any]], rootfs: str) -> list[str]:
    """Make the volumes (filled from the image on first use) and check bind sources; the
    anonymous volumes made, for the caller to undo on failure."""
    made: list[str] = []
    try:
        for m in records:
            if m["type"] == "volume":
                if not m["source"]:
                    m["source"] = service.create(root, None).name
                    m["anonymous"] = True
                    made.append(m["source"])
                else:
                    service.create(root, m["source"])
                if m.get("copy_up"):
                    service.copy_up(root, m["source"], resolve(rootfs, m["destination"]))
            elif m["type"] == "bind":
                _bind_source(m["source"])
    except BaseException:
        for name in made:
            service.remove(root, name, force=True)
        raise
    return made


def _bind_source(path: str) -> None:
    """``-v /host/dir:/x`` makes a missing host directory, as docker does."""
    if not os.path.exists(path):
        try:
            os.makedirs(path, mode=0o755)
        except OSError as exc:
            raise ManagerError(f"bind source {path}: {exc.strerror}") from None


def oci_mounts(root: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The planned mounts as ``config.json`` entries."""
    out = []
    for m in records:
        access = "ro" if m["readonly"] else "rw"
        if m["type"] == "tmpfs":
            options = ["nosuid", "nodev", "noexec", access, *m["options"]]
            out.append(
                {"destination": m["destination"], "type": "tmpfs", "source": "tmpfs", "options": options}
            )
            continue
        source = service.volume_dir(root, m["source"]) if m["type"] == "volume" else m["source"]
        propagation = m["options"] or ["rprivate"]
        out.append(
            {
                "destination": m["destination"],
                "type": "bind",
                "source": source,
                "options": ["rbind", access, *propagation],
            }
        )
    return out


def announce(root: str, cid: str, records: list[dict[str, Any]], action: str) -> None:
    """docker's ``mount`` (at start, before the container's ``start``) or ``unmount`` (after
    its ``die``) event for each volume of a container."""
    for m in records:
        if m["type"] != "volume":
            continue
        attributes = {"container": cid, "driver": "local"}
        if action == "mount":
            access = "false" if m["readonly"] else "true"
            attributes |= {"destination": m["destination"], "propagation": "", "read/write": access}
        events.record(root, "volume", action, m["source"], attributes)


def volume_names(records: list[dict[str, Any]]) -> list[str]:
    return [m["source"] for m in records if m["type"] == "volume"]

"""The busybox image every manager test loads, built here from the conformance rootfs.

A docker-archive (``manifest.json``, a config blob and one layer) is what ``docker load``
of Docker 20.10 reads, and ``ctr images import`` reads it too, so one file serves both;
podman gets the plain rootfs tar through ``podman import``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from typing import Any

from ocirt.testing.bundle import DEFAULT_ENV, make_rootfs


def rootfs_tar(workdir: str) -> str:
    """A tar of the busybox rootfs, with paths relative to its top as ``podman import`` wants."""
    rootfs = make_rootfs(os.path.join(workdir, "rootfs"))
    out = os.path.join(workdir, "rootfs.tar")
    with tarfile.open(out, "w") as tar:
        for name in sorted(os.listdir(rootfs)):
            tar.add(os.path.join(rootfs, name), arcname=name)
    return out


def docker_archive(layer: str, out: str, tag: str) -> str:
    """Write ``out``, an image with ``layer`` as its only layer, named ``tag``."""
    with open(layer, "rb") as f:
        layer_bytes = f.read()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps(_config(diff_id), sort_keys=True).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    layer_name = diff_id.removeprefix("sha256:") + "/layer.tar"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": [layer_name]}]).encode()
    with tarfile.open(out, "w") as tar:
        for name, data in ((config_name, config), (layer_name, layer_bytes), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return out


def _config(diff_id: str) -> dict[str, Any]:
    return {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": list(DEFAULT_ENV), "Cmd": ["/bin/sh"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "ocirt tests/integration/images.py"}],
    }

"""``ocirtctl import``: a rootfs tarball becomes a one-layer image (the seed's "base image
from scratch"), with ``--change`` applying Dockerfile instructions to its config.

The tarball is stored as it is (gzip and zstd are recognised by their magic numbers), its
uncompressed digest becomes the diff_id, and it is unpacked (so checked) before the image
is recorded.
"""

from __future__ import annotations

import json
import shlex
import time
from typing import Any

from ocirt.foundation import timefmt
from ocirt.manager.errors import ManagerError
from ocirt.manager.images import archive, layers, manifest, records, reference, store

_LIST_FORM = ("CMD", "ENTRYPOINT")


def apply_change(cfg: dict[str, Any], change: str) -> None:
    """Apply one Dockerfile instruction (``CMD``, ``ENTRYPOINT``, ``ENV``, ``WORKDIR``,
    ``USER``, ``EXPOSE``, ``LABEL``, ``VOLUME``, ``STOPSIGNAL``) to an image ``config``."""
    word, _, rest = change.strip().partition(" ")
    word, rest = word.upper(), rest.strip()
    if not rest:
        raise ManagerError(f"--change {change!r}: missing a value")
    if word in _LIST_FORM or word == "VOLUME":
        value: Any
        if rest.startswith("["):
            try:
                value = json.loads(rest)
            except ValueError:
                raise ManagerError(f"--change {change!r}: not a JSON list") from None
        else:
            value = ["/bin/sh", "-c", rest] if word in _LIST_FORM else rest.split()
        if word == "VOLUME":
            cfg.setdefault("Volumes", {}).update({v: {} for v in value})
        else:
            cfg["Cmd" if word == "CMD" else "Entrypoint"] = value
    elif word in ("ENV", "LABEL"):
        pairs = shlex.split(rest)
        if word == "ENV" and len(pairs) >= 2 and "=" not in pairs[0]:
            pairs = [f"{pairs[0]}={' '.join(pairs[1:])}"]
        for pair in pairs:
            key, eq, val = pair.partition("=")
            if not eq:
                raise ManagerError(f"--change {change!r}: expected KEY=value")
            if word == "ENV":
                env = [e for e in cfg.get("Env", []) if not e.startswith(key + "=")]
                cfg["Env"] = [*env, f"{key}={val}"]
            else:
                cfg.setdefault("Labels", {})[key] = val
    elif word == "WORKDIR":
        cfg["WorkingDir"] = rest
    elif word == "USER":
        cfg["User"] = rest
    elif word == "STOPSIGNAL":
        cfg["StopSignal"] = rest
    elif word == "EXPOSE":
        for port in rest.split():
            cfg.setdefault("ExposedPorts", {})[port if "/" in port else f"{port}/tcp"] = {}
    else:
        raise ManagerError(f"--change {change!r}: unsupported instruction {word}")


def _compression(path: str) -> str:
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic[:2] == b"\x1f\x8b":
        return "gzip"
    if magic == b"\x28\xb5\x2f\xfd":
        return "zstd"
    return "none"


_LAYER_TYPE = {"gzip": manifest.OCI_LAYER_GZIP, "zstd": manifest.OCI_LAYER_ZSTD, "none": manifest.OCI_LAYER}


def import_tarball(
    root: str, path: str, name: str | None, changes: list[str], message: str = ""
) -> records.ImageRecord:
    target = reference.parse(name) if name else None
    cfg: dict[str, Any] = {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}
    for change in changes:
        apply_change(cfg, change)
    compression = _compression(path)
    with store.locked(root, "gc", shared=True):
        digest = store.put_file(root, path)
        with store.VerifyingReader(root, digest) as blob, layers.decompressed(blob, compression) as raw:
            hashed = layers.HashingReader(raw)
            hashed.drain()
        now = timefmt.rfc3339(time.time())
        plat = manifest.host().split("/")
        config = {
            "created": now,
            "architecture": plat[1],
            "os": plat[0],
            **({"variant": plat[2]} if len(plat) > 2 else {}),
            "config": cfg,
            "rootfs": {"type": "layers", "diff_ids": [hashed.digest]},
            "history": [
                {"created": now, "created_by": "ocirtctl import", **({"comment": message} if message else {})}
            ],
        }
        config_bytes = json.dumps(config).encode()
        config_digest = store.put(root, config_bytes)
        size = store.size(root, digest)
        doc = {
            "schemaVersion": 2,
            "mediaType": manifest.OCI_MANIFEST,
            "config": {"mediaType": manifest.OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
            "layers": [{"mediaType": _LAYER_TYPE[compression], "digest": digest, "size": size}],
        }
        data = json.dumps(doc).encode()
        store.put(root, data)
        rec = archive.record_for(root, data, manifest.OCI_MANIFEST)
        return archive.commit(root, rec, [str(target)] if target else [])

"""Test images built from local files (Debian's busybox-static), written as OCI layouts and
pushed with skopeo, so what ocirt pulls was made by a tool other than ocirt.

    layer = busybox_layer()                       # uncompressed tar bytes
    img = write_layout(dir, [layer], tag="v1", config={"Cmd": ["sh"]})
    push(dir, "v1", reg.ref("test/busybox:v1"), reg)   # skopeo copy oci:... docker://...

``httpd_image`` is a busybox image whose default command serves ``/var/www`` with
busybox ``httpd`` on port 80 (for container tests).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from dataclasses import dataclass, field
from typing import Any

from ocirt.testing.bundle import applets

from support.registry import Registry

MTIME = 1_700_000_000
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
LAYER_TYPES = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Layer:
    """A layer tarball written entry by entry (PAX format, fixed mtimes)."""

    def __init__(self) -> None:
        self._buf = io.BytesIO()
        self._tar = tarfile.open(fileobj=self._buf, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115

    def _add(self, info: tarfile.TarInfo, data: bytes | None = None) -> Layer:
        info.mtime = info.mtime or MTIME
        if data is not None:
            info.size = len(data)
        self._tar.addfile(info, io.BytesIO(data) if data is not None else None)
        return self

    @staticmethod
    def _info(name: str, kind: bytes, mode: int, uid: int, gid: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.uid, info.gid = kind, mode, uid, gid
        return info

    def dir(self, name: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Layer:
        return self._add(self._info(name, tarfile.DIRTYPE, mode, uid, gid))

    def file(
        self,
        name: str,
        data: bytes,
        mode: int = 0o644,
        uid: int = 0,
        gid: int = 0,
        xattrs: dict[str, str] | None = None,
    ) -> Layer:
        info = self._info(name, tarfile.REGTYPE, mode, uid, gid)
        if xattrs:
            info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
        return self._add(info, data)

    def symlink(self, name: str, target: str, uid: int = 0, gid: int = 0) -> Layer:
        info = self._info(name, tarfile.SYMTYPE, 0o777, uid, gid)
        info.linkname = target
        return self._add(info)

    def hardlink(self, name: str, target: str) -> Layer:
        info = self._info(name, tarfile.LNKTYPE, 0o644, 0, 0)
        info.linkname = target
        return self._add(info)

    def fifo(self, name: str, mode: int = 0o600) -> Layer:
        return self._add(self._info(name, tarfile.FIFOTYPE, mode, 0, 0))

    def whiteout(self, path: str) -> Layer:
        """Delete ``path`` of a lower layer (``dir/.wh.name``)."""
        head, _, base = path.rstrip("/").rpartition("/")
        return self.file(f"{head}/.wh.{base}" if head else f".wh.{base}", b"")

    def opaque(self, directory: str) -> Layer:
        """Hide everything lower layers put in ``directory``."""
        return self.file(f"{directory.rstrip('/')}/.wh..wh..opq", b"")

    def bytes(self) -> bytes:
        self._tar.close()
        return self._buf.getvalue()


def busybox_layer(extra_users: bool = True) -> Layer:
    """A busybox userland: ``/bin/busybox``, its applet links, ``/etc/passwd`` and group.
    With ``extra_users``, ``app`` (1000:1000, also in group ``staff`` 50)."""
    layer = Layer()
    for d in (
        "bin",
        "sbin",
        "usr",
        "usr/bin",
        "usr/sbin",
        "etc",
        "proc",
        "sys",
        "dev",
        "root",
        "var",
        "var/www",
    ):
        layer.dir(d)
    layer.dir("tmp", 0o1777)
    with open("/bin/busybox", "rb") as f:
        layer.file("bin/busybox", f.read(), 0o755)
    for applet in applets():
        if applet != "bin/busybox":
            layer.symlink(applet, "/bin/busybox")
    passwd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
    group = "root:x:0:\nnogroup:x:65534:\n"
    if extra_users:
        passwd += "app:x:1000:1000:app:/home/app:/bin/sh\n"
        group += "app:x:1000:\nstaff:x:50:app\n"
    layer.file("etc/passwd", passwd.encode()).file("etc/group", group.encode())
    return layer


def compress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, compresslevel=1, mtime=0)
    if compression == "zstd":
        return subprocess.run(["zstd", "-q", "-c", "-3"], input=data, capture_output=True, check=True).stdout
    return data


@dataclass
class Image:
    """What ``write_layout`` wrote: digests to compare with what a puller reports."""

    manifest_digest: str
    manifest_size: int
    config_digest: str
    layer_digests: list[str]
    diff_ids: list[str]
    media_type: str
    platform: dict[str, str] = field(default_factory=dict)


def _write_blob(layout: str, data: bytes) -> str:
    digest = sha256(data)
    path = os.path.join(layout, "blobs", "sha256", digest[7:])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return digest


def _add_to_index(layout: str, entry: dict[str, Any]) -> None:
    path = os.path.join(layout, "index.json")
    index: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    if os.path.exists(path):
        with open(path) as f:
            index = json.load(f)
    tag = entry.get("annotations", {}).get("org.opencontainers.image.ref.name")
    index["manifests"] = [
        m
        for m in index["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag
    ] + [entry]
    with open(path, "w") as f:
        json.dump(index, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)


def write_layout(
    layout: str,
    layers: list[bytes],
    *,
    tag: str | None = "latest",
    config: dict[str, Any] | None = None,
    compression: str = "gzip",
    arch: str = "amd64",
    variant: str | None = None,
) -> Image:
    """Add an image made of ``layers`` (uncompressed tars, bottom first) to the OCI layout
    ``layout``."""
    os.makedirs(layout, exist_ok=True)
    compressed = [compress(data, compression) for data in layers]
    diff_ids = [sha256(data) for data in layers]
    platform = {"architecture": arch, "os": "linux", **({"variant": variant} if variant else {})}
    image_config = {
        "created": "2024-01-01T00:00:00Z",
        **platform,
        "config": config
        if config is not None
        else {"Cmd": ["sh"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [
            {"created": "2024-01-01T00:00:00Z", "created_by": f"layer {i}"} for i in range(len(layers))
        ],
    }
    config_bytes = json.dumps(image_config, sort_keys=True).encode()
    config_digest = _write_blob(layout, config_bytes)
    layer_type = LAYER_TYPES[compression]
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "digest": config_digest,
            "size": len(config_bytes),
        },
        "layers": [
            {"mediaType": layer_type, "digest": _write_blob(layout, blob), "size": len(blob)}
            for blob in compressed
        ],
    }
    data = json.dumps(doc, indent=2).encode()
    digest = _write_blob(layout, data)
    if tag is not None:
        entry = {"mediaType": doc["mediaType"], "digest": digest, "size": len(data), "platform": platform}
        _add_to_index(layout, {**entry, "annotations": {"org.opencontainers.image.ref.name": tag}})
    return Image(
        digest,
        len(data),
        config_digest,
        [sha256(b) for b in compressed],
        diff_ids,
        str(doc["mediaType"]),
        platform,
    )


def write_index(layout: str, images: list[Image], tag: str) -> str:
    """A multi-platform index over ``images`` (written with ``tag=None``), tagged ``tag``."""
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": i.media_type,
                "digest": i.manifest_digest,
                "size": i.manifest_size,
                "platform": i.platform,
            }
            for i in images
        ],
    }
    data = json.dumps(doc, indent=2).encode()
    digest = _write_blob(layout, data)
    entry = {"mediaType": OCI_INDEX, "digest": digest, "size": len(data)}
    _add_to_index(layout, {**entry, "annotations": {"org.opencontainers.image.ref.name": tag}})
    return digest


def push(layout: str, tag: str, dest: str, registry: Registry | None = None, docker: bool = False) -> None:
    """``skopeo copy --all --preserve-digests oci:layout:tag docker://dest`` (plain HTTP);
    ``docker`` converts to Docker schema2 instead (new manifest digest: read it back)."""
    keep = ["--format", "v2s2"] if docker else ["--preserve-digests"]
    cmd = ["skopeo", "copy", "--quiet", "--all", *keep, "--dest-tls-verify=false"]
    if registry is not None and registry.user:
        cmd.append(f"--dest-creds={registry.user}:{registry.password}")
    subprocess.run(
        [*cmd, f"oci:{layout}:{tag}", f"docker://{dest}"], check=True, capture_output=True, timeout=300
    )


def httpd_image(layout: str, tag: str = "httpd") -> Image:
    """busybox with ``httpd -f -p 80 -h /var/www`` as its command and an index page."""
    layer = busybox_layer()
    layer.file("var/www/index.html", b"hello from ocirt\n")
    config = {
        "Cmd": ["httpd", "-f", "-v", "-p", "80", "-h", "/var/www"],
        "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
        "ExposedPorts": {"80/tcp": {}},
        "WorkingDir": "/var/www",
        "StopSignal": "SIGTERM",
    }
    return write_layout(layout, [layer.bytes()], tag=tag, config=config)

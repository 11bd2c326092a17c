"""Manifests, indexes and their media types (OCI and Docker schema2), and platform choice.

Pure functions over parsed JSON: the pull and push code decides what to fetch from here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from ocirt.manager.errors import ManagerError
from ocirt.manager.images import digest as digests

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_ND = "application/vnd.oci.image.layer.nondistributable.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEXES = (OCI_INDEX, DOCKER_LIST)
ACCEPT = ", ".join((*MANIFESTS, *INDEXES))

_COMPRESSION = {
    OCI_LAYER: "none",
    OCI_LAYER_ND: "none",
    OCI_LAYER_GZIP: "gzip",
    OCI_LAYER + "+gzip": "gzip",
    OCI_LAYER_ND + "+gzip": "gzip",
    OCI_LAYER_ZSTD: "zstd",
    OCI_LAYER_ND + "+zstd": "zstd",
    DOCKER_LAYER: "gzip",
    DOCKER_FOREIGN: "gzip",
    "application/vnd.docker.image.rootfs.diff.tar": "none",
}


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()
    platform: str = ""
    annotations: tuple[tuple[str, str], ...] = ()


def descriptor(doc: Any, where: str) -> Descriptor:
    """A descriptor from its JSON, with the fields checked (``where`` names it in errors)."""
    if not isinstance(doc, dict):
        raise ManagerError(f"{where}: descriptor must be an object")
    media_type, digest, size = doc.get("mediaType"), doc.get("digest"), doc.get("size")
    if not isinstance(media_type, str) or not isinstance(digest, str):
        raise ManagerError(f"{where}: descriptor needs mediaType and digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManagerError(f"{where}.size: must be a non-negative integer")
    digests.validate(digest, f"{where}.digest")
    plat = doc.get("platform")
    annotations = doc.get("annotations") or {}
    return Descriptor(
        media_type,
        digest,
        size,
        tuple(u for u in doc.get("urls") or () if isinstance(u, str)),
        platform_string(plat) if isinstance(plat, dict) else "",
        tuple(sorted((str(k), str(v)) for k, v in annotations.items()))
        if isinstance(annotations, dict)
        else (),
    )


def load(data: bytes, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManagerError(f"{where}: not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ManagerError(f"{where}: must be a JSON object")
    return doc


def media_type_of(doc: dict[str, Any], fallback: str) -> str:
    """The document's own ``mediaType``, or what the registry said, or what its shape says."""
    mt = doc.get("mediaType") or fallback
    if mt in (*MANIFESTS, *INDEXES):
        return str(mt)
    if "manifests" in doc:
        return OCI_INDEX
    if "layers" in doc and "config" in doc:
        return OCI_MANIFEST
    raise ManagerError(f"unsupported manifest media type {mt!r}")


def layers_of(doc: dict[str, Any]) -> list[Descriptor]:
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise ManagerError("manifest.layers: must be a list")
    return [descriptor(d, f"manifest.layers[{i}]") for i, d in enumerate(layers)]


def config_of(doc: dict[str, Any]) -> Descriptor:
    return descriptor(doc.get("config"), "manifest.config")


def compression(media_type: str) -> str:
    """``none``, ``gzip`` or ``zstd``; an unknown layer type is an error, not a guess."""
    try:
        return _COMPRESSION[media_type]
    except KeyError:
        raise ManagerError(f"unsupported layer media type {media_type!r}") from None


def is_foreign(desc: Descriptor) -> bool:
    """Non-distributable layers live elsewhere (``urls``): not pushed, not fetched from here."""
    return desc.media_type in (DOCKER_FOREIGN, OCI_LAYER_ND) or desc.media_type.startswith(OCI_LAYER_ND + "+")


_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "i686": "386",
    "i386": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


def host() -> str:
    """The host's platform in ``os/arch[/variant]`` form, what an index is matched against."""
    machine = os.uname().machine  # what platform.machine() reads, without its import
    arch = _ARCH.get(machine, machine)
    if arch == "arm64":
        return "linux/arm64/v8"
    if arch == "arm":
        return "linux/arm/v7"
    return f"linux/{arch}"


def platform_string(doc: dict[str, Any]) -> str:
    parts = [str(doc.get("os", "")), str(doc.get("architecture", ""))]
    if doc.get("variant"):
        parts.append(str(doc["variant"]))
    return "/".join(parts)


def normalize_platform(text: str) -> str:
    """``linux/arm64`` means ``linux/arm64/v8``, as in containerd's platforms package."""
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ManagerError(f"--platform: expected os/arch[/variant], got {text!r}")
    os_name, arch = parts[0].lower(), _ARCH.get(parts[1].lower(), parts[1].lower())
    variant = parts[2].lower() if len(parts) == 3 else ""
    if arch == "arm64" and variant in ("", "8"):
        variant = "v8"
    if arch == "arm" and variant in ("", "7"):
        variant = "v7"
    return "/".join(p for p in (os_name, arch, variant) if p)


def select(index: dict[str, Any], wanted: str) -> Descriptor:
    """The manifest in ``index`` for platform ``wanted``; an exact variant beats none."""
    entries = index.get("manifests")
    if not isinstance(entries, list):
        raise ManagerError("index.manifests: must be a list")
    want = normalize_platform(wanted)
    found: list[Descriptor] = []
    for i, entry in enumerate(entries):
        desc = descriptor(entry, f"index.manifests[{i}]")
        if desc.media_type in MANIFESTS and desc.platform and normalize_platform(desc.platform) == want:
            return desc
        if desc.platform and normalize_platform(desc.platform).rsplit("/", 1)[0] == want:
            found.append(desc)
    if found:
        return found[0]
    have = sorted({(d.get("platform") and platform_string(d["platform"])) or "?" for d in entries})
    raise ManagerError(f"no manifest for platform {want} in the index (has: {', '.join(map(str, have))})")

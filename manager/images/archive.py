"""Images in and out as files: ``save``/``load`` (oci-archive and docker-archive) and
``import`` of a rootfs tarball.

oci-archive is a tar of an OCI image layout holding the stored blobs unchanged, so manifest
digests survive a round trip. docker-archive is what ``docker save`` (25 and later) writes:
the same OCI layout plus ``manifest.json``/``repositories`` for older readers, layers
uncompressed as docker stores them. ``load`` takes either (and docker's legacy archives,
``manifest.json`` only), checks every blob against its digest and unpacks before recording,
so a bad or hostile archive leaves no image behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
from typing import IO, Any

from ocirt.manager import events
from ocirt.manager.errors import ManagerError
from ocirt.manager.images import digest as digests
from ocirt.manager.images import layers, manifest, records, reference, snapshots, store
from ocirt.manager.images.records import ImageRecord

REF_NAME = "org.opencontainers.image.ref.name"
IMAGE_NAME = "io.containerd.image.name"
FORMATS = ("docker-archive", "oci-archive")


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def _add_blob(tar: tarfile.TarFile, root: str, digest: str, added: dict[str, int]) -> None:
    if digest in added:
        return
    path = store.blob_path(root, digest)
    added[digest] = os.path.getsize(path)
    info = tar.gettarinfo(path, "blobs/" + digest.replace(":", "/"))
    info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = 0o644, 0, 0, 0, "", ""
    with store.VerifyingReader(root, digest) as f:
        tar.addfile(info, f)
        f.drain()


def save(root: str, names: list[str], out: IO[bytes], fmt: str = "docker-archive") -> None:
    """Write the images ``names`` to ``out`` as ``fmt``."""
    if fmt not in FORMATS:
        raise ManagerError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    picked = [(n, records.get(root, n)) for n in names]
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        added: dict[str, int] = {}
        index: list[dict[str, Any]] = []
        legacy: list[dict[str, Any]] = []
        repos: dict[str, dict[str, str]] = {}
        for name, rec in picked:
            tags = _tags_for(name, rec)
            if fmt == "oci-archive":
                entry = _save_oci(tar, root, rec, added)
            else:
                entry, layer_paths = _save_docker(tar, root, rec, added)
                legacy.append(
                    {"Config": f"blobs/{rec.id.replace(':', '/')}", "RepoTags": tags, "Layers": layer_paths}
                )
                for t in tags:
                    r = reference.parse(t)
                    repos.setdefault(r.familiar.rpartition(":")[0], {})[r.tag or "latest"] = rec.id.partition(
                        ":"
                    )[2]
            for t in tags or [""]:
                ann = {REF_NAME: reference.parse(t).tag or "latest", IMAGE_NAME: t} if t else {}
                index.append({**entry, **({"annotations": ann} if ann else {})})
        _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        doc = {"schemaVersion": 2, "mediaType": manifest.OCI_INDEX, "manifests": index}
        _add_bytes(tar, "index.json", json.dumps(doc).encode())
        if fmt == "docker-archive":
            _add_bytes(tar, "manifest.json", json.dumps(legacy).encode())
            _add_bytes(tar, "repositories", json.dumps(repos).encode())
    for image_id in dict.fromkeys(rec.id for _, rec in picked):
        events.record(root, "image", "save", image_id, {"name": image_id})


def _tags_for(name: str, rec: ImageRecord) -> list[str]:
    """The names saved with an image: the one asked for, or all of them for an id."""
    try:
        ref = reference.parse(name)
    except ManagerError:
        return list(rec.names)
    return [str(ref)] if str(ref) in rec.names else list(rec.names)


def _save_oci(tar: tarfile.TarFile, root: str, rec: ImageRecord, added: dict[str, int]) -> dict[str, Any]:
    data = store.read(root, rec.manifest_digest)
    doc = manifest.load(data, "manifest")
    for desc in [manifest.config_of(doc), *manifest.layers_of(doc)]:
        if not manifest.is_foreign(desc):
            _add_blob(tar, root, desc.digest, added)
    _add_blob(tar, root, rec.manifest_digest, added)
    return {"mediaType": rec.media_type, "digest": rec.manifest_digest, "size": len(data)}


def _save_docker(
    tar: tarfile.TarFile, root: str, rec: ImageRecord, added: dict[str, int]
) -> tuple[dict[str, Any], list[str]]:
    """Layers go in uncompressed, named by diff_id, under a new OCI manifest (docker's way)."""
    doc = manifest.load(store.read(root, rec.manifest_digest), "manifest")
    paths = []
    descs = []
    for desc, diff_id in zip(manifest.layers_of(doc), rec.diff_ids, strict=True):
        name = "blobs/" + diff_id.replace(":", "/")
        paths.append(name)
        if diff_id not in added:
            added[diff_id] = _add_uncompressed(tar, root, desc, diff_id, name)
        descs.append({"mediaType": manifest.OCI_LAYER, "digest": diff_id, "size": added[diff_id]})
    _add_blob(tar, root, rec.id, added)
    new = {
        "schemaVersion": 2,
        "mediaType": manifest.OCI_MANIFEST,
        "config": {"mediaType": manifest.OCI_CONFIG, "digest": rec.id, "size": store.size(root, rec.id)},
        "layers": descs,
    }
    data = json.dumps(new).encode()
    digest = digests.of_bytes(data)
    if digest not in added:
        added[digest] = len(data)
        _add_bytes(tar, "blobs/" + digest.replace(":", "/"), data)
    return {"mediaType": manifest.OCI_MANIFEST, "digest": digest, "size": len(data)}, paths


def _add_uncompressed(
    tar: tarfile.TarFile, root: str, desc: manifest.Descriptor, diff_id: str, name: str
) -> int:
    with tempfile.TemporaryFile() as tmp:
        with store.VerifyingReader(root, desc.digest) as blob:
            with layers.decompressed(blob, manifest.compression(desc.media_type)) as raw:
                hashed = layers.HashingReader(raw)
                while chunk := hashed.read(1 << 20):
                    tmp.write(chunk)
            blob.drain()
        if hashed.digest != diff_id:
            raise ManagerError(f"layer {desc.digest}: uncompressed content does not match {diff_id}")
        info = tarfile.TarInfo(name)
        info.size, info.mode = tmp.tell(), 0o644
        tmp.seek(0)
        tar.addfile(info, tmp)
        return info.size


def _put_member(root: str, tar: tarfile.TarFile, name: str, digest: str | None = None) -> str:
    """Copy an archive member into the store; with ``digest``, refuse other content."""
    try:
        member = tar.getmember(name)
    except KeyError:
        raise ManagerError(f"archive: {name} is missing") from None
    src = tar.extractfile(member)
    if src is None:
        raise ManagerError(f"archive: {name} is not a regular file")
    if digest is None:
        h = hashlib.sha256()
        while chunk := src.read(1 << 20):
            h.update(chunk)
        digest = f"sha256:{h.hexdigest()}"
        src = tar.extractfile(member)
        assert src is not None
    with store.ingest(root, digest, member.size) as ing:
        if ing is not None:
            ing.reset()
            while chunk := src.read(1 << 20):
                ing.write(chunk)
            ing.commit()
    return digest


def record_for(root: str, manifest_bytes: bytes, media_type: str) -> ImageRecord:
    """An ``ImageRecord`` for a stored manifest (its config and layers already stored)."""
    doc = manifest.load(manifest_bytes, "manifest")
    config_desc = manifest.config_of(doc)
    config = manifest.load(store.read(root, config_desc.digest), "image config")
    descs = manifest.layers_of(doc)
    rootfs = config.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or len(diff_ids) != len(descs):
        raise ManagerError("image config rootfs.diff_ids: does not match the manifest's layers")
    checked = tuple(digests.validate(str(d), "rootfs.diff_ids") for d in diff_ids)
    digest = digests.of_bytes(manifest_bytes)
    return records.new_record(digest, media_type, config_desc, config, descs, checked)


def commit(root: str, rec: ImageRecord, names: list[str]) -> ImageRecord:
    """Unpack first (checking every layer), then record: a bad layer leaves no image."""
    snapshots.unpack(root, rec)
    out = records.add(root, rec, None)
    for name in names:
        records.tag(root, out.id, reference.parse(name))
    return records.get(root, out.id)


def load(root: str, path: str) -> list[ImageRecord]:
    """Load every image of an oci-archive or docker-archive at ``path``."""
    try:
        tar = tarfile.open(path, mode="r:*")  # noqa: SIM115
    except (tarfile.TarError, OSError) as exc:
        raise ManagerError(f"load: {path}: not a tar archive: {exc}") from None
    with store.locked(root, "gc", shared=True), tar:
        names = set(tar.getnames())
        if "index.json" in names:
            return _load_oci(root, tar)
        if "manifest.json" in names:
            return _load_legacy(root, tar)
    raise ManagerError(
        f"load: {path}: neither an OCI layout (index.json) nor a docker archive (manifest.json)"
    )


def _read_member(tar: tarfile.TarFile, name: str) -> bytes:
    try:
        f = tar.extractfile(name)
    except KeyError:
        f = None
    if f is None:
        raise ManagerError(f"archive: {name} is missing")
    return f.read(64 << 20)


def _blob_name(digest: str) -> str:
    return "blobs/" + digests.validate(digest).replace(":", "/")


def _load_oci(root: str, tar: tarfile.TarFile) -> list[ImageRecord]:
    index = manifest.load(_read_member(tar, "index.json"), "index.json")
    out: list[ImageRecord] = []
    entries = index.get("manifests")
    if not isinstance(entries, list):
        raise ManagerError("index.json: manifests must be a list")
    for i, entry in enumerate(entries):
        desc = manifest.descriptor(entry, f"index.json manifests[{i}]")
        data = _read_member(tar, _blob_name(desc.digest))
        if digests.of_bytes(data) != desc.digest:
            raise ManagerError(f"archive: blob {desc.digest} does not match its digest")
        doc = manifest.load(data, f"manifest {desc.digest}")
        media_type = manifest.media_type_of(doc, desc.media_type)
        if media_type in manifest.INDEXES:
            desc = manifest.select(doc, manifest.host())
            data = _read_member(tar, _blob_name(desc.digest))
            if digests.of_bytes(data) != desc.digest:
                raise ManagerError(f"archive: blob {desc.digest} does not match its digest")
            doc = manifest.load(data, f"manifest {desc.digest}")
            media_type = manifest.media_type_of(doc, desc.media_type)
        for blob in [manifest.config_of(doc), *manifest.layers_of(doc)]:
            _put_member(root, tar, _blob_name(blob.digest), blob.digest)
        store.put(root, data, desc.digest)
        ann = dict(entry.get("annotations") or {})
        name = ann.get(IMAGE_NAME) or ann.get(REF_NAME) or ""
        names = [name] if ("/" in name or ":" in name) else []
        out.append(commit(root, record_for(root, data, media_type), names))
    return out


def _layer_type(root: str, digest: str) -> str:
    with open(store.blob_path(root, digest), "rb") as f:
        magic = f.read(4)
    if magic[:2] == b"\x1f\x8b":
        return manifest.OCI_LAYER_GZIP
    if magic == b"\x28\xb5\x2f\xfd":
        return manifest.OCI_LAYER_ZSTD
    return manifest.OCI_LAYER


def _load_legacy(root: str, tar: tarfile.TarFile) -> list[ImageRecord]:
    """``docker save`` before 25: manifest.json names the config and each layer.tar."""
    entries = json.loads(_read_member(tar, "manifest.json"))
    if not isinstance(entries, list):
        raise ManagerError("manifest.json: must be a list")
    out = []
    for entry in entries:
        config_digest = _put_member(root, tar, str(entry.get("Config")))
        layer_digests = [_put_member(root, tar, str(p)) for p in entry.get("Layers") or []]
        doc = {
            "schemaVersion": 2,
            "mediaType": manifest.OCI_MANIFEST,
            "config": {
                "mediaType": manifest.OCI_CONFIG,
                "digest": config_digest,
                "size": store.size(root, config_digest),
            },
            "layers": [
                {"mediaType": _layer_type(root, d), "digest": d, "size": store.size(root, d)}
                for d in layer_digests
            ],
        }
        data = json.dumps(doc).encode()
        store.put(root, data)
        out.append(
            commit(root, record_for(root, data, manifest.OCI_MANIFEST), list(entry.get("RepoTags") or []))
        )
    return out

"""``ocirtctl push``: blobs the registry lacks (checked with ``HEAD``), then the manifest.

A blob the registry already holds in another repository (we pulled it from there) is
linked with a cross-repository mount instead of uploaded. Uploads are monolithic up to
``chunk_size`` and chunked (``PATCH`` with ``Content-Range``) above it; the registry checks
every blob's digest. The manifest is pushed byte for byte as stored, so its digest is the one
``ocirtctl images --digests`` shows and the one skopeo and podman will see.
Non-distributable layers are left out.
"""

from __future__ import annotations

import http.client
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import TextIO

from ocirt.manager.errors import ManagerError
from ocirt.manager.images import manifest, records, reference, store
from ocirt.manager.images.progress import Progress
from ocirt.manager.images.registry.client import Client

WORKERS = 4
CHUNK_SIZE = 32 << 20


def push(
    root: str,
    name: str,
    dest: str | None = None,
    *,
    tls_verify: bool = True,
    quiet: bool = False,
    authfile: str | None = None,
    chunk_size: int = CHUNK_SIZE,
    out: TextIO | None = None,
) -> str:
    """Push image ``name`` to ``dest`` (default: its own name); returns the manifest digest."""
    try:
        return _push(root, name, dest, tls_verify, quiet, authfile, chunk_size, out)
    except (OSError, http.client.HTTPException) as exc:
        raise ManagerError(f"push {dest or name}: {exc}") from None


def _push(
    root: str,
    name: str,
    dest: str | None,
    tls_verify: bool,
    quiet: bool,
    authfile: str | None,
    chunk_size: int,
    out: TextIO | None,
) -> str:
    rec = records.get(root, name)
    target = reference.parse(dest or name)
    if chunk_size <= 0:
        raise ManagerError("--chunk-size: must be positive")
    data = store.read(root, rec.manifest_digest)
    doc = manifest.load(data, "manifest")
    blobs = [manifest.config_of(doc), *manifest.layers_of(doc)]
    client = Client(target.domain, tls_verify=tls_verify, authfile=authfile)
    progress = Progress("Pushing", out or sys.stderr, quiet)
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="push") as pool:
        futures = [pool.submit(_push_blob, root, client, target.path, d, chunk_size, progress) for d in blobs]
        for f in futures:
            f.result()
    progress.close()
    digest = client.put_manifest(target.path, target.tag or rec.manifest_digest, data, rec.media_type)
    if digest != rec.manifest_digest:
        raise ManagerError(f"registry stored manifest {digest}, expected {rec.manifest_digest}")
    for d in blobs:
        records.note_source(root, d.digest, target.repository)
    records.add_repo_digest(root, rec.id, target.repository, digest)
    if target.tag:
        records.tag(root, rec.id, target)
    return digest


def _push_blob(
    root: str, client: Client, repo: str, desc: manifest.Descriptor, chunk_size: int, progress: Progress
) -> None:
    progress.add(desc.digest, desc.size)
    if manifest.is_foreign(desc):
        progress.finish(desc.digest, "skipped (non-distributable)")
        return
    if client.blob_exists(repo, desc.digest):
        progress.update(desc.digest, desc.size)
        progress.finish(desc.digest, "already exists")
        return
    location: str | None = None
    prefix = f"{client.domain}/"
    for source in records.sources(root, desc.digest):
        if source.startswith(prefix) and source != prefix + repo:
            location = client.start_upload(repo, (desc.digest, source.removeprefix(prefix)))
            if location is None:
                progress.update(desc.digest, desc.size)
                progress.finish(desc.digest, f"mounted from {source}")
                return
            break
    if location is None:
        location = client.start_upload(repo)
    if location is None:
        raise ManagerError(f"registry {client.domain} gave no upload location")
    with open(store.blob_path(root, desc.digest), "rb") as f:
        client.upload(
            repo, location, desc.digest, f, desc.size, chunk_size, lambda n: progress.update(desc.digest, n)
        )
    progress.finish(desc.digest, "pushed")

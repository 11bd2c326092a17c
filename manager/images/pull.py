"""``ocirtctl pull``: resolve a reference, fetch what is missing in parallel, unpack, record.

Layers download on a small thread pool (one keep-alive connection each) while the main
thread unpacks them in order, each from its partial file as it grows (``transfer``), so
unpacking overlaps the transfer.
Manifests and the config are verified in memory and stored only once every layer is in, so
a failed pull leaves partial files to resume from but no image and no dangling manifest.
"""

from __future__ import annotations

import http.client
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TextIO

from ocirt.manager.errors import ManagerError
from ocirt.manager.images import digest as digests
from ocirt.manager.images import manifest, records, reference, snapshots, store
from ocirt.manager.images.progress import Progress
from ocirt.manager.images.records import ImageRecord
from ocirt.manager.images.registry.client import Client
from ocirt.manager.images.transfer import Restarted, Transfer
from ocirt.manager.images.transfer import reader as transfer_reader

WORKERS = 4


def _resolve(
    client: Client, ref: reference.Reference, want: str
) -> tuple[list[tuple[bytes, str]], dict[str, Any], str, str]:
    """The manifest for ``want``: (blobs to store, manifest doc, its digest, its media type)."""
    data, header_mt, top = client.get_manifest(ref.path, ref.digest or ref.tag or "latest")
    doc = manifest.load(data, f"{ref} manifest")
    media_type = manifest.media_type_of(doc, header_mt)
    keep = [(data, top)]
    if media_type in manifest.INDEXES:
        desc = manifest.select(doc, want)
        data, header_mt, digest = client.get_manifest(ref.path, desc.digest)
        doc = manifest.load(data, f"{ref} manifest {desc.digest}")
        media_type = manifest.media_type_of(doc, header_mt or desc.media_type)
        if media_type not in manifest.MANIFESTS:
            raise ManagerError(f"{ref}: index entry {desc.digest} is not an image manifest")
        keep.append((data, digest))
    return keep, doc, keep[-1][1], media_type


def pull(
    root: str,
    ref_text: str,
    *,
    tls_verify: bool = True,
    platform: str | None = None,
    quiet: bool = False,
    authfile: str | None = None,
    out: TextIO | None = None,
) -> ImageRecord:
    """Pull ``ref_text`` into the store under ``root``, unpacked and ready for ``snapshots.prepare``."""
    ref = reference.parse(ref_text)
    try:
        with store.locked(root, "gc", shared=True):
            return _pull(root, ref, tls_verify, platform, quiet, authfile, out)
    except (OSError, http.client.HTTPException) as exc:
        raise ManagerError(f"pull {ref}: {exc}") from None


def _pull(
    root: str,
    ref: reference.Reference,
    tls_verify: bool,
    platform: str | None,
    quiet: bool,
    authfile: str | None,
    out: TextIO | None,
) -> ImageRecord:
    want = manifest.normalize_platform(platform) if platform else manifest.host()
    client = Client(ref.domain, tls_verify=tls_verify, authfile=authfile)
    keep, doc, manifest_digest, media_type = _resolve(client, ref, want)
    config_desc = manifest.config_of(doc)
    config_bytes = _small_blob(root, client, ref.path, config_desc)
    config = manifest.load(config_bytes, f"{ref} config")
    layer_descs = manifest.layers_of(doc)
    diff_ids = _diff_ids(config, len(layer_descs))
    image_id = config_desc.digest
    progress = Progress("Pulling", out or sys.stderr, quiet)
    chain = digests.chain_ids(diff_ids)
    transfers = [Transfer() for _ in layer_descs]
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="pull") as pool:
        futures = [
            pool.submit(_fetch, root, client, ref.path, d, progress, t)
            for d, t in zip(layer_descs, transfers, strict=True)
        ]
        try:
            for i, (future, desc) in enumerate(zip(futures, layer_descs, strict=True)):
                _unpack(root, chain[: i + 1], desc, diff_ids[i], image_id, transfers[i], future)
        except BaseException:
            _cancel(futures)
            raise
    progress.close()
    store.put(root, config_bytes, config_desc.digest)
    for data, digest in keep:
        store.put(root, data, digest)
    for desc in layer_descs:
        records.note_source(root, desc.digest, ref.repository)
    rec = records.new_record(manifest_digest, media_type, config_desc, config, layer_descs, tuple(diff_ids))
    return records.add(root, rec, ref if ref.tag else None, (ref.repository, keep[0][1]))


def _unpack(
    root: str,
    chain: list[str],
    desc: manifest.Descriptor,
    diff_id: str,
    image_id: str,
    transfer: Transfer,
    future: Future[None],
) -> None:
    """Unpack while the layer downloads; from the store when it was already there or the
    download restarted. A failed download wins over what the unpack saw."""
    source = transfer_reader(transfer)
    if source is not None:
        try:
            snapshots.unpack_layer(root, chain, desc, diff_id, image_id, source)
        except Restarted:
            pass
        except BaseException:
            future.result()
            raise
        finally:
            source.close()
    future.result()
    snapshots.unpack_layer(root, chain, desc, diff_id, image_id)


def _cancel(futures: list[Future[None]]) -> None:
    for f in futures:
        f.cancel()
    for f in futures:
        if not f.cancelled():
            try:
                f.result()
            except BaseException:
                pass


def _diff_ids(config: dict[str, Any], count: int) -> list[str]:
    rootfs = config.get("rootfs")
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(ids, list) or not all(isinstance(d, str) for d in ids):
        raise ManagerError("image config rootfs.diff_ids: must be a list of digests")
    if len(ids) != count:
        raise ManagerError(f"image config rootfs.diff_ids: {len(ids)} entries for {count} layers")
    return [digests.validate(d, "image config rootfs.diff_ids") for d in ids]


def _small_blob(root: str, client: Client, repo: str, desc: manifest.Descriptor) -> bytes:
    """The config: fetched into memory (it is small) and checked against its descriptor."""
    if store.has(root, desc.digest):
        return store.read(root, desc.digest)
    if desc.size > 64 << 20:
        raise ManagerError(f"config {desc.digest}: {desc.size} bytes is too large")
    resp = client.get_blob(repo, desc.digest)
    if resp.status != 200:
        raise client.error(resp, f"config {desc.digest}")
    data = resp.read()
    if len(data) != desc.size or digests.of_bytes(data, desc.digest.partition(":")[0]) != desc.digest:
        raise ManagerError(f"config {desc.digest}: content does not match its digest, nothing stored")
    return data


def _fetch(
    root: str, client: Client, repo: str, desc: manifest.Descriptor, progress: Progress, transfer: Transfer
) -> None:
    try:
        _fetch_into(root, client, repo, desc, progress, transfer)
    finally:
        transfer.finish()


def _fetch_into(
    root: str, client: Client, repo: str, desc: manifest.Descriptor, progress: Progress, transfer: Transfer
) -> None:
    progress.add(desc.digest, desc.size)
    if (
        manifest.is_foreign(desc)
        and not store.has(root, desc.digest)
        and not client.blob_exists(repo, desc.digest, False)
    ):
        raise ManagerError(f"layer {desc.digest} is non-distributable and not in {client.domain}/{repo}")
    with store.ingest(root, desc.digest, desc.size) as ing:
        if ing is None:
            progress.update(desc.digest, desc.size)
            progress.finish(desc.digest, "already exists")
            return
        if ing.offset:
            progress.update(desc.digest, ing.offset)
        ing.on_reset = transfer.reset
        transfer.started(ing.partial)

        def wrote(n: int) -> None:
            progress.update(desc.digest, n)
            transfer.wrote()

        client.fetch_blob(repo, desc, ing, wrote)
    progress.finish(desc.digest, "pulled")

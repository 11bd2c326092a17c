"""The images API the rest of the manager uses (``ocirtctl`` commands, containers).

Stable entry points: ``pull``, ``get``, ``config``, ``list_images``, plus ``tag``,
``remove``, ``prune`` and ``gc``. Containers build their rootfs with
``snapshots.prepare(root, record, key)`` and their ``config.json`` with ``bundle``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ocirt.manager import events
from ocirt.manager.errors import ManagerError
from ocirt.manager.images import digest as digests
from ocirt.manager.images import manifest, records, reference, snapshots, store
from ocirt.manager.images.records import ImageRecord

if TYPE_CHECKING:
    from typing import TextIO

__all__ = ["ImageRecord", "config", "gc", "get", "list_images", "prune", "pull", "remove", "tag"]


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
    """``pull.pull``, imported on call: the registry client (http, ssl, threads) costs every
    ``ocirtctl run`` of an image already here ~40 ms of imports otherwise."""
    from ocirt.manager.images.pull import pull as pulling

    rec = pulling(
        root, ref_text, tls_verify=tls_verify, platform=platform, quiet=quiet, authfile=authfile, out=out
    )
    ref = reference.parse(ref_text)
    name = reference.Reference(ref.domain, ref.path).familiar
    events.record(root, "image", "pull", ref.familiar, {"name": name})
    return rec


def get(root: str, name_or_id: str) -> ImageRecord:
    """The image named ``name_or_id`` (reference, ``repo@digest``, id or id prefix)."""
    return records.get(root, name_or_id)


def find(root: str, name_or_id: str) -> ImageRecord | None:
    return records.find(root, name_or_id)


def config(root: str, record: ImageRecord) -> dict[str, Any]:
    """The OCI image config JSON of ``record`` (verified against its digest)."""
    return manifest.load(store.read(root, record.id), f"image config {record.id}")


def manifest_of(root: str, record: ImageRecord) -> dict[str, Any]:
    return manifest.load(store.read(root, record.manifest_digest), f"manifest {record.manifest_digest}")


def list_images(root: str) -> list[ImageRecord]:
    """Every image, newest first."""
    return records.all_images(root)


def tag(root: str, source: str, target: str) -> ImageRecord:
    rec = records.get(root, source)
    ref = reference.parse(target)
    if ref.digest:
        raise ManagerError(f"tag {target!r}: a tag cannot contain a digest")
    records.tag(root, rec.id, ref)
    events.record(root, "image", "tag", rec.id, {"name": ref.familiar})
    return records.get(root, rec.id)


def remove(root: str, name_or_id: str, force: bool = False) -> list[str]:
    """``docker rmi``: a name that is one of several untags; the last name (or an id) deletes
    the image, refused while a container's snapshot uses it. Returns docker's
    ``Untagged:``/``Deleted:`` lines."""
    rec = records.get(root, name_or_id)
    lines: list[str] = []
    by_name = name_or_id not in (rec.id, rec.short_id) and not rec.id.startswith(
        "sha256:" + name_or_id.removeprefix("sha256:")
    )
    if by_name and len(rec.names) > 1:
        name = str(reference.parse(name_or_id))
        records.untag(root, name)
        events.record(root, "image", "untag", rec.id, {"name": rec.id})
        return [f"Untagged: {name}"]
    if not by_name and len(rec.names) > 1 and not force:
        raise ManagerError(
            f"image {rec.short_id} is referenced by several names ({', '.join(rec.names)}); use -f"
        )
    users = snapshots.users(root, rec.id)
    if users:
        raise ManagerError(
            f"image {name_or_id!r} is in use by container(s) {', '.join(users)}; remove them first"
        )
    lines.extend(f"Untagged: {n}" for n in rec.names)
    records.delete(root, rec.id)
    for _ in rec.names:
        events.record(root, "image", "untag", rec.id, {"name": rec.id})
    events.record(root, "image", "delete", rec.id, {"name": rec.id})
    lines.append(f"Deleted: {rec.id}")
    gc(root)
    return lines


def prune(root: str, all_images: bool = False) -> list[str]:
    """``docker image prune``: untagged images (with ``all_images``, every image no
    container uses); returns the ids deleted."""
    gone = []
    for rec in records.all_images(root):
        if (not rec.names or all_images) and not snapshots.users(root, rec.id):
            records.delete(root, rec.id)
            events.record(root, "image", "delete", rec.id, {"name": rec.id})
            gone.append(rec.id)
    gc(root)
    return gone


def gc(root: str) -> tuple[int, int]:
    """Delete blobs and committed snapshots no image needs: ``(blobs, snapshots)`` removed."""
    with store.locked(root, "gc"):
        keep = records.referenced_blobs(root)
        removed = 0
        for digest in store.all_blobs(root):
            if digest not in keep:
                store.delete(root, digest)
                removed += 1
        chains: set[str] = set()
        for rec in records.all_images(root):
            chains.update(digests.chain_ids(list(rec.diff_ids)))
        return removed, snapshots.prune(root, chains)

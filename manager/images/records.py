"""Image metadata in the manager's SQLite database: images, their names and repo digests.

An image is its config digest (docker's image id); names (``repo:tag``) and repo digests
(``repo@sha256:…``) point at it. Other modules read ``ImageRecord`` and never the tables.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from ocirt.manager import db
from ocirt.manager.errors import ManagerError
from ocirt.manager.images import manifest, reference


@dataclass(frozen=True)
class ImageRecord:
    """An image in the store. ``id`` is the config digest; ``layers`` the stored (compressed)
    layer digests and ``diff_ids`` their uncompressed digests, bottom first."""

    id: str
    manifest_digest: str
    media_type: str
    platform: str
    size: int
    created: str
    added: float
    layers: tuple[str, ...]
    diff_ids: tuple[str, ...]
    names: tuple[str, ...] = field(default=())
    repo_digests: tuple[str, ...] = field(default=())

    @property
    def short_id(self) -> str:
        return self.id.partition(":")[2][:12]


def new_record(
    manifest_digest: str,
    media_type: str,
    config_desc: manifest.Descriptor,
    config: dict[str, Any],
    layer_descs: list[manifest.Descriptor],
    diff_ids: tuple[str, ...],
) -> ImageRecord:
    """The record of an image whose manifest, config and layers were just stored (pulled or
    loaded): its size is what the registry would send, config plus compressed layers."""
    return ImageRecord(
        id=config_desc.digest,
        manifest_digest=manifest_digest,
        media_type=media_type,
        platform=manifest.platform_string(config),
        size=config_desc.size + sum(d.size for d in layer_descs),
        created=str(config.get("created") or ""),
        added=time.time(),
        layers=tuple(d.digest for d in layer_descs),
        diff_ids=diff_ids,
    )


def _record(conn: sqlite3.Connection, row: sqlite3.Row) -> ImageRecord:
    names = tuple(
        r[0]
        for r in conn.execute("SELECT name FROM image_names WHERE image_id=? ORDER BY name", (row["id"],))
    )
    rds = tuple(
        f"{r[0]}@{r[1]}"
        for r in conn.execute(
            "SELECT repository, digest FROM image_digests WHERE image_id=? ORDER BY repository", (row["id"],)
        )
    )
    return ImageRecord(
        row["id"],
        row["manifest_digest"],
        row["media_type"],
        row["platform"],
        row["size"],
        row["created"],
        row["added"],
        tuple(json.loads(row["layers"])),
        tuple(json.loads(row["diff_ids"])),
        names,
        rds,
    )


def add(
    root: str,
    rec: ImageRecord,
    name: reference.Reference | None,
    repo_digest: tuple[str, str] | None = None,
) -> ImageRecord:
    """Record ``rec`` and point ``name`` (a tagged reference) at it, moving the tag if it
    named another image, as ``docker pull`` does."""
    conn = db.connect(root)
    with db.transaction(conn):
        conn.execute(
            "INSERT INTO images (id, manifest_digest, media_type, platform, size, created, added,"
            " layers, diff_ids) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET"
            " manifest_digest=excluded.manifest_digest, media_type=excluded.media_type",
            (
                rec.id,
                rec.manifest_digest,
                rec.media_type,
                rec.platform,
                rec.size,
                rec.created,
                rec.added or time.time(),
                json.dumps(list(rec.layers)),
                json.dumps(list(rec.diff_ids)),
            ),
        )
        if name is not None and name.tag:
            conn.execute(
                "INSERT INTO image_names (name, image_id) VALUES (?, ?)"
                " ON CONFLICT(name) DO UPDATE SET image_id=excluded.image_id",
                (str(name.with_tag(name.tag)), rec.id),
            )
        if repo_digest is not None:
            conn.execute(
                "INSERT OR REPLACE INTO image_digests (repository, digest, image_id) VALUES (?,?,?)",
                (*repo_digest, rec.id),
            )
    return get(root, rec.id)


def tag(root: str, image_id: str, name: reference.Reference) -> None:
    conn = db.connect(root)
    with db.transaction(conn):
        conn.execute(
            "INSERT INTO image_names (name, image_id) VALUES (?, ?)"
            " ON CONFLICT(name) DO UPDATE SET image_id=excluded.image_id",
            (str(name), image_id),
        )


def add_repo_digest(root: str, image_id: str, repository: str, digest: str) -> None:
    """``repo@digest``: where the image was pushed to or pulled from, by content."""
    conn = db.connect(root)
    with db.transaction(conn):
        conn.execute(
            "INSERT OR REPLACE INTO image_digests (repository, digest, image_id) VALUES (?,?,?)",
            (repository, digest, image_id),
        )


def untag(root: str, name: str) -> bool:
    conn = db.connect(root)
    with db.transaction(conn):
        return conn.execute("DELETE FROM image_names WHERE name=?", (name,)).rowcount > 0


def delete(root: str, image_id: str) -> None:
    conn = db.connect(root)
    with db.transaction(conn):
        conn.execute("DELETE FROM image_names WHERE image_id=?", (image_id,))
        conn.execute("DELETE FROM image_digests WHERE image_id=?", (image_id,))
        conn.execute("DELETE FROM images WHERE id=?", (image_id,))


def find(root: str, name_or_id: str) -> ImageRecord | None:
    """By full or familiar name, ``repo@digest``, full id or unique id prefix."""
    conn = db.connect(root)
    row = conn.execute("SELECT * FROM images WHERE id=?", (name_or_id,)).fetchone()
    if row is None and reference.looks_like_id(name_or_id):
        prefix = "sha256:" + name_or_id.removeprefix("sha256:")
        rows = conn.execute("SELECT * FROM images WHERE substr(id, 1, ?)=?", (len(prefix), prefix)).fetchall()
        if len(rows) > 1:
            raise ManagerError(f"image id prefix {name_or_id!r} is ambiguous")
        row = rows[0] if rows else None
    if row is None:
        try:
            ref = reference.parse(name_or_id)
        except ManagerError:
            return None
        if ref.digest:
            hit = conn.execute(
                "SELECT image_id FROM image_digests WHERE repository=? AND digest=?",
                (ref.repository, ref.digest),
            ).fetchone()
            if hit is None:
                hit = conn.execute("SELECT id FROM images WHERE manifest_digest=?", (ref.digest,)).fetchone()
        else:
            hit = conn.execute("SELECT image_id FROM image_names WHERE name=?", (str(ref),)).fetchone()
        if hit is not None:
            row = conn.execute("SELECT * FROM images WHERE id=?", (hit[0],)).fetchone()
    return None if row is None else _record(conn, row)


def get(root: str, name_or_id: str) -> ImageRecord:
    rec = find(root, name_or_id)
    if rec is None:
        raise ManagerError(f"image {name_or_id!r}: no such image", exit_code=125)
    return rec


def all_images(root: str) -> list[ImageRecord]:
    conn = db.connect(root)
    return [_record(conn, row) for row in conn.execute("SELECT * FROM images ORDER BY added DESC")]


def referenced_blobs(root: str) -> set[str]:
    """Every blob an image needs: manifests, configs, layers and the repo digests' targets."""
    conn = db.connect(root)
    keep: set[str] = set()
    for row in conn.execute("SELECT id, manifest_digest, layers FROM images"):
        keep.update((row[0], row[1], *json.loads(row[2])))
    keep.update(r[0] for r in conn.execute("SELECT digest FROM image_digests"))
    return keep


def note_source(root: str, digest: str, repository: str) -> None:
    """Remember a repository that holds ``digest``, so a push there can mount it instead."""
    conn = db.connect(root)
    with db.transaction(conn):
        conn.execute(
            "INSERT OR IGNORE INTO blob_sources (digest, repository) VALUES (?, ?)", (digest, repository)
        )


def sources(root: str, digest: str) -> list[str]:
    conn = db.connect(root)
    return [r[0] for r in conn.execute("SELECT repository FROM blob_sources WHERE digest=?", (digest,))]

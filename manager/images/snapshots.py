"""Snapshots in containerd's model, on overlayfs.

A committed snapshot is one unpacked layer, read-only, named by the chain ID of the layers
up to it (so images sharing a base share its snapshots); its directory is an overlayfs lower
layer. An active snapshot belongs to one container: an empty upper directory mounted over
its image's committed chain. Directories are numbered (``snapshots/<n>/fs``) to keep the
overlay mount options short. Unpacking a chain ID happens under a per-chain lock, in a
temporary directory renamed into place, so concurrent pulls end with one copy and a crash
leaves no half-unpacked snapshot behind.
"""

from __future__ import annotations

import os
import shutil
import time

from ocirt.manager import db
from ocirt.manager.errors import ManagerError
from ocirt.manager.images import digest as digests
from ocirt.manager.images import manifest, store
from ocirt.manager.images.records import ImageRecord

MNT_DETACH = 2


def _dir(root: str, num: int | str) -> str:
    return os.path.join(store.images_dir(root), "snapshots", str(num))


def _row(root: str, key: str) -> tuple[int, str, str, str] | None:
    row = (
        db.connect(root)
        .execute("SELECT num, kind, parent, image_id FROM snapshots WHERE key=?", (key,))
        .fetchone()
    )
    return None if row is None else (row[0], row[1], row[2], row[3])


def _insert(root: str, key: str, kind: str, parent: str, image_id: str, src: str | None) -> int:
    """Give ``key`` the next number; a committed snapshot's ``src`` is renamed to its dir."""
    conn = db.connect(root)
    with db.transaction(conn):
        num = int(conn.execute("SELECT COALESCE(MAX(num), 0) + 1 FROM snapshots").fetchone()[0])
        if src is not None:
            os.rename(src, _dir(root, num))
        conn.execute(
            "INSERT INTO snapshots (key, num, kind, parent, image_id, created) VALUES (?,?,?,?,?,?)",
            (key, num, kind, parent, image_id, time.time()),
        )
    return num


def lowers(root: str, chain: list[str]) -> list[str]:
    """The fs directories of committed chain IDs, top first (overlayfs lowerdir order)."""
    out = []
    for chain_id in reversed(chain):
        row = _row(root, chain_id)
        if row is None or row[1] != "committed":
            raise ManagerError(f"snapshot {chain_id} is not unpacked")
        out.append(os.path.join(_dir(root, row[0]), "fs"))
    return out


def committed(root: str, chain_id: str) -> bool:
    row = _row(root, chain_id)
    return row is not None and row[1] == "committed"


def unpack_layer(
    root: str,
    chain: list[str],
    layer: manifest.Descriptor,
    diff_id: str,
    image_id: str,
    source: store.Source | None = None,
) -> None:
    """Commit the snapshot ``chain[-1]`` by applying ``layer`` over ``chain[:-1]``, checking
    the blob's digest and the uncompressed stream against ``diff_id``. The blob is read from
    the store, or from ``source`` (a download in progress). ``layers`` (tarfile, isal) is
    imported here: a container start of an unpacked image never needs it."""
    chain_id = chain[-1]
    with store.locked(root, "chain-" + digests.hex_part(chain_id)):
        if _row(root, chain_id) is not None:
            return
        from ocirt.manager.images import layers

        below = lowers(root, chain[:-1])
        tmp = _dir(root, f"tmp-{os.urandom(16).hex()}")
        os.makedirs(os.path.join(tmp, "fs"), mode=0o700)
        os.chmod(os.path.join(tmp, "fs"), 0o755)
        where = f"layer {layer.digest}"
        try:
            with store.VerifyingReader(root, layer.digest, source) as blob:
                with layers.decompressed(blob, manifest.compression(layer.media_type)) as raw:
                    hashed = layers.HashingReader(raw)
                    layers.apply(hashed, os.path.join(tmp, "fs"), below, where)
                    hashed.drain()
                blob.drain()
            if hashed.digest != diff_id:
                raise ManagerError(f"{where}: uncompressed content is {hashed.digest}, config says {diff_id}")
            _insert(root, chain_id, "committed", chain[-2] if len(chain) > 1 else "", image_id, tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def unpack(root: str, record: ImageRecord) -> None:
    """Commit every snapshot of ``record``'s chain that is not there yet."""
    chain = digests.chain_ids(list(record.diff_ids))
    media = _layer_media(root, record)
    for i, (layer, diff_id) in enumerate(zip(media, record.diff_ids, strict=True)):
        unpack_layer(root, chain[: i + 1], layer, diff_id, record.id)


def _layer_media(root: str, record: ImageRecord) -> list[manifest.Descriptor]:
    doc = manifest.load(store.read(root, record.manifest_digest), "manifest")
    return manifest.layers_of(doc)


def prepare(root: str, record: ImageRecord, key: str) -> str:
    """Mount a new writable overlayfs snapshot ``key`` over ``record``'s layers and return
    the mounted rootfs path. ``key`` is the caller's (a container id); it must be new."""
    from ocirt.runtime import syscalls

    if not key or "/" in key or key.startswith("sha256:"):
        raise ManagerError(f"snapshot key {key!r} is invalid")
    unpack(root, record)
    chain = digests.chain_ids(list(record.diff_ids))
    below = lowers(root, chain) or [_empty(root)]
    if _row(root, key) is not None:
        raise ManagerError(f"snapshot {key!r} already exists")
    num = _insert(root, key, "active", chain[-1] if chain else "", record.id, None)
    base = _dir(root, num)
    for sub in ("fs", "work", "merged"):
        os.makedirs(os.path.join(base, sub), mode=0o755, exist_ok=True)
    # paths relative to the snapshots directory keep the options under one page (about 400
    # layers instead of 40), as containerd does; the mount resolves them against the cwd
    top = os.path.join(store.images_dir(root), "snapshots")
    rel = [os.path.relpath(p, top) for p in below]
    data = f"lowerdir={':'.join(rel)},upperdir={num}/fs,workdir={num}/work"
    cwd = os.open(".", os.O_PATH | os.O_CLOEXEC)
    try:
        os.chdir(top)
        syscalls.mount("overlay", os.path.join(base, "merged"), "overlay", 0, data)
    except OSError as exc:
        remove(root, key)
        raise ManagerError(f"snapshot {key}: mounting overlayfs failed: {exc.strerror}") from None
    finally:
        os.fchdir(cwd)
        os.close(cwd)
    return os.path.join(base, "merged")


def _empty(root: str) -> str:
    path = os.path.join(store.images_dir(root), "snapshots", "empty")
    os.makedirs(path, mode=0o755, exist_ok=True)
    return path


def mounted_path(root: str, key: str) -> str:
    """Where the active snapshot ``key`` is mounted."""
    row = _row(root, key)
    if row is None or row[1] != "active":
        raise ManagerError(f"snapshot {key!r}: no such active snapshot")
    return os.path.join(_dir(root, row[0]), "merged")


def remove(root: str, key: str) -> None:
    """Unmount and delete the active snapshot ``key`` (a no-op if it is already gone)."""
    from ocirt.runtime import syscalls

    row = _row(root, key)
    if row is None:
        return
    if row[1] != "active":
        raise ManagerError(f"snapshot {key!r} is committed; only active snapshots are removed by key")
    base = _dir(root, row[0])
    merged = os.path.join(base, "merged")
    if os.path.ismount(merged):
        syscalls.umount2(merged, MNT_DETACH)
    shutil.rmtree(base, ignore_errors=True)
    conn = db.connect(root)
    with db.transaction(conn):
        conn.execute("DELETE FROM snapshots WHERE key=?", (key,))


def users(root: str, image_id: str) -> list[str]:
    """Active snapshots (containers) made from ``image_id``."""
    conn = db.connect(root)
    return [
        r[0]
        for r in conn.execute("SELECT key FROM snapshots WHERE kind='active' AND image_id=?", (image_id,))
    ]


def prune(root: str, keep_chains: set[str]) -> int:
    """Delete committed snapshots outside ``keep_chains`` and below no active snapshot, and
    unpack directories abandoned by a crash (an hour old: a live unpack keeps writing)."""
    conn = db.connect(root)
    rows = conn.execute("SELECT key, num, kind, parent FROM snapshots").fetchall()
    parents = {r[0]: r[3] for r in rows}
    keep = set(keep_chains)
    for r in rows:
        if r[2] == "active":
            node = r[3]
            while node:
                keep.add(node)
                node = parents.get(node, "")
    removed = 0
    for r in rows:
        if r[2] == "committed" and r[0] not in keep:
            with db.transaction(conn):
                conn.execute("DELETE FROM snapshots WHERE key=?", (r[0],))
            shutil.rmtree(_dir(root, r[1]), ignore_errors=True)
            removed += 1
    top = os.path.join(store.images_dir(root), "snapshots")
    for name in os.listdir(top) if os.path.isdir(top) else ():
        path = os.path.join(top, name)
        if name.startswith("tmp-") and time.time() - os.stat(path).st_mtime > 3600:
            shutil.rmtree(os.path.join(top, name), ignore_errors=True)
    return removed

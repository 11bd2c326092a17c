"""Volume records: a name, a directory under the manager's root, labels, and whether its
content was already copied up from an image (docker copies only into a fresh volume)."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field


@dataclass
class Volume:
    name: str
    created: float = field(default_factory=time.time)
    anonymous: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    initialized: bool = False


def _row(row: sqlite3.Row) -> Volume:
    return Volume(
        row["name"],
        row["created"],
        bool(row["anonymous"]),
        json.loads(row["labels"]),
        bool(row["initialized"]),
    )


def find(conn: sqlite3.Connection, name: str) -> Volume | None:
    row = conn.execute("SELECT * FROM volumes WHERE name=?", (name,)).fetchone()
    return None if row is None else _row(row)


def insert(conn: sqlite3.Connection, vol: Volume) -> bool:
    """False when the name exists already (volume create is idempotent in docker)."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO volumes (name, created, anonymous, labels) VALUES (?, ?, ?, ?)",
        (vol.name, vol.created, int(vol.anonymous), json.dumps(vol.labels)),
    )
    return cur.rowcount == 1


def mark_initialized(conn: sqlite3.Connection, name: str) -> None:
    conn.execute("UPDATE volumes SET initialized=1 WHERE name=?", (name,))


def delete(conn: sqlite3.Connection, name: str) -> None:
    conn.execute("DELETE FROM volumes WHERE name=?", (name,))


def all_volumes(conn: sqlite3.Connection) -> list[Volume]:
    return [_row(r) for r in conn.execute("SELECT * FROM volumes ORDER BY name")]

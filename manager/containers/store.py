"""Container records in the manager's SQLite database.

The record is the manager's memory of a container between short ``ocirtctl`` processes:
what was asked (``options``), what was made (``plan``: bundle, mounts, volumes, network) and
the last known state. The shim is the truth about a live process; ``status.refresh`` folds
what it says back into the record.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from ocirt.manager import events
from ocirt.manager.containers.options import CreateOptions
from ocirt.manager.containers.state import ContainerState
from ocirt.manager.errors import ManagerError


@dataclass
class Container:
    id: str
    name: str
    image: str
    image_id: str
    options: CreateOptions
    plan: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    state: ContainerState = ContainerState.CREATED
    pid: int = 0
    exit_code: int | None = None
    oom_killed: bool = False
    started_at: float | None = None
    finished_at: float | None = None
    restart_count: int = 0
    stopped_by_user: bool = False


def _row(row: sqlite3.Row) -> Container:
    return Container(
        id=row["id"],
        name=row["name"],
        image=row["image"],
        image_id=row["image_id"],
        options=CreateOptions.from_json(row["options"]),
        plan=json.loads(row["plan"]),
        created=row["created"],
        state=ContainerState(row["state"]),
        pid=row["pid"],
        exit_code=row["exit_code"],
        oom_killed=bool(row["oom_killed"]),
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        restart_count=row["restart_count"],
        stopped_by_user=bool(row["stopped_by_user"]),
    )


def insert(conn: sqlite3.Connection, c: Container) -> None:
    try:
        conn.execute(
            "INSERT INTO containers (id, name, image, image_id, options, plan, created, state)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (c.id, c.name, c.image, c.image_id, c.options.to_json(), json.dumps(c.plan), c.created, c.state),
        )
    except sqlite3.IntegrityError:
        raise ManagerError(f"the container name {c.name!r} is already in use") from None


def save(conn: sqlite3.Connection, c: Container) -> None:
    conn.execute(
        "UPDATE containers SET name=?, options=?, plan=?, state=?, pid=?, exit_code=?, oom_killed=?,"
        " started_at=?, finished_at=?, restart_count=?, stopped_by_user=? WHERE id=?",
        (
            c.name,
            c.options.to_json(),
            json.dumps(c.plan),
            c.state,
            c.pid,
            c.exit_code,
            int(c.oom_killed),
            c.started_at,
            c.finished_at,
            c.restart_count,
            int(c.stopped_by_user),
            c.id,
        ),
    )


def event(root: str, c: Container, action: str, extra: dict[str, str] | None = None) -> None:
    """A container event with docker's attributes: the labels, ``image`` as the user named
    it and ``name``, plus the action's own (``exitCode``, ``signal``, ...)."""
    attributes = {**c.options.labels, "image": c.image, "name": c.name, **(extra or {})}
    events.record(root, "container", action, c.id, attributes)


def delete(conn: sqlite3.Connection, cid: str) -> None:
    conn.execute("DELETE FROM containers WHERE id=?", (cid,))


def all_containers(conn: sqlite3.Connection) -> list[Container]:
    return [_row(r) for r in conn.execute("SELECT * FROM containers ORDER BY created")]


def find(conn: sqlite3.Connection, ref: str) -> Container | None:
    """By exact name, exact id, or a unique id prefix, as docker resolves references."""
    row = conn.execute("SELECT * FROM containers WHERE name=? OR id=?", (ref, ref)).fetchone()
    if row is not None:
        return _row(row)
    if len(ref) < 3 or not all(ch in "0123456789abcdef" for ch in ref):
        return None
    rows = conn.execute("SELECT * FROM containers WHERE id LIKE ?", (ref + "%",)).fetchall()
    if len(rows) > 1:
        raise ManagerError(f"container id prefix {ref!r} is ambiguous")
    return _row(rows[0]) if rows else None


def get(conn: sqlite3.Connection, ref: str) -> Container:
    found = find(conn, ref)
    if found is None:
        raise ManagerError(f"no such container: {ref}", 1)  # docker's status for it
    return found


def users_of_image(conn: sqlite3.Connection, image_id: str) -> list[str]:
    return [r["name"] for r in conn.execute("SELECT name FROM containers WHERE image_id=?", (image_id,))]


def users_of_volume(conn: sqlite3.Connection, volume: str) -> list[str]:
    """Names of the containers whose plan names ``volume``: its only reference count."""
    rows = conn.execute(
        "SELECT containers.name FROM containers, json_each(containers.plan, '$.volumes') AS v"
        " WHERE v.value = ?",
        (volume,),
    )
    return [r[0] for r in rows]

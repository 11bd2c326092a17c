"""The manager's metadata database: one SQLite file under the manager's root.

``ocirtctl`` is daemonless, so several short processes may write at once: WAL lets readers
run beside one writer, ``busy_timeout`` makes a second writer wait instead of failing, and
``BEGIN IMMEDIATE`` (see ``transaction``) takes the write lock before reading, so a
read-decide-write sequence such as picking a free IP address cannot interleave with another
process doing the same.

Each concern (images, containers, networks, volumes) owns its tables and registers their
schema with ``register_schema``; ``connect`` applies every registered schema once per
process, idempotently (``CREATE TABLE IF NOT EXISTS``).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

DEFAULT_ROOT = "/var/lib/ocirt"
DB_NAME = "ocirt.db"

_schemas: dict[str, str] = {}
_connections: dict[str, sqlite3.Connection] = {}
_applied: dict[int, set[str]] = {}


def register_schema(owner: str, ddl: str) -> None:
    """Declare ``owner``'s tables; applied by the next ``connect`` of each database."""
    _schemas[owner] = ddl


def connect(root: str = DEFAULT_ROOT) -> sqlite3.Connection:
    """The process's one connection to ``root``'s database, created with every known schema."""
    path = os.path.join(root, DB_NAME)
    conn = _connections.get(path)
    if conn is None:
        os.makedirs(root, mode=0o711, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        _connections[path] = conn
    _apply_schemas(conn)
    return conn


def _apply_schemas(conn: sqlite3.Connection) -> None:
    applied = _applied.get(id(conn), set())
    pending = {k: v for k, v in _schemas.items() if k not in applied}
    if not pending:
        return
    with transaction(conn):
        for ddl in pending.values():
            for statement in ddl.split(";"):
                if statement.strip():
                    conn.execute(statement)
    _applied[id(conn)] = applied | set(pending)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction that holds the database lock from its first statement."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def close_all() -> None:
    """Close every connection (tests that remove a root call this first)."""
    for conn in _connections.values():
        conn.close()
    _connections.clear()
    _applied.clear()

"""The manager's metadata database: one SQLite file under the manager's root.

``ocirtctl`` is daemonless, so several short processes may write at once: WAL lets readers
run beside one writer, ``busy_timeout`` makes a second writer wait instead of failing, and
``BEGIN IMMEDIATE`` (see ``transaction``) takes the write lock before reading, so a
read-decide-write sequence such as picking a free IP address cannot interleave with another
process doing the same.

The tables are all declared in ``schema.MIGRATIONS``; ``connect`` brings a database to the
latest version when it first opens it, and refuses one written by a newer ``ocirtctl``.
"""

from __future__ import annotations

import _thread
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from ocirt.manager.errors import ManagerError
from ocirt.manager.schema import MIGRATIONS

DEFAULT_ROOT = "/var/lib/ocirt"
DB_NAME = "ocirt.db"

_connections: dict[str, sqlite3.Connection] = {}
# threads that asked for connections of their own (the API service's request threads): a
# transaction is per connection, so threads sharing one would commit each other's writes
_own: dict[int, dict[str, sqlite3.Connection]] = {}


def connect(root: str = DEFAULT_ROOT) -> sqlite3.Connection:
    """The process's one connection to ``root``'s database (or the calling thread's, inside
    ``thread_connections``), migrated to the current schema."""
    path = os.path.join(root, DB_NAME)
    table = _own.get(_thread.get_ident(), _connections)
    conn = table.get(path)
    if conn is None:
        os.makedirs(root, mode=0o711, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        try:
            migrate(conn, path)
        except BaseException:
            conn.close()
            raise
        table[path] = conn
    return conn


@contextmanager
def thread_connections() -> Iterator[None]:
    """Inside, ``connect`` in this thread opens connections of its own, closed on leaving."""
    ident = _thread.get_ident()
    _own[ident] = {}
    try:
        yield
    finally:
        for conn in _own.pop(ident).values():
            conn.close()


def schema_version(conn: sqlite3.Connection) -> int:
    """How many of ``MIGRATIONS`` the database has had."""
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection, path: str) -> None:
    """Apply the migrations the database lacks, in order; the version is read again under the
    write lock, so two processes opening one old file migrate it once."""
    if schema_version(conn) == len(MIGRATIONS):
        return
    with transaction(conn):
        version = schema_version(conn)
        if version > len(MIGRATIONS):
            raise ManagerError(
                f"database {path}: schema version {version} is newer than this ocirtctl "
                f"knows ({len(MIGRATIONS)})"
            )
        for ddl in MIGRATIONS[version:]:
            for statement in ddl.split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute(f"PRAGMA user_version={len(MIGRATIONS)}")


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

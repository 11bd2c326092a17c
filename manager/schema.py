"""Every table of the manager's database, as an ordered list of migrations.

The schema lives in one place so that a database is complete whichever ``ocirtctl`` command
opened it first: before this module, each store registered its tables when imported, and a
command that never imported the network code left a database without network tables.

``PRAGMA user_version`` records how many migrations a database has had. A change to the
schema is a new entry at the end of ``MIGRATIONS`` (never an edit of an old one), so a file
written by any earlier ``ocirtctl`` is brought forward in order, inside one transaction.
Migration 1 uses ``IF NOT EXISTS`` because databases written before versioning carry
``user_version`` 0 with whichever tables their commands had registered.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: the schema as it stood when versioning began
    """
    CREATE TABLE IF NOT EXISTS images (
        id TEXT PRIMARY KEY,
        manifest_digest TEXT NOT NULL,
        media_type TEXT NOT NULL,
        platform TEXT NOT NULL,
        size INTEGER NOT NULL,
        created TEXT NOT NULL,
        added REAL NOT NULL,
        layers TEXT NOT NULL,
        diff_ids TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS image_names (
        name TEXT PRIMARY KEY,
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
    );
    CREATE TABLE IF NOT EXISTS image_digests (
        repository TEXT NOT NULL,
        digest TEXT NOT NULL,
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        PRIMARY KEY (repository, digest)
    );
    CREATE TABLE IF NOT EXISTS blob_sources (
        digest TEXT NOT NULL,
        repository TEXT NOT NULL,
        PRIMARY KEY (digest, repository)
    );
    CREATE TABLE IF NOT EXISTS snapshots (
        key TEXT PRIMARY KEY,
        num INTEGER NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        parent TEXT NOT NULL,
        image_id TEXT NOT NULL,
        created REAL NOT NULL
    );
    CREATE TABLE IF NOT EXISTS containers (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        image TEXT NOT NULL,
        image_id TEXT NOT NULL,
        options TEXT NOT NULL,
        plan TEXT NOT NULL DEFAULT '{}',
        created REAL NOT NULL,
        state TEXT NOT NULL,
        pid INTEGER NOT NULL DEFAULT 0,
        exit_code INTEGER,
        oom_killed INTEGER NOT NULL DEFAULT 0,
        started_at REAL,
        finished_at REAL,
        restart_count INTEGER NOT NULL DEFAULT 0,
        stopped_by_user INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE IF NOT EXISTS networks (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        driver TEXT NOT NULL,
        subnet TEXT NOT NULL,
        gateway TEXT NOT NULL,
        ip_range TEXT NOT NULL,
        internal INTEGER NOT NULL DEFAULT 0,
        options TEXT NOT NULL DEFAULT '{}',
        link TEXT NOT NULL,
        is_default INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL
    );
    CREATE TABLE IF NOT EXISTS endpoints (
        network_id TEXT NOT NULL REFERENCES networks(id),
        container_id TEXT NOT NULL,
        ifname TEXT NOT NULL,
        ip TEXT NOT NULL,
        mac TEXT NOT NULL,
        host_if TEXT NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        aliases TEXT NOT NULL DEFAULT '[]',
        PRIMARY KEY (network_id, container_id),
        UNIQUE (network_id, ip)
    );
    CREATE TABLE IF NOT EXISTS port_bindings (
        container_id TEXT NOT NULL,
        network_id TEXT NOT NULL REFERENCES networks(id),
        proto TEXT NOT NULL,
        host_ip TEXT NOT NULL,
        host_port INTEGER NOT NULL,
        container_ip TEXT NOT NULL,
        container_port INTEGER NOT NULL,
        UNIQUE (proto, host_port)
    );
    CREATE TABLE IF NOT EXISTS network_settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS volumes (
        name TEXT PRIMARY KEY,
        created REAL NOT NULL,
        anonymous INTEGER NOT NULL DEFAULT 0,
        labels TEXT NOT NULL DEFAULT '{}',
        initialized INTEGER NOT NULL DEFAULT 0
    )
    """,
    # 2: docker's events, newest KEEP rows (events.py)
    """
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        time_nano INTEGER NOT NULL,
        type TEXT NOT NULL,
        action TEXT NOT NULL,
        actor_id TEXT NOT NULL,
        attributes TEXT NOT NULL
    );
    CREATE INDEX events_time ON events(time_nano)
    """,
)

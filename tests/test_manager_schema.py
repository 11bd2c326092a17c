"""The manager's database schema is versioned: a file written before versioning (recorded
here as that ``ocirtctl`` created it, ``user_version`` 0) is opened, migrated and listed by
today's ``ocirtctl``; a database from a newer ``ocirtctl`` is refused in one line; and the
tables exist whichever command opened the database first."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

OCIRTCTL = os.path.join(os.path.dirname(sys.executable), "ocirtctl")

# The DDL every store registered on import before versioning began, as it stood on main.
UNVERSIONED = {
    "images": """
    CREATE TABLE IF NOT EXISTS images (
        id TEXT PRIMARY KEY, manifest_digest TEXT NOT NULL, media_type TEXT NOT NULL,
        platform TEXT NOT NULL, size INTEGER NOT NULL, created TEXT NOT NULL, added REAL NOT NULL,
        layers TEXT NOT NULL, diff_ids TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS image_names (
        name TEXT PRIMARY KEY, image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE);
    CREATE TABLE IF NOT EXISTS image_digests (
        repository TEXT NOT NULL, digest TEXT NOT NULL,
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE, PRIMARY KEY (repository, digest));
    CREATE TABLE IF NOT EXISTS blob_sources (
        digest TEXT NOT NULL, repository TEXT NOT NULL, PRIMARY KEY (digest, repository))
    """,
    "snapshots": """
    CREATE TABLE IF NOT EXISTS snapshots (
        key TEXT PRIMARY KEY, num INTEGER NOT NULL UNIQUE, kind TEXT NOT NULL, parent TEXT NOT NULL,
        image_id TEXT NOT NULL, created REAL NOT NULL)
    """,
    "containers": """
    CREATE TABLE IF NOT EXISTS containers (
        id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, image TEXT NOT NULL, image_id TEXT NOT NULL,
        options TEXT NOT NULL, plan TEXT NOT NULL DEFAULT '{}', created REAL NOT NULL,
        state TEXT NOT NULL, pid INTEGER NOT NULL DEFAULT 0, exit_code INTEGER,
        oom_killed INTEGER NOT NULL DEFAULT 0, started_at REAL, finished_at REAL,
        restart_count INTEGER NOT NULL DEFAULT 0, stopped_by_user INTEGER NOT NULL DEFAULT 0)
    """,
    "networks": """
    CREATE TABLE IF NOT EXISTS networks (
        id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, driver TEXT NOT NULL, subnet TEXT NOT NULL,
        gateway TEXT NOT NULL, ip_range TEXT NOT NULL, internal INTEGER NOT NULL DEFAULT 0,
        options TEXT NOT NULL DEFAULT '{}', link TEXT NOT NULL, is_default INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL);
    CREATE TABLE IF NOT EXISTS endpoints (
        network_id TEXT NOT NULL REFERENCES networks(id), container_id TEXT NOT NULL,
        ifname TEXT NOT NULL, ip TEXT NOT NULL, mac TEXT NOT NULL, host_if TEXT NOT NULL,
        name TEXT NOT NULL DEFAULT '', aliases TEXT NOT NULL DEFAULT '[]',
        PRIMARY KEY (network_id, container_id), UNIQUE (network_id, ip));
    CREATE TABLE IF NOT EXISTS port_bindings (
        container_id TEXT NOT NULL, network_id TEXT NOT NULL REFERENCES networks(id),
        proto TEXT NOT NULL, host_ip TEXT NOT NULL, host_port INTEGER NOT NULL,
        container_ip TEXT NOT NULL, container_port INTEGER NOT NULL, UNIQUE (proto, host_port))
    """,
    "network_settings": """
    CREATE TABLE IF NOT EXISTS network_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)
    """,
    "volumes": """
    CREATE TABLE IF NOT EXISTS volumes (
        name TEXT PRIMARY KEY, created REAL NOT NULL, anonymous INTEGER NOT NULL DEFAULT 0,
        labels TEXT NOT NULL DEFAULT '{}', initialized INTEGER NOT NULL DEFAULT 0)
    """,
}

IMAGE_ID = "sha256:" + "a1" * 32
CONTAINER_ID = "c0ffee" + "0" * 58
NETWORK_ID = "be" * 32
CURRENT_TABLES = {
    "images", "image_names", "image_digests", "blob_sources", "snapshots", "containers",
    "networks", "endpoints", "port_bindings", "network_settings", "volumes",
}  # fmt: skip


def old_database(root: str, owners: list[str]) -> str:
    """A database as an unversioned ``ocirtctl`` left it after importing only ``owners``."""
    os.makedirs(root)
    path = os.path.join(root, "ocirt.db")
    conn = sqlite3.connect(path, isolation_level=None)
    for owner in owners:
        conn.executescript(UNVERSIONED[owner])
    conn.close()
    return path


def fill(path: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        "INSERT INTO images VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (IMAGE_ID, "sha256:" + "b2" * 32, "application/vnd.oci.image.manifest.v1+json", "linux/amd64",
         1234, "2024-05-01T10:00:00Z", 1714557600.0, json.dumps(["sha256:" + "c3" * 32]),
         json.dumps(["sha256:" + "d4" * 32])),
    )  # fmt: skip
    conn.execute("INSERT INTO image_names VALUES ('localhost/old:1.0', ?)", (IMAGE_ID,))
    options = {"image": "localhost/old:1.0", "command": ["sleep", "1"], "name": "veteran", "network": "none"}
    conn.execute(
        "INSERT INTO containers (id, name, image, image_id, options, created, state, exit_code,"
        " started_at, finished_at) VALUES (?, 'veteran', 'localhost/old:1.0', ?, ?, ?, 'exited', 3, ?, ?)",
        (CONTAINER_ID, IMAGE_ID, json.dumps(options), 1714557700.0, 1714557701.0, 1714557702.0),
    )
    conn.execute(
        "INSERT INTO volumes (name, created, labels) VALUES ('oldvol', 1714557800.0, '{\"k\": \"v\"}')"
    )
    conn.execute(
        "INSERT INTO networks (id, name, driver, subnet, gateway, ip_range, link, created)"
        " VALUES (?, 'oldnet', 'bridge', '10.123.0.0/24', '10.123.0.1', '10.123.0.0/24', 'oldbr0', ?)",
        (NETWORK_ID, 1714557900.0),
    )
    conn.close()


def ctl(root: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [OCIRTCTL, "--root", root, *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert not check or done.returncode == 0, f"ocirtctl {' '.join(args)}: {done.stderr}"
    return done


def tables_and_version(path: str) -> tuple[set[str], int]:
    conn = sqlite3.connect(path)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.close()
    return names, version


def test_an_unversioned_database_is_migrated_and_its_records_listed(tmp_path: object) -> None:
    root = os.path.join(str(tmp_path), "root")
    path = old_database(root, list(UNVERSIONED))
    fill(path)
    assert tables_and_version(path)[1] == 0

    (ps,) = json.loads(ctl(root, "ps", "-a", "--format", "json").stdout)
    assert ps["ID"] == CONTAINER_ID and ps["Names"] == "veteran" and ps["ImageID"] == IMAGE_ID
    assert ps["Image"] == "localhost/old:1.0" and ps["State"] == "exited" and ps["ExitCode"] == 3
    assert ps["CreatedAt"] == "2024-05-01 10:01:40 +0000 UTC"
    inspect = json.loads(ctl(root, "inspect", "veteran").stdout)[0]
    assert inspect["State"]["Status"] == "exited" and inspect["State"]["ExitCode"] == 3
    assert inspect["Config"]["Cmd"] == ["sleep", "1"]

    (image,) = json.loads(ctl(root, "images", "--format", "json").stdout)
    assert image["Id"] == IMAGE_ID and image["Size"] == 1234 and image["RepoTags"] == ["localhost/old:1.0"]
    assert ctl(root, "images", "-q").stdout.split() == [IMAGE_ID.removeprefix("sha256:")[:12]]

    assert ctl(root, "volume", "ls", "-q").stdout.split() == ["oldvol"]
    assert json.loads(ctl(root, "volume", "inspect", "oldvol").stdout)[0]["Labels"] == {"k": "v"}

    nets = json.loads(ctl(root, "network", "ls", "--format", "json").stdout)
    (old,) = [n for n in nets if n["Name"] == "oldnet"]
    assert old["ID"] == NETWORK_ID and old["Driver"] == "bridge" and old["Subnet"] == "10.123.0.0/24"

    names, version = tables_and_version(path)
    assert names >= CURRENT_TABLES and version >= 1


def test_tables_are_complete_whichever_command_ran_first(tmp_path: object) -> None:
    """An old database an ``images``-only ocirtctl wrote lacks the other tables; any command
    now completes it, and ``volume ls`` works on a root only ``image ls`` ever touched."""
    root = os.path.join(str(tmp_path), "root")
    path = old_database(root, ["images", "snapshots"])
    assert "volumes" not in tables_and_version(path)[0]
    assert ctl(root, "images", "-q").stdout == ""
    assert tables_and_version(path)[0] >= CURRENT_TABLES
    assert ctl(root, "volume", "ls", "-q").stdout == ""
    assert ctl(root, "ps", "-a", "-q").stdout == ""


def test_a_database_from_a_newer_ocirtctl_is_refused_in_one_line(tmp_path: object) -> None:
    root = os.path.join(str(tmp_path), "root")
    path = old_database(root, ["images"])
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA user_version=999")
    conn.close()
    done = ctl(root, "images", check=False)
    assert done.returncode == 125 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "schema version 999 is newer" in done.stderr
    assert tables_and_version(path) == ({"images", "image_names", "image_digests", "blob_sources"}, 999)

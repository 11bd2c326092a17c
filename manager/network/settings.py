"""Per-root names of everything the network code creates in the kernel.

Bridges, veths, the nftables table, netns mounts and DNS daemons are global to the host, so
two manager roots (a test's and the real one, or two tests) must never share a name. The
default root keeps docker-like names (``ocirt0``, table ``ocirt``); any other root gets names
derived from a hash of its path, stored on first use so they never change afterwards.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from dataclasses import dataclass, fields, replace

from ocirt.manager import db
from ocirt.manager.errors import ManagerError
from ocirt.manager.network import store

# IFNAMSIZ is 16 with the NUL: prefix + "v" + 6 hex digits must fit
MAX_PREFIX = 8


@dataclass(frozen=True)
class NetSettings:
    """``prefix`` starts every link name; the default bridge is ``prefix + "0"``."""

    prefix: str
    nft_table: str
    run_dir: str
    resolv_conf: str = "/etc/resolv.conf"

    @property
    def default_bridge(self) -> str:
        return self.prefix + "0"

    @property
    def netns_dir(self) -> str:
        return os.path.join(self.run_dir, "netns")

    @property
    def dns_dir(self) -> str:
        return os.path.join(self.run_dir, "dns")


def derived(root: str) -> NetSettings:
    """The names a root gets when nobody configured them."""
    if os.path.realpath(root) == os.path.realpath(db.DEFAULT_ROOT):
        return NetSettings("ocirt", "ocirt", "/run/ocirt/net")
    digest = hashlib.sha256(os.path.realpath(root).encode()).hexdigest()
    return NetSettings("oc" + digest[:5], "ocirt_" + digest[:8], "/run/ocirt/net-" + digest[:12])


def _read(conn: sqlite3.Connection) -> dict[str, str]:
    return {row["key"]: row["value"] for row in conn.execute("SELECT key, value FROM network_settings")}


def load(root: str) -> NetSettings:
    """The root's settings, recorded on first use."""
    conn = db.connect(root)
    stored = _read(conn)
    if len(stored) == len(fields(NetSettings)):
        return NetSettings(**stored)
    with db.transaction(conn):
        stored = _read(conn)
        current = replace(derived(root), **stored)
        _write(conn, current)
    return current


def configure(root: str, **changes: str) -> NetSettings:
    """Override names before the root creates anything (tests give each run its own)."""
    known = {f.name for f in fields(NetSettings)}
    for key, value in changes.items():
        if key not in known:
            raise ManagerError(f"unknown network setting: {key}")
        if not value:
            raise ManagerError(f"network setting {key} may not be empty")
    if "prefix" in changes and len(changes["prefix"]) > MAX_PREFIX:
        raise ManagerError(f"network setting prefix: at most {MAX_PREFIX} characters")
    conn = db.connect(root)
    with db.transaction(conn):
        if store.all_networks(conn):
            raise ManagerError("network settings can only change before the first network exists")
        current = replace(derived(root), **{**_read(conn), **changes})
        _write(conn, current)
    return current


def _write(conn: sqlite3.Connection, current: NetSettings) -> None:
    for f in fields(NetSettings):
        conn.execute(
            "INSERT OR REPLACE INTO network_settings (key, value) VALUES (?, ?)",
            (f.name, getattr(current, f.name)),
        )

"""Network metadata in the manager's SQLite database: networks, endpoints, port bindings.

The endpoints table is also the IPAM ledger: ``UNIQUE (network_id, ip)`` makes handing out
one address twice impossible even if two processes got past their own checks, and the row
is written (inside ``db.transaction``) before any kernel object exists, so a crash leaves at
worst a reservation that ``teardown_container`` frees.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field


@dataclass
class NetworkRecord:
    """``link`` is the bridge for the bridge driver and the parent interface for macvlan."""

    id: str
    name: str
    driver: str
    subnet: str
    gateway: str
    ip_range: str
    link: str
    internal: bool = False
    options: dict[str, str] = field(default_factory=dict)
    is_default: bool = False
    created: float = field(default_factory=time.time)


@dataclass
class Endpoint:
    """One container's interface on one network (docker's CNM endpoint)."""

    network_id: str
    container_id: str
    ifname: str
    ip: str
    mac: str
    host_if: str
    name: str = ""
    aliases: list[str] = field(default_factory=list)


@dataclass
class PortBinding:
    """A published port: ``host_ip`` ``0.0.0.0`` means every host address, loopback included."""

    container_id: str
    network_id: str
    proto: str
    host_ip: str
    host_port: int
    container_ip: str
    container_port: int


def _network(row: sqlite3.Row) -> NetworkRecord:
    return NetworkRecord(
        id=row["id"],
        name=row["name"],
        driver=row["driver"],
        subnet=row["subnet"],
        gateway=row["gateway"],
        ip_range=row["ip_range"],
        link=row["link"],
        internal=bool(row["internal"]),
        options=json.loads(row["options"]),
        is_default=bool(row["is_default"]),
        created=row["created"],
    )


def _endpoint(row: sqlite3.Row) -> Endpoint:
    return Endpoint(
        network_id=row["network_id"],
        container_id=row["container_id"],
        ifname=row["ifname"],
        ip=row["ip"],
        mac=row["mac"],
        host_if=row["host_if"],
        name=row["name"],
        aliases=json.loads(row["aliases"]),
    )


def _binding(row: sqlite3.Row) -> PortBinding:
    return PortBinding(*(row[k] for k in PortBinding.__dataclass_fields__))


def find_network(conn: sqlite3.Connection, name_or_id: str) -> NetworkRecord | None:
    """By name, full id, or an unambiguous id prefix (as docker accepts)."""
    row = conn.execute("SELECT * FROM networks WHERE name=? OR id=?", (name_or_id, name_or_id)).fetchone()
    if row is None and len(name_or_id) >= 3:
        rows = conn.execute("SELECT * FROM networks WHERE id LIKE ?", (name_or_id + "%",)).fetchall()
        row = rows[0] if len(rows) == 1 else None
    return None if row is None else _network(row)


def network_by_id(conn: sqlite3.Connection, network_id: str) -> NetworkRecord | None:
    row = conn.execute("SELECT * FROM networks WHERE id=?", (network_id,)).fetchone()
    return None if row is None else _network(row)


def all_networks(conn: sqlite3.Connection) -> list[NetworkRecord]:
    return [_network(r) for r in conn.execute("SELECT * FROM networks ORDER BY created")]


def insert_network(conn: sqlite3.Connection, net: NetworkRecord) -> None:
    conn.execute(
        "INSERT INTO networks (id, name, driver, subnet, gateway, ip_range, internal, options, link,"
        " is_default, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            net.id,
            net.name,
            net.driver,
            net.subnet,
            net.gateway,
            net.ip_range,
            int(net.internal),
            json.dumps(net.options),
            net.link,
            int(net.is_default),
            net.created,
        ),
    )


def delete_network(conn: sqlite3.Connection, network_id: str) -> None:
    conn.execute("DELETE FROM networks WHERE id=?", (network_id,))


def endpoints_of_network(conn: sqlite3.Connection, network_id: str) -> list[Endpoint]:
    rows = conn.execute("SELECT * FROM endpoints WHERE network_id=? ORDER BY rowid", (network_id,))
    return [_endpoint(r) for r in rows]


def endpoints_of_container(conn: sqlite3.Connection, container_id: str) -> list[Endpoint]:
    rows = conn.execute("SELECT * FROM endpoints WHERE container_id=? ORDER BY rowid", (container_id,))
    return [_endpoint(r) for r in rows]


def find_endpoint(conn: sqlite3.Connection, network_id: str, container_id: str) -> Endpoint | None:
    row = conn.execute(
        "SELECT * FROM endpoints WHERE network_id=? AND container_id=?", (network_id, container_id)
    ).fetchone()
    return None if row is None else _endpoint(row)


def used_ips(conn: sqlite3.Connection, network_id: str) -> set[str]:
    return {r[0] for r in conn.execute("SELECT ip FROM endpoints WHERE network_id=?", (network_id,))}


def insert_endpoint(conn: sqlite3.Connection, ep: Endpoint) -> None:
    conn.execute(
        "INSERT INTO endpoints (network_id, container_id, ifname, ip, mac, host_if, name, aliases)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            ep.network_id,
            ep.container_id,
            ep.ifname,
            ep.ip,
            ep.mac,
            ep.host_if,
            ep.name,
            json.dumps(ep.aliases),
        ),
    )


def delete_endpoint(conn: sqlite3.Connection, network_id: str, container_id: str) -> None:
    conn.execute("DELETE FROM endpoints WHERE network_id=? AND container_id=?", (network_id, container_id))


def bindings_of_container(conn: sqlite3.Connection, container_id: str) -> list[PortBinding]:
    rows = conn.execute("SELECT * FROM port_bindings WHERE container_id=? ORDER BY rowid", (container_id,))
    return [_binding(r) for r in rows]


def used_host_ports(conn: sqlite3.Connection, proto: str) -> set[int]:
    return {r[0] for r in conn.execute("SELECT host_port FROM port_bindings WHERE proto=?", (proto,))}


def insert_binding(conn: sqlite3.Connection, b: PortBinding) -> None:
    conn.execute(
        "INSERT INTO port_bindings (container_id, network_id, proto, host_ip, host_port, container_ip,"
        " container_port) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (b.container_id, b.network_id, b.proto, b.host_ip, b.host_port, b.container_ip, b.container_port),
    )


def delete_bindings(conn: sqlite3.Connection, container_id: str) -> None:
    conn.execute("DELETE FROM port_bindings WHERE container_id=?", (container_id,))

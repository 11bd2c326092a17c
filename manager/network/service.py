"""The networking API the rest of the manager calls: networks, namespaces, endpoints, ports, DNS.

How the container side uses it (``docker run --network MODE``):

- ``bridge`` (default) or a network name: ``ensure_default`` (for ``bridge``), then
  ``netns_create(root, cid)`` and put its path in config.json ``linux.namespaces`` as
  ``{"type": "network", "path": PATH}``; ``connect(root, net, cid, PATH, ip=..., aliases=...,
  name=...)`` before the runtime starts the process (the netns exists independently of it),
  ``publish`` for ``-p``, and write ``resolv_conf(root, net)`` / ``hosts_file(...)`` into the
  container's ``/etc``. ``teardown_container`` when the container is removed (or when a
  ``--rm`` container exits) undoes all of it; it is idempotent, so call it freely.
- ``none``: a fresh ``{"type": "network"}`` namespace with only ``lo``; nothing here is called.
- ``host``: no network namespace entry at all; nothing here is called, ``-p`` is meaningless.
- ``container:NAME``: the namespace path of NAME (``netns_path(root, NAME_ID)``, or
  ``/proc/PID/ns/net``); NAME owns the endpoints, the joiner owns none, and ``teardown_container``
  of the joiner must not be called for NAME's id.

A container's netns outlives its process, so ``stop``/``start`` keep the address and
``network connect``/``disconnect`` work on stopped containers too. Everything in the kernel
is re-created on demand (``_materialize``), so a reboot that wiped bridges and rules heals at
the next connect.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import secrets
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

from ocirt.manager import db, events
from ocirt.manager.errors import ManagerError
from ocirt.manager.network import drivers, ipam, links, nat, netns, resolv, store
from ocirt.manager.network.ports import PortSpec, free_host_port, host_port_free, parse_port_spec
from ocirt.manager.network.settings import NetSettings, load
from ocirt.manager.network.store import Endpoint, NetworkRecord, PortBinding

__all__ = [
    "Endpoint",
    "NetworkRecord",
    "PortBinding",
    "PortSpec",
    "connect",
    "create_network",
    "disconnect",
    "endpoints",
    "ensure_default",
    "hosts_file",
    "inspect_network",
    "list_networks",
    "netns_create",
    "netns_path",
    "netns_remove",
    "parse_port_spec",
    "port_bindings",
    "prune_networks",
    "publish",
    "remove_network",
    "resolv_conf",
    "teardown_container",
    "teardown_mark",
    "teardown_root",
    "unpublish",
]

DEFAULT_NETWORK = "bridge"
RESERVED = (DEFAULT_NETWORK, *(name for name, d in drivers.REGISTRY.items() if not d.creatable))
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*\Z")
# host-wide: two roots choosing subnets at once must see each other's bridges
GLOBAL_LOCK = "/run/ocirt/network.lock"


@contextmanager
def _flock(path: str) -> Iterator[None]:
    os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _root_lock(cfg: NetSettings) -> str:
    return os.path.join(cfg.run_dir, "lock")


# ---- networks


def create_network(
    root: str,
    name: str,
    *,
    driver: str = "bridge",
    subnet: str | None = None,
    gateway: str | None = None,
    ip_range: str | None = None,
    internal: bool = False,
    options: dict[str, str] | None = None,
) -> NetworkRecord:
    """A user-defined network, made in the kernel at once (bridge, nft rules, DNS server)."""
    opts = dict(options or {})
    _check_name(name)
    drivers.for_create(driver).validate(opts)
    cfg = load(root)
    net_id = secrets.token_hex(32)
    link = drivers.of(driver).link(cfg.prefix, net_id, opts)
    with _flock(GLOBAL_LOCK):
        net = _insert_network(
            root, cfg, name, driver, link, subnet, gateway, ip_range, internal, opts, net_id
        )
        try:
            _materialize(root, cfg, net)
        except BaseException:
            _destroy(root, cfg, net)
            raise
    events.record(root, "network", "create", net.id, {"name": net.name, "type": net.driver})
    return net


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ManagerError(f"invalid network name {name!r}: use letters, digits, '_', '.', '-'")
    if name in RESERVED:
        raise ManagerError(f"network name {name!r} is reserved (pre-defined network)")


def _insert_network(
    root: str,
    cfg: NetSettings,
    name: str,
    driver: str,
    link: str,
    subnet: str | None,
    gateway: str | None,
    ip_range: str | None,
    internal: bool,
    opts: dict[str, str],
    net_id: str,
    is_default: bool = False,
) -> NetworkRecord:
    conn = db.connect(root)
    with db.transaction(conn):
        if store.find_network(conn, name) is not None:
            raise ManagerError(f"network with name {name} already exists")
        kind = drivers.of(driver)
        others = [(f"network {n.name}", ipam.network_of(n.subnet)) for n in store.all_networks(conn)]
        if kind.exclusive_link and any(
            n.driver == driver and n.link == link for n in store.all_networks(conn)
        ):
            raise ManagerError(f"invalid -o parent={link}: another {driver} network already uses it")
        if kind.avoids_host_routes:
            others += [("a host route", r) for r in links.host_routes()]
        if subnet is None:
            if kind.subnet_required:
                raise ManagerError(kind.subnet_required)
            net = ipam.choose_subnet(t for _, t in others)
        else:
            net = ipam.parse_network(subnet, "--subnet")
            clash = ipam.overlapping(net, others)
            if clash is not None:
                raise ManagerError(f"invalid --subnet {net}: overlaps with {clash}")
        gw, rng = ipam.plan(net, gateway, ip_range)
        record = NetworkRecord(
            id=net_id,
            name=name,
            driver=driver,
            subnet=str(net),
            gateway=str(gw),
            ip_range=str(rng),
            link=link,
            internal=internal,
            options=opts,
            is_default=is_default,
        )
        store.insert_network(conn, record)
    return record


def ensure_default(root: str) -> NetworkRecord:
    """The pre-defined ``bridge`` network (bridge ``<prefix>0``), made and materialized if needed."""
    cfg = load(root)
    conn = db.connect(root)
    net = store.find_network(conn, DEFAULT_NETWORK)
    if net is None:
        _check_live(root)
        with _flock(GLOBAL_LOCK):
            net = store.find_network(conn, DEFAULT_NETWORK)
            if net is None:
                net = _insert_network(
                    root, cfg, DEFAULT_NETWORK, "bridge", cfg.default_bridge, None, None, None, False, {},
                    secrets.token_hex(32), is_default=True,
                )  # fmt: skip
            _materialize(root, cfg, net)
        return net
    _materialize(root, cfg, net)
    return net


def _materialize(root: str, cfg: NetSettings, net: NetworkRecord) -> None:
    """Bring the kernel in line with the record; cheap when everything is there already.

    Never for a network removed meanwhile or a root being torn down (checked under the
    root's lock, which removal and teardown take too): a late caller, such as a restart
    policy's exit command, would make a bridge and a table nobody removes again."""
    _check_live(root)  # before the lock too: taking it would make the run directory again
    with _flock(_root_lock(cfg)):
        _check_live(root)
        if store.network_by_id(db.connect(root), net.id) is None:
            raise ManagerError(f"network {net.name} was removed")
        drivers.of(net.driver).create(root, cfg, net)


def teardown_mark(root: str) -> str:
    """Present once ``teardown_root`` began: the root's networks are gone for good (``system
    reset`` removes the root, mark included)."""
    return os.path.join(root, "network-teardown")


def _check_live(root: str) -> None:
    if os.path.exists(teardown_mark(root)):
        raise ManagerError(f"{root}: its networks were torn down; none is made again")


def _destroy(root: str, cfg: NetSettings, net: NetworkRecord) -> None:
    """Everything of a network in the kernel and the database; safe on a half-made one."""
    drivers.of(net.driver).remove(cfg, net)
    conn = db.connect(root)
    with db.transaction(conn):
        store.delete_network(conn, net.id)


def _get(root: str, name: str) -> NetworkRecord:
    net = store.find_network(db.connect(root), name)
    if net is None:
        if name == DEFAULT_NETWORK:
            return ensure_default(root)
        raise ManagerError(f"network {name} not found")
    return net


def remove_network(root: str, name: str) -> None:
    """Refused while containers are connected, and for the pre-defined ``bridge``."""
    net = _get(root, name)
    if net.is_default:
        raise ManagerError(f"{name} is a pre-defined network and cannot be removed")
    cfg = load(root)
    with _flock(_root_lock(cfg)):
        users = store.endpoints_of_network(db.connect(root), net.id)
        if users:
            raise ManagerError(f"network {net.name} has active endpoints ({len(users)} containers connected)")
        _destroy(root, cfg, net)
    events.record(root, "network", "destroy", net.id, {"name": net.name, "type": net.driver})


def list_networks(root: str) -> list[NetworkRecord]:
    return store.all_networks(db.connect(root))


def inspect_network(root: str, name: str) -> dict[str, Any]:
    """Docker's ``network inspect`` shape, so tools reading it find the usual fields."""
    net = _get(root, name)
    conn = db.connect(root)
    prefix = ipam.network_of(net.subnet).prefixlen
    containers = {
        ep.container_id: {
            "Name": ep.name,
            "EndpointID": hashlib.sha256(f"{net.id}/{ep.container_id}".encode()).hexdigest(),
            "MacAddress": ep.mac,
            "IPv4Address": f"{ep.ip}/{prefix}",
            "Interface": ep.ifname,
            "Aliases": ep.aliases,
        }
        for ep in store.endpoints_of_network(conn, net.id)
    }
    options = dict(net.options) | drivers.of(net.driver).options(net)
    return {
        "Name": net.name,
        "Id": net.id,
        "Created": net.created,
        "Driver": net.driver,
        "Scope": "local",
        "Internal": net.internal,
        "IPAM": {
            "Driver": "default",
            "Config": [{"Subnet": net.subnet, "Gateway": net.gateway, "IPRange": net.ip_range}],
        },
        "Options": options,
        "Containers": containers,
        "DNS": drivers.of(net.driver).serves_dns(net),
    }


def prune_networks(root: str) -> list[str]:
    """Remove every user-defined network without endpoints; returns their names."""
    removed = []
    for net in list_networks(root):
        if net.is_default or store.endpoints_of_network(db.connect(root), net.id):
            continue
        try:
            remove_network(root, net.id)
        except ManagerError:
            continue  # someone connected meanwhile
        removed.append(net.name)
    return removed


# ---- network namespaces


def netns_path(root: str, container_id: str) -> str:
    return os.path.join(load(root).netns_dir, container_id)


def netns_create(root: str, container_id: str) -> str:
    """A persistent netns (``lo`` up) bind-mounted at ``netns_path``; an existing one is reused."""
    _check_live(root)
    path = netns_path(root, container_id)
    netns.create(path)
    return path


def netns_remove(root: str, container_id: str) -> None:
    netns.remove(netns_path(root, container_id))


# ---- endpoints


def connect(
    root: str,
    network: str,
    container_id: str,
    netns_path: str,
    *,
    ip: str | None = None,
    aliases: Sequence[str] = (),
    name: str | None = None,
    mac: str | None = None,
) -> Endpoint:
    """Give the netns an interface (eth0, eth1, ...) on ``network``, an address, a route, a DNS name.

    The address is reserved in the database before the link exists, so concurrent processes
    never share one; a failure undoes both.
    """
    net = _get(root, network)
    cfg = load(root)
    if ip is not None and net.is_default:
        raise ManagerError("--ip: user specified IP address is supported on user defined networks only")
    ep = _reserve(root, cfg, net, container_id, ip, list(aliases), name or "", mac)
    try:
        _materialize(root, cfg, net)
        _plug(net, ep, netns_path)
    except BaseException:
        _unplug(net, ep, netns_path)
        _forget(root, net.id, container_id)
        raise
    _endpoint_event(root, "connect", net, container_id)
    return ep


def _reserve(
    root: str,
    cfg: NetSettings,
    net: NetworkRecord,
    cid: str,
    ip: str | None,
    aliases: list[str],
    name: str,
    mac: str | None = None,
) -> Endpoint:
    """``mac``: ``--mac-address``; else one derived from the address, as docker's."""
    conn = db.connect(root)
    with db.transaction(conn):
        if store.find_endpoint(conn, net.id, cid) is not None:
            raise ManagerError(f"container {cid[:12]} is already connected to network {net.name}")
        subnet = ipam.network_of(net.subnet)
        reserved = store.used_ips(conn, net.id) | {net.gateway}
        addr = ipam.pick_address(subnet, ipam.network_of(net.ip_range), reserved, ip)
        taken_if = {e.ifname for e in store.endpoints_of_container(conn, cid)}
        ifname = next(f"eth{i}" for i in range(len(taken_if) + 1) if f"eth{i}" not in taken_if)
        host_if = cfg.prefix + "v" + hashlib.sha256(f"{net.id}/{cid}".encode()).hexdigest()[:6]
        ep = Endpoint(net.id, cid, ifname, str(addr), mac or ipam.mac_for(addr), host_if, name, aliases)
        store.insert_endpoint(conn, ep)
    return ep


def _plug(net: NetworkRecord, ep: Endpoint, path: str) -> None:
    prefix = ipam.network_of(net.subnet).prefixlen
    gateway = None if net.internal else net.gateway
    drivers.of(net.driver).connect(net, ep, path)
    links.configure_inside(path, ep.ifname, f"{ep.ip}/{prefix}", gateway)


def _unplug(net: NetworkRecord, ep: Endpoint, path: str) -> None:
    drivers.of(net.driver).disconnect(net, ep, path)


def _forget(root: str, network_id: str, cid: str) -> None:
    conn = db.connect(root)
    with db.transaction(conn):
        store.delete_endpoint(conn, network_id, cid)


def disconnect(root: str, network: str, container_id: str, netns_path: str) -> None:
    """Remove the container's interface on ``network``, its address, name and ports through it."""
    net = _get(root, network)
    cfg = load(root)
    conn = db.connect(root)
    ep = store.find_endpoint(conn, net.id, container_id)
    if ep is None:
        raise ManagerError(f"container {container_id[:12]} is not connected to network {net.name}")
    if any(b.network_id == net.id for b in store.bindings_of_container(conn, container_id)):
        _drop_bindings(root, cfg, container_id, net.id)
    _unplug(net, ep, netns_path)
    _forget(root, net.id, container_id)
    _endpoint_event(root, "disconnect", net, container_id)


def _endpoint_event(root: str, action: str, net: NetworkRecord, container_id: str) -> None:
    attributes = {"container": container_id, "name": net.name, "type": net.driver}
    events.record(root, "network", action, net.id, attributes)


def endpoints(root: str, container_id: str) -> list[Endpoint]:
    return store.endpoints_of_container(db.connect(root), container_id)


# ---- published ports


def publish(root: str, container_id: str, ports: Sequence[PortSpec]) -> list[PortBinding]:
    """DNAT host ports to the container's first non-internal bridge address.

    Reachable on every host address (or the one given), on 127.0.0.1 (route_localnet and a
    DNAT in the output chain) and from other containers (hairpin masquerade).
    """
    cfg = load(root)
    conn = db.connect(root)
    target = _publish_target(conn, container_id)
    with db.transaction(conn):
        made = [_bind(conn, container_id, target, spec) for spec in ports]
    try:
        nat.add_port_rules(cfg.nft_table, nat.port_tag(container_id), made)
    except BaseException:
        _drop_bindings(root, cfg, container_id, None)
        raise
    return made


def _publish_target(conn: sqlite3.Connection, container_id: str) -> Endpoint:
    for ep in store.endpoints_of_container(conn, container_id):
        net = store.network_by_id(conn, ep.network_id)
        if net is not None and drivers.of(net.driver).publishes(net):
            return ep
    raise ManagerError(f"container {container_id[:12]} has no bridge network to publish ports on")


def _bind(conn: sqlite3.Connection, container_id: str, ep: Endpoint, spec: PortSpec) -> PortBinding:
    taken = store.used_host_ports(conn, spec.proto)
    if spec.host_port is None:
        port = free_host_port(spec.proto, taken, spec.host_ip)
    elif spec.host_port in taken or not host_port_free(spec.proto, spec.host_port, spec.host_ip):
        raise ManagerError(f"-p {spec.host_port}/{spec.proto}: port is already allocated")
    else:
        port = spec.host_port
    binding = PortBinding(
        container_id, ep.network_id, spec.proto, spec.host_ip, port, ep.ip, spec.container_port
    )
    store.insert_binding(conn, binding)
    return binding


def port_bindings(root: str, container_id: str) -> list[PortBinding]:
    return store.bindings_of_container(db.connect(root), container_id)


def unpublish(root: str, container_id: str) -> None:
    _drop_bindings(root, load(root), container_id, None)


def _drop_bindings(root: str, cfg: NetSettings, container_id: str, network_id: str | None) -> None:
    """Remove all of a container's port rules, then put back those not on ``network_id``."""
    conn = db.connect(root)
    if not store.bindings_of_container(conn, container_id):
        return  # rules are added after their rows and removed before them: none to find
    nat.remove_rules(cfg.nft_table, nat.port_tag(container_id))
    with db.transaction(conn):
        keep = [
            b
            for b in store.bindings_of_container(conn, container_id)
            if network_id and b.network_id != network_id
        ]
        store.delete_bindings(conn, container_id)
        for b in keep:
            store.insert_binding(conn, b)
    nat.add_port_rules(cfg.nft_table, nat.port_tag(container_id), keep)


# ---- files for the container's /etc


def resolv_conf(root: str, network: str) -> str:
    """User networks: the network's DNS server (the gateway). Default bridge: the host's resolvers."""
    net = _get(root, network)
    cfg = load(root)
    host = resolv.read_host(cfg.resolv_conf)
    if drivers.of(net.driver).serves_dns(net):
        return resolv.render(resolv.HostResolvers([net.gateway], host.search, host.options))
    return resolv.render(resolv.without_loopback(host))


def hosts_file(root: str, container_id: str, hostname: str, extra: Sequence[tuple[str, str]] = ()) -> str:
    """``/etc/hosts``: localhost, the hostname on each of the container's addresses, ``--add-host``."""
    addrs = [ep.ip for ep in endpoints(root, container_id)]
    return resolv.hosts(hostname, addrs, extra)


# ---- teardown


def teardown_container(root: str, container_id: str) -> None:
    """Remove ports, endpoints, DNS names and the netns of a container; idempotent."""
    cfg = load(root)
    conn = db.connect(root)
    _drop_bindings(root, cfg, container_id, None)
    path = netns_path(root, container_id)
    for ep in store.endpoints_of_container(conn, container_id):
        net = store.network_by_id(conn, ep.network_id)
        if net is not None:
            _unplug(net, ep, path)
        _forget(root, ep.network_id, container_id)
        if net is not None:
            _endpoint_event(root, "disconnect", net, container_id)
    netns.remove(path)


def teardown_root(root: str) -> None:
    """Undo everything this root made in the kernel (tests, ``system reset``).

    Every step runs even if an earlier one failed, so one broken object cannot leave the
    rest behind; the first error is raised at the end. The mark is set first, under the
    root's lock: from then on nothing re-creates a bridge or a table here.
    """
    cfg = load(root)
    conn = db.connect(root)
    with _flock(_root_lock(cfg)), open(teardown_mark(root), "w"):
        pass
    cids = {
        ep.container_id for net in store.all_networks(conn) for ep in store.endpoints_of_network(conn, net.id)
    }
    cids |= {row[0] for row in conn.execute("SELECT DISTINCT container_id FROM port_bindings")}
    cids |= set(netns.listed(cfg.netns_dir))
    steps: list[Callable[[], None]] = [partial(teardown_container, root, cid) for cid in sorted(cids)]
    steps += [partial(_destroy, root, cfg, net) for net in store.all_networks(conn)]
    steps.append(partial(nat.delete_table, cfg.nft_table))
    steps += [partial(links.delete, name) for name in links.names_with_prefix(cfg.prefix)]
    steps += [partial(_remove_path, p) for p in (cfg.netns_dir, cfg.dns_dir, _root_lock(cfg), cfg.run_dir)]
    errors = []
    for step in steps:
        try:
            step()
        except (OSError, ManagerError) as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


def _remove_path(path: str) -> None:
    try:
        if os.path.isdir(path):
            os.rmdir(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass

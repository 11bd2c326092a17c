"""A container's network at start and stop, by mode: ``none`` (a new namespace with only
``lo``), ``host`` (no namespace), ``container:NAME`` (join a running container's), and
bridge networks (``bridge`` or a user network) through ``ocirt.manager.network.service``.
"""

from __future__ import annotations

import os
from typing import Any

from ocirt.manager import db
from ocirt.manager.containers import etcfiles, store
from ocirt.manager.containers.runtime import Context
from ocirt.manager.containers.store import Container
from ocirt.manager.errors import ManagerError


def hostname_of(c: Container) -> str:
    """The flag's, else the host's on the host network (as docker), else the short id."""
    if c.options.hostname:
        return c.options.hostname
    return os.uname().nodename if c.options.network == "host" else c.id[:12]


def _resolv(c: Container, text: str) -> str:
    """``--dns``, ``--dns-search`` and ``--dns-option`` each replace that part of the file."""
    from ocirt.manager.network import resolv

    opts = c.options
    if not (opts.dns or opts.dns_search or opts.dns_options):
        return text
    base = resolv.parse(text)
    return resolv.render(
        resolv.HostResolvers(
            opts.dns or base.nameservers, opts.dns_search or base.search, opts.dns_options or base.options
        )
    )


def _extra_hosts(c: Container) -> list[tuple[str, str]]:
    return [(name, ip) for name, ip in c.options.extra_hosts]


def setup(ctx: Context, c: Container) -> dict[str, Any]:
    """Make the network for a start; the plan entry ``network`` describes what was made."""
    from ocirt.manager.network import drivers

    mode = c.options.network
    hostname = hostname_of(c)
    pre_defined = drivers.pre_defined(mode)
    if pre_defined:
        net: dict[str, Any] = {"mode": mode, "netns": pre_defined.netns, "addresses": []}
        resolv = etcfiles.host_resolv()
    elif mode.startswith("container:"):
        net = {"mode": mode, "netns": _peer_netns(ctx, mode.partition(":")[2]), "addresses": []}
        resolv = etcfiles.host_resolv()
    else:
        return _bridge_setup(ctx, c, hostname)
    hosts = etcfiles.default_hosts(hostname, []) + "".join(f"{ip}\t{name}\n" for name, ip in _extra_hosts(c))
    etcfiles.write(ctx.root, c.id, hostname, hosts, _resolv(c, resolv))
    return net


def _peer_netns(ctx: Context, ref: str) -> str:
    from ocirt.manager.network import drivers

    peer = store.find(db.connect(ctx.root), ref)
    if peer is None:
        raise ManagerError(f"--network: no such container: {ref}")
    netns = (peer.plan.get("network") or {}).get("netns")
    if netns and not drivers.pre_defined(peer.options.network):
        return str(netns)
    if not peer.state.live or not peer.pid:
        raise ManagerError(f"--network: container {ref} is not running")
    return f"/proc/{peer.pid}/ns/net"


def uses_bridge(mode: str) -> bool:
    """A network of its own (bridge, macvlan): a namespace and endpoints to tear down."""
    from ocirt.manager.network import drivers

    return not drivers.pre_defined(mode) and not mode.startswith("container:")


def _bridge_setup(ctx: Context, c: Container, hostname: str) -> dict[str, Any]:
    """Namespace, interface, address and published ports; kept across stop and restart
    (the namespace outlives the process), so a second start reuses them."""
    from ocirt.manager.network import service

    name = c.options.network
    try:
        path = service.netns_create(ctx.root, c.id)
        if not service.endpoints(ctx.root, c.id):  # connect makes the network in the kernel if need be
            service.connect(
                ctx.root,
                name,
                c.id,
                path,
                ip=c.options.ip,
                aliases=c.options.aliases,
                name=c.name,
                mac=c.options.mac_address,
            )
        elif name == service.DEFAULT_NETWORK:
            service.ensure_default(ctx.root)
        specs = port_specs(c)
        if specs and not service.port_bindings(ctx.root, c.id):
            service.publish(ctx.root, c.id, specs)
        hosts = service.hosts_file(ctx.root, c.id, hostname, _extra_hosts(c))
        etcfiles.write(ctx.root, c.id, hostname, hosts, _resolv(c, service.resolv_conf(ctx.root, name)))
    except BaseException:
        service.teardown_container(ctx.root, c.id)
        raise
    return describe(ctx, c, path)


def port_specs(c: Container) -> list[Any]:
    from ocirt.manager.network.ports import parse_port_specs
    from ocirt.manager.network.service import parse_port_spec

    specs = [one for p in c.options.ports for one in parse_port_specs(p)]
    if c.options.publish_all:
        specs += [
            parse_port_spec(p.partition("/")[0] + "/" + (p.partition("/")[2] or "tcp"))
            for p in c.plan.get("exposed", [])
        ]
    return specs


def describe(ctx: Context, c: Container, path: str) -> dict[str, Any]:
    from ocirt.manager.network import service

    conn = db.connect(ctx.root)
    networks = {}
    for ep in service.endpoints(ctx.root, c.id):
        row = conn.execute("SELECT name FROM networks WHERE id=?", (ep.network_id,)).fetchone()
        networks[row[0] if row else ep.network_id] = {
            "IPAddress": ep.ip,
            "MacAddress": ep.mac,
            "Interface": ep.ifname,
        }
    ports = [
        {
            "host_ip": b.host_ip,
            "host_port": b.host_port,
            "container_port": b.container_port,
            "protocol": b.proto,
            "container_ip": b.container_ip,
        }
        for b in service.port_bindings(ctx.root, c.id)
    ]
    return {"mode": c.options.network, "netns": path, "networks": networks, "ports": ports}


def teardown(ctx: Context, c: Container) -> None:
    """Undo the bridge setup (at removal); safe to call twice and after a failed setup."""
    if uses_bridge(c.options.network):
        from ocirt.manager.network import service

        service.teardown_container(ctx.root, c.id)

"""``ocirtctl network``: create, ls, inspect, rm, prune, connect, disconnect."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ocirt.manager import formats
from ocirt.manager.containers import present
from ocirt.manager.errors import ManagerError
from ocirt.manager.gotemplate import Record


def _options(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ManagerError(f"invalid -o {pair!r}: expected KEY=VALUE")
        out[key] = value
    return out


def cmd_create(args: argparse.Namespace) -> int:
    from ocirt.manager.network import service

    net = service.create_network(
        args.root,
        args.name,
        driver=args.driver,
        subnet=args.subnet,
        gateway=args.gateway,
        ip_range=args.ip_range,
        internal=args.internal,
        options=_options(args.opt),
    )
    print(net.id)
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    from ocirt.manager.network import drivers, service

    nets = service.list_networks(args.root) + drivers.predefined_records()
    if args.quiet:
        for net in nets:
            print(net.id[:12])
    elif args.format == "json":
        print(json.dumps([_row(net) for net in nets], indent=2))
    elif formats.is_template(args.format):
        formats.print_list(args.format, [_context(net, args.no_trunc) for net in nets], HEADERS, TABLE)
    else:
        print(f"{'NETWORK ID':<14}{'NAME':<20}{'DRIVER':<10}{'SCOPE':<8}{'SUBNET'}")
        for net in nets:
            print(f"{net.id[:12]:<14}{net.name:<20}{net.driver:<10}{'local':<8}{net.subnet}")
    return 0


TABLE = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"  # docker's; the plain listing adds SUBNET
# docker's column names for ``network ls --format 'table ...'``
HEADERS = {
    "ID": "NETWORK ID",
    "Name": "NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "IPv6": "IPV6",
    "Internal": "INTERNAL",
    "Labels": "LABELS",
    "Label": "LABEL",
    "CreatedAt": "CREATED",
}


def _context(net: Any, no_trunc: bool) -> Record:
    """What ``network ls --format`` templates see: docker's network context, all strings."""
    fields = {
        "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S.000000000 %z %Z", time.localtime(net.created)),
        "Driver": net.driver,
        "ID": net.id if no_trunc else net.id[:12],
        "IPv6": "false",
        "Internal": "true" if net.internal else "false",
        "Labels": "",
        "Name": net.name,
        "Scope": "local",
        "Label": lambda key: "",
    }
    return Record("*formatter.networkContext", fields)


def _row(net: Any) -> dict[str, Any]:
    return {"ID": net.id, "Name": net.name, "Driver": net.driver, "Scope": "local", "Subnet": net.subnet}


def cmd_inspect(args: argparse.Namespace) -> int:
    from ocirt.manager.network import service

    found, missing = [], []
    for name in args.names:
        try:
            found.append(present.network_document(service.inspect_network(args.root, name)))
        except ManagerError as exc:
            missing.append(str(exc))
    if formats.is_template(args.format):
        formats.print_inspect(args.format, found)
    else:
        print(json.dumps(found, indent=2))
    if missing:
        raise ManagerError("; ".join(missing), exit_code=1)
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    from ocirt.manager.network import service

    failed = []
    for name in args.names:
        try:
            service.remove_network(args.root, name)
        except ManagerError as exc:
            failed.append(str(exc))
            continue
        print(name)
    if failed:
        raise ManagerError("; ".join(failed), exit_code=1)
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from ocirt.manager.network import service

    removed = service.prune_networks(args.root)
    if removed:
        print("Deleted Networks:")
        for name in removed:
            print(name)
    return 0


def _container_netns(root: str, ref: str) -> tuple[str, str, str]:
    """(id, name, netns path) of a container whose network namespace exists."""
    from ocirt.manager import db
    from ocirt.manager.containers import store
    from ocirt.manager.network import drivers, netns, service

    c = store.get(db.connect(root), ref)
    mode = c.options.network
    if drivers.pre_defined(mode) or mode.startswith("container:"):
        raise ManagerError(f"container {ref} uses --network {mode}: it cannot join other networks")
    path = service.netns_path(root, c.id)
    if not netns.is_mounted(path):
        raise ManagerError(f"container {ref} has no network namespace yet: start it first")
    return c.id, c.name, path


def cmd_connect(args: argparse.Namespace) -> int:
    from ocirt.manager.network import service

    cid, name, path = _container_netns(args.root, args.container)
    service.connect(args.root, args.network, cid, path, ip=args.ip, aliases=args.alias, name=name)
    _refresh_plan(args.root, cid, path)
    return 0


def cmd_disconnect(args: argparse.Namespace) -> int:
    from ocirt.manager.network import service

    cid, _, path = _container_netns(args.root, args.container)
    service.disconnect(args.root, args.network, cid, path)
    _refresh_plan(args.root, cid, path)
    return 0


def _refresh_plan(root: str, cid: str, path: str) -> None:
    """``inspect`` shows the container's networks from its record: bring it up to date."""
    from ocirt.manager import db
    from ocirt.manager.containers import networking, store
    from ocirt.manager.containers.runtime import Context

    conn = db.connect(root)
    with db.transaction(conn):
        c = store.get(conn, cid)
        c.plan["network"] = networking.describe(Context.make(root, None), c, path)
        store.save(conn, c)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``network`` and its subcommands to ``sub``."""
    top = sub.add_parser("network", help="manage networks")
    top.set_defaults(func=lambda _args: _usage(top))
    group = top.add_subparsers(dest="network_command", metavar="CMD")

    p = group.add_parser("create", help="create a network")
    p.add_argument("-d", "--driver", default="bridge", help="network driver: bridge (default) or macvlan")
    p.add_argument("--subnet", help="IPv4 CIDR (default: a free one from 172.17-31.0.0/16)")
    p.add_argument("--gateway", help="gateway address (default: the subnet's first)")
    p.add_argument("--ip-range", help="allocate container addresses from this sub-range")
    p.add_argument("--internal", action="store_true", help="no traffic in or out of the network")
    p.add_argument("-o", "--opt", action="append", default=[], help="driver option, e.g. parent=IFACE")
    p.add_argument("name")
    p.set_defaults(func=cmd_create)

    p = group.add_parser("ls", aliases=["list"], help="list networks")
    p.add_argument("-q", "--quiet", action="store_true", help="only ids")
    p.add_argument("--no-trunc", action="store_true", help="full ids")
    p.add_argument("--format", default="table", help="table, json or a Go template")
    p.set_defaults(func=cmd_ls)

    p = group.add_parser("inspect", help="show networks as JSON")
    p.add_argument("names", nargs="+", metavar="NETWORK")
    p.add_argument("-f", "--format", default=None, help="Go template run over each document")
    p.set_defaults(func=cmd_inspect)

    p = group.add_parser("rm", aliases=["remove"], help="remove networks")
    p.add_argument("names", nargs="+", metavar="NETWORK")
    p.set_defaults(func=cmd_rm)

    p = group.add_parser("prune", help="remove networks no container uses")
    p.add_argument("-f", "--force", action="store_true", help="do not ask (never asks anyway)")
    p.set_defaults(func=cmd_prune)

    p = group.add_parser("connect", help="connect a container to a network")
    p.add_argument("--ip", help="static IPv4 address")
    p.add_argument("--alias", action="append", default=[], help="another DNS name on the network")
    p.add_argument("network")
    p.add_argument("container")
    p.set_defaults(func=cmd_connect)

    p = group.add_parser("disconnect", help="disconnect a container from a network")
    p.add_argument("-f", "--force", action="store_true", help="accepted for docker compatibility")
    p.add_argument("network")
    p.add_argument("container")
    p.set_defaults(func=cmd_disconnect)

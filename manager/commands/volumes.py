"""``ocirtctl volume create|ls|inspect|rm|prune``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING

from ocirt.manager import db, formats
from ocirt.manager.containers import present, units
from ocirt.manager.errors import ManagerError
from ocirt.manager.gotemplate import Record
from ocirt.manager.volumes import service, store

if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]


def _root(args: argparse.Namespace) -> str:
    return os.path.abspath(str(args.root))


def cmd_create(args: argparse.Namespace) -> int:
    labels = dict(units.key_value(t, "--label") for t in args.label)
    vol = service.create(_root(args), args.name, labels)
    print(vol.name)
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    vols = store.all_volumes(db.connect(_root(args)))
    if args.quiet:
        for v in vols:
            print(v.name)
        return 0
    if args.format == "json":
        print(json.dumps([{"Driver": "local", "Name": v.name} for v in vols], indent=2))
        return 0
    formats.print_list(args.format, [_context(_root(args), v) for v in vols], HEADERS, TABLE)
    return 0


TABLE = "table {{.Driver}}\t{{.Name}}"


# docker's column names for ``volume ls --format 'table ...'``
HEADERS = {
    "Name": "VOLUME NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "Mountpoint": "MOUNTPOINT",
    "Labels": "LABELS",
    "Label": "LABEL",
    "Links": "LINKS",
    "Size": "SIZE",
}


def _context(root: str, vol: store.Volume) -> Record:
    """What ``volume ls --format`` templates see: docker's volume context, all strings."""
    fields = {
        "Driver": "local",
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(vol.labels.items())),
        "Links": "N/A",
        "Mountpoint": service.volume_dir(root, vol.name),
        "Name": vol.name,
        "Scope": "local",
        "Size": "N/A",
        "Label": lambda key: vol.labels.get(key, ""),
    }
    return Record("*formatter.volumeContext", fields)


def cmd_inspect(args: argparse.Namespace) -> int:
    root = _root(args)
    docs = [present.volume_document(root, service.get(root, name)) for name in args.names]
    if formats.is_template(args.format):
        formats.print_inspect(args.format, docs)
    else:
        print(json.dumps(docs, indent=2))
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    """As docker: every volume that can go goes; each that cannot is named on stderr, and
    the status is then 1."""
    failed = 0
    for name in args.names:
        try:
            service.remove(_root(args), name, force=args.force)
        except ManagerError as exc:
            print(f"ocirtctl: {exc}", file=sys.stderr)
            failed = 1
            continue
        print(name)
    return failed


def cmd_prune(args: argparse.Namespace) -> int:
    for name in service.prune(_root(args)):
        print(name)
    return 0


def register(sub: Sub) -> None:
    """Add this group's subcommands to ``sub``."""
    group: argparse.ArgumentParser = sub.add_parser("volume", help="manage volumes")
    inner = group.add_subparsers(dest="volume_command", metavar="COMMAND")
    p = inner.add_parser("create", help="create a volume (a random name if none)")
    p.add_argument("name", nargs="?")
    p.add_argument("-l", "--label", action="append", default=[])
    p.set_defaults(func=cmd_create)
    p = inner.add_parser("ls", help="list volumes")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--format", default="table", help="table, json or a Go template")
    p.set_defaults(func=cmd_ls)
    p = inner.add_parser("inspect", help="volume details as JSON")
    p.add_argument("names", nargs="+", metavar="VOLUME")
    p.add_argument("-f", "--format", default=None, help="Go template run over each document")
    p.set_defaults(func=cmd_inspect)
    p = inner.add_parser("rm", help="remove volumes (refused while a container uses one)")
    p.add_argument("names", nargs="+", metavar="VOLUME")
    p.add_argument("-f", "--force", action="store_true", help="no error for a missing volume")
    p.set_defaults(func=cmd_rm)
    p = inner.add_parser("prune", help="remove every volume no container uses")
    p.add_argument("-f", "--force", action="store_true", help="do not ask (never asks anyway)")
    p.set_defaults(func=cmd_prune)

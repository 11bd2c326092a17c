"""``ocirtctl system`` commands: ``system gc`` deletes blobs and unpacked layers no image
references (``rmi`` and ``image prune`` run it too)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ocirt.manager.images import service

if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]


def register(sub: Sub) -> None:
    """Add this group's subcommands to ``sub``."""
    system = sub.add_parser("system", help="manage the manager's storage")
    group = system.add_subparsers(dest="system_command", metavar="COMMAND")
    gc = group.add_parser("gc", help="delete unreferenced blobs and snapshots")
    gc.set_defaults(func=cmd_gc)


def cmd_gc(args: argparse.Namespace) -> int:
    blobs, snaps = service.gc(args.root)
    print(f"Deleted {blobs} blobs and {snaps} snapshots")
    return 0

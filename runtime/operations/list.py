"""``ocirt list``: runc's table (ID PID STATUS BUNDLE CREATED OWNER), JSON, or ids only."""

from __future__ import annotations

import os
import sys

from ocirt.foundation import fastjson
from ocirt.runtime import state as statemod
from ocirt.runtime.errors import OcirtError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ocirt.runtime.cli import Args
    from ocirt.runtime.log import Log


def main(opts: Args, args: Args, log: Log) -> int:
    root = opts.root or statemod.DEFAULT_ROOT
    fmt = args.format or "table"
    if fmt not in ("table", "json"):
        raise OcirtError(f"--format: unknown format {fmt!r} (table or json)")
    states = []
    for container_id in statemod.list_ids(root):
        try:
            states.append(statemod.load(root, container_id).public(with_owner=True))
        except FileNotFoundError:
            continue  # its directory went between the listing and the read: deleted meanwhile
        except OcirtError as err:
            if os.path.isdir(os.path.join(root, container_id)):
                log.warning(str(err))
    if args.quiet:
        sys.stdout.write("".join(f"{s['id']}\n" for s in states))
    elif fmt == "json":
        sys.stdout.write(fastjson.dumps(states) + "\n")
    else:
        sys.stdout.write(_table(states))
    return 0


def _table(states: list[dict[str, object]]) -> str:
    header = ("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")
    rows = [header] + [
        tuple(str(s[k]) for k in ("id", "pid", "status", "bundle", "created", "owner")) for s in states
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "".join(
        "   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n" for row in rows
    )

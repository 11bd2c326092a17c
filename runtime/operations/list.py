"""``ocirt list``: runc's table (ID PID STATUS BUNDLE CREATED OWNER), JSON, or ids only."""

from __future__ import annotations

import os

from ocirt.runtime import state as statemod
from ocirt.runtime.errors import OcirtError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ocirt.runtime.api import Runtime


def list_states(rt: Runtime) -> list[dict[str, Any]]:
    """Every container's state document, its owner included; unreadable ones are warned of."""
    root = rt.root
    states = []
    for container_id in statemod.list_ids(root):
        try:
            states.append(statemod.load(root, container_id).public(with_owner=True))
        except FileNotFoundError:
            continue  # its directory went between the listing and the read: deleted meanwhile
        except OcirtError as err:
            if os.path.isdir(os.path.join(root, container_id)):
                rt.log.warning(str(err))
    return states


def table(states: list[dict[str, object]]) -> str:
    header = ("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")
    rows = [header] + [
        tuple(str(s[k]) for k in ("id", "pid", "status", "bundle", "created", "owner")) for s in states
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "".join(
        "   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n" for row in rows
    )

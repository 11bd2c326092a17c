"""Healthchecks: the image's ``HEALTHCHECK`` merged with ``--health-*``, the shim's record
of the results read back as docker's ``State.Health``, and ``health_status`` events.

The shim runs the checks on the container's own timer (no daemon here) and writes
``health.json`` in its state directory; when the status changes it runs this module
(``python -m ocirt.manager.containers.health ROOT ID STATUS``), which records the event.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ocirt.manager.containers.store import Container

SECOND = 1_000_000_000
DEFAULTS = {"Interval": 30 * SECOND, "Timeout": 30 * SECOND, "StartPeriod": 0, "Retries": 3}
FILE = "health.json"


def merged(image: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """docker's merge, as its ``Config.Healthcheck`` shows it: each field the flags set wins
    over the image's ``Healthcheck`` (``image`` is the image config's ``config``)."""
    theirs = image.get("Healthcheck") or {}
    return {k: v for k, v in theirs.items() if v} | {k: v for k, v in flags.items() if v}


def effective(image_config: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any] | None:
    """What the shim runs, defaults filled in; a test of ``NONE`` (``--no-healthcheck``) or
    none at all means no healthcheck."""
    merged_config = merged(image_config.get("config") or {}, flags)
    test = merged_config.get("Test") or []
    if not test or test[0] == "NONE":
        return None
    return {"Test": list(test)} | {k: merged_config.get(k) or v for k, v in DEFAULTS.items()}


def path(shim_dir: str) -> str:
    return os.path.join(shim_dir, FILE)


def state(c: Container) -> dict[str, Any] | None:
    """docker's ``State.Health``: none without a healthcheck or before the first start;
    what the shim last wrote (``starting`` before the first result); ``unhealthy`` with
    the results kept once the container has stopped, as dockerd shows it."""
    if not c.plan.get("healthcheck") or not c.plan.get("health_file"):
        return None
    try:
        with open(c.plan["health_file"]) as f:
            doc: dict[str, Any] = json.load(f)
    except (OSError, ValueError):
        doc = {"Status": "starting", "FailingStreak": 0, "Log": []}
    if not c.state.live:
        doc["Status"] = "unhealthy"
    return doc


def suffix(c: Container) -> str:
    """What docker's STATUS column adds for a running container: ``(health: starting)``,
    ``(healthy)``, ``(unhealthy)``."""
    doc = state(c)
    if doc is None:
        return ""
    return " (health: starting)" if doc["Status"] == "starting" else f" ({doc['Status']})"


def main(argv: list[str]) -> int:
    from ocirt.manager import db
    from ocirt.manager.containers import store

    root, cid, status = argv
    c = store.find(db.connect(root), cid)
    if c is not None:
        store.event(root, c, f"health_status: {status}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

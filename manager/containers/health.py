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
from typing import Any

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


def state(shim_dir: str) -> dict[str, Any]:
    """``State.Health`` as the shim last wrote it (``starting`` before the first result)."""
    try:
        with open(os.path.join(shim_dir, FILE)) as f:
            doc: dict[str, Any] = json.load(f)
    except (OSError, ValueError):
        return {"Status": "starting", "FailingStreak": 0, "Log": []}
    return doc


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

"""The shim's exit command: ``python -m ocirt.manager.containers.cleanup ROOT RUNTIME ID``.

A module of its own rather than an ``ocirtctl`` subcommand, so that a container's exit
(and its restart policy) costs only the imports of the container code, not those of every
command group ``ocirtctl`` registers.
"""

from __future__ import annotations

import os
import sys

from ocirt.manager.containers import exits, layout
from ocirt.manager.containers.runtime import Context
from ocirt.manager.errors import ManagerError


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m ocirt.manager.containers.cleanup ROOT RUNTIME ID", file=sys.stderr)
        return 2
    root, runtime, cid = argv
    os.chdir("/")  # the shim's working directory may be gone; the next shim inherits ours
    if not os.path.isdir(layout.container_dir(root, cid)):
        return 0  # removed (or its root reset) meanwhile: opening the database would re-make it
    try:
        exits.finish(Context.make(root, runtime), cid)
    except Exception as exc:
        _record_failure(root, cid, exc)
        return 1
    return 0


def _record_failure(root: str, cid: str, exc: Exception) -> None:
    """The shim gave us /dev/null for stdio: keep the reason in the container's directory."""
    import traceback

    text = str(exc) if isinstance(exc, ManagerError) else "".join(traceback.format_exception(exc))
    path = os.path.join(layout.container_dir(root, cid), "cleanup.log")
    if os.path.isdir(os.path.dirname(path)):
        with open(path, "a") as f:
            f.write(text.rstrip("\n") + "\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

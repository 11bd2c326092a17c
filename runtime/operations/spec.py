"""``ocirt spec``: write runc's example ``config.json`` into the bundle (default: the cwd)."""

from __future__ import annotations

import os

from ocirt.foundation import fastjson
from ocirt.runtime import specgen
from ocirt.runtime.errors import OcirtError


def write_spec(bundle: str, rootless: bool) -> None:
    if not os.path.isdir(bundle):
        raise OcirtError(f"spec: bundle {bundle}: not a directory")
    config = specgen.default_spec()
    if rootless:
        config = specgen.rootless(config, os.geteuid(), os.getegid())
    _write_new(os.path.join(bundle, "config.json"), fastjson.dumps(config, "\t"))


def _write_new(path: str, text: str) -> None:
    """O_EXCL, not a prior stat: a config.json appearing meanwhile is still never overwritten."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except FileExistsError:
        raise OcirtError("File config.json exists. Remove it first") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)

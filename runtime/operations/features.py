"""``ocirt features``: what this runtime implements, as runc prints it (JSON, 4-space indent)."""

from __future__ import annotations

import sys

from ocirt.foundation import fastjson

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ocirt.runtime.cli import Args
    from ocirt.runtime.log import Log


def main(opts: Args, args: Args, log: Log) -> int:
    from ocirt.runtime.features import build, kernel_seccomp_flags

    doc = build()
    if doc["linux"]["seccomp"]["enabled"]:
        doc["linux"]["seccomp"]["supportedFlags"] = kernel_seccomp_flags()
    sys.stdout.write(fastjson.dumps(doc, "    ") + "\n")
    return 0

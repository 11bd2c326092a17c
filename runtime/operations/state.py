"""``ocirt state``: the runtime-spec state document, indented as runc prints it."""

from __future__ import annotations

import sys

from ocirt.foundation import fastjson
from ocirt.runtime import state as statemod

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ocirt.runtime.cli import Args
    from ocirt.runtime.log import Log


def main(opts: Args, args: Args, log: Log) -> int:
    st = statemod.load(opts.root or statemod.DEFAULT_ROOT, args.positional[0])
    sys.stdout.write(fastjson.dumps(st.public(), "  ") + "\n")
    return 0

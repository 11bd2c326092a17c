"""``ocirt delete``: remove a stopped (or created) container; ``--force`` kills it first."""

from __future__ import annotations

from ocirt.runtime import state as statemod
from ocirt.runtime.errors import OcirtError
from ocirt.runtime.operations.create import remove_container

CREATE_PATIENCE = 5.0  # seconds; a create takes a fraction of one

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ocirt.runtime.cli import Args
    from ocirt.runtime.log import Log


def main(opts: Args, args: Args, log: Log) -> int:
    root = opts.root or statemod.DEFAULT_ROOT
    # a create in progress finishes (or fails) first, unless stuck; then its whole container goes
    statemod.lock(statemod.state_dir(root, args.positional[0]), patience=CREATE_PATIENCE)
    try:
        st = statemod.load(root, args.positional[0])
    except OcirtError:
        if args.force:
            return 0
        raise
    if st.status in (statemod.RUNNING, statemod.PAUSED) and not args.force:
        raise OcirtError(f"cannot delete container {st.id!r} that is not stopped: {st.status} (use --force)")
    remove_container(st, log)
    return 0

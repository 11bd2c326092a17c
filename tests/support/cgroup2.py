"""A cgroup2-only view of this hybrid host: the runtime under test sees /sys/fs/cgroup the
way a stock Debian 12, Ubuntu or Fedora host shows it.

Each command runs in a private mount namespace of its own with the host's unified
hierarchy bound at /sys/fs/cgroup, so every command of a container's life sees the same
cgroups, and the host's mounts are never touched.
"""

from __future__ import annotations

import os

UNIFIED = "/sys/fs/cgroup/unified"
SCRIPT = """#!/bin/sh
exec unshare --mount --propagation private -- \\
    sh -c 'mount --bind /sys/fs/cgroup/unified /sys/fs/cgroup && exec "$@"' sh "$@"
"""


def write_v2_view(directory: str) -> str:
    """A wrapper that runs its arguments in the view; fails loudly without cgroup2."""
    if not os.path.exists(f"{UNIFIED}/cgroup.procs"):
        raise AssertionError(f"a cgroup2-only view needs the cgroup2 hierarchy at {UNIFIED}")
    path = os.path.join(directory, "v2-view")
    with open(path, "w") as f:
        f.write(SCRIPT)
    os.chmod(path, 0o755)
    return path

"""``--init``: a tiny static pid 1 (``init.c``), built once per manager root with the
host's C compiler and bind-mounted read-only into the container.

busybox has no init that forwards signals and exits with its child's status, and a Python
one could not run inside an arbitrary image, so a 60-line static C program it is.
"""

from __future__ import annotations

import os
import subprocess

from ocirt.manager.errors import ManagerError

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "init.c")


def binary(root: str) -> str:
    path = os.path.join(root, "bin", "ocirt-init")
    if os.path.exists(path) and os.stat(path).st_mtime >= os.stat(SOURCE).st_mtime:
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}"
    try:
        done = subprocess.run(["cc", "-static", "-Os", "-o", tmp, SOURCE], capture_output=True, text=True)
    except OSError as exc:
        raise ManagerError(f"--init: cannot build ocirt-init: cc: {exc.strerror}") from None
    if done.returncode != 0:
        raise ManagerError(f"--init: cannot build ocirt-init: {done.stderr.strip().splitlines()[-1:]}")
    os.replace(tmp, path)
    return path

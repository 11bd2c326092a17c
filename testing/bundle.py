"""Bundles built from Debian's busybox-static: the rootfs every test, demo and bench uses.

One static binary and its applet links make a complete userland in a few milliseconds,
with nothing fetched from a registry.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

BUSYBOX = "/bin/busybox"
SPEC_VERSION = "1.3.0"
DEFAULT_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"]

_applets: list[str] | None = None


def applets() -> list[str]:
    """Applet paths such as ``bin/sh`` and ``usr/bin/env``, as busybox itself lists them."""
    global _applets
    if _applets is None:
        if not os.access(BUSYBOX, os.X_OK):
            raise RuntimeError(f"{BUSYBOX} is missing: install Debian's busybox-static")
        out = subprocess.run([BUSYBOX, "--list-full"], check=True, capture_output=True, text=True)
        _applets = [line for line in out.stdout.split() if line]
    return _applets


def make_rootfs(path: str) -> str:
    """A writable busybox rootfs at ``path`` with the directories a container expects."""
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root", "var/tmp"):
        os.makedirs(os.path.join(path, d), exist_ok=True)
    os.chmod(os.path.join(path, "tmp"), 0o1777)
    shutil.copy2(BUSYBOX, os.path.join(path, "bin", "busybox"))
    for applet in applets():
        link = os.path.join(path, applet)
        if not os.path.lexists(link):
            os.symlink("/bin/busybox", link)
    with open(os.path.join(path, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    with open(os.path.join(path, "etc", "group"), "w") as f:
        f.write("root:x:0:\nnogroup:x:65534:\n")
    return path


def base_config(args: list[str]) -> dict[str, Any]:
    """A small, complete config: new pid, mount, ipc, uts and network namespaces, no tty."""
    return {
        "ociVersion": SPEC_VERSION,
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": list(DEFAULT_ENV),
            "cwd": "/",
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": "ocirt",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
            },
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            },
            {
                "destination": "/dev/mqueue",
                "type": "mqueue",
                "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"],
            },
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            },
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }


def make_bundle(path: str, args: list[str], config: dict[str, Any] | None = None) -> str:
    """Write ``path/config.json`` and ``path/rootfs``; ``config`` replaces the default."""
    os.makedirs(path, exist_ok=True)
    make_rootfs(os.path.join(path, "rootfs"))
    write_config(path, config if config is not None else base_config(args))
    return path


def write_config(path: str, config: dict[str, Any]) -> None:
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f, indent=2)

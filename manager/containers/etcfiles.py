"""``/etc/hostname``, ``/etc/hosts`` and ``/etc/resolv.conf`` of a container: files in its
userdata directory, bind-mounted over the image's, rewritten at each start."""

from __future__ import annotations

import os
from typing import Any

from ocirt.manager.containers import layout

FILES = ("hostname", "hosts", "resolv.conf")


def write(root: str, cid: str, hostname: str, hosts: str, resolv: str) -> None:
    for name, text in zip(FILES, (hostname + "\n", hosts, resolv), strict=True):
        path = layout.userdata(root, cid, name)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)


def default_hosts(hostname: str, addresses: list[str]) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines += [f"{addr}\t{hostname}" for addr in addresses] or [f"127.0.1.1\t{hostname}"]
    return "\n".join(lines) + "\n"


def host_resolv() -> str:
    try:
        with open("/etc/resolv.conf") as f:
            return f.read()
    except OSError:
        return ""


def mounts(root: str, cid: str) -> list[dict[str, Any]]:
    return [
        {
            "destination": f"/etc/{name}",
            "type": "bind",
            "source": layout.userdata(root, cid, name),
            "options": ["rbind", "rprivate", "rw"],
        }
        for name in FILES
    ]

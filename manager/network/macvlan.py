"""macvlan endpoints: a sub-interface of the network's parent, created straight in the netns.

No bridge, no NAT and no DNS, as in docker: the parent's real network is the network, and its
router (``--gateway``) must exist there. Containers on one parent talk to each other in
``bridge`` mode, never to the parent itself (a macvlan property).
"""

from __future__ import annotations

import os

from ocirt.manager.errors import ManagerError
from ocirt.manager.network.links import index, open_ns, rtnl
from ocirt.manager.network.rtnetlink import NetlinkError

MODES = ("bridge", "private", "vepa", "passthru")


def add(parent: str, mode: str, netns_path: str, ifname: str, mac: str) -> None:
    """Created with IFLA_NET_NS_FD, so the name ``ifname`` never exists on the host."""
    fd = open_ns(netns_path)
    try:
        with rtnl() as ipr:
            link = index(ipr, parent)
            if link is None:
                raise ManagerError(f"macvlan parent {parent} does not exist any more")
            try:
                ipr.macvlan_add(ifname, link, mode, mac, fd)
            except NetlinkError as exc:
                raise ManagerError(f"cannot create macvlan on {parent}: {exc.strerror}") from None
    finally:
        os.close(fd)

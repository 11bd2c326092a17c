"""The macvlan driver: each container gets a sub-interface of the network's parent, made
straight in its namespace; no bridge, NAT or DNS, the parent's real network is the network."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ocirt.manager.errors import ManagerError
from ocirt.manager.network import links, macvlan

if TYPE_CHECKING:
    from ocirt.manager.network.settings import NetSettings
    from ocirt.manager.network.store import Endpoint, NetworkRecord

OPTIONS = ("parent", "macvlan_mode")


class MacvlanDriver:
    name = "macvlan"
    creatable = True
    avoids_host_routes = False
    exclusive_link = True
    subnet_required: str | None = "macvlan networks need --subnet (the parent's real network)"

    def validate(self, opts: dict[str, str]) -> None:
        unknown = sorted(set(opts) - set(OPTIONS))
        if unknown:
            raise ManagerError(f"invalid -o {unknown[0]}: not an option of the macvlan driver")
        parent = opts.get("parent", "")
        if not parent:
            raise ManagerError("macvlan networks need -o parent=IFACE")
        if not links.exists(parent):
            raise ManagerError(f"invalid -o parent={parent}: no such interface")
        mode = opts.setdefault("macvlan_mode", "bridge")
        if mode not in macvlan.MODES:
            raise ManagerError(f"invalid -o macvlan_mode={mode}: expected one of {', '.join(macvlan.MODES)}")

    def link(self, prefix: str, net_id: str, opts: dict[str, str]) -> str:
        return opts["parent"]

    def create(self, root: str, cfg: NetSettings, net: NetworkRecord) -> None:
        """Nothing: the parent is the host's, and each endpoint is made at connect."""

    def remove(self, cfg: NetSettings, net: NetworkRecord) -> None:
        """Nothing: the parent is not ours to delete."""

    def connect(self, net: NetworkRecord, ep: Endpoint, netns_path: str) -> None:
        macvlan.add(net.link, net.options["macvlan_mode"], netns_path, ep.ifname, ep.mac)

    def disconnect(self, net: NetworkRecord, ep: Endpoint, netns_path: str) -> None:
        if os.path.exists(netns_path):
            links.delete_inside(netns_path, ep.ifname)
        links.delete(ep.host_if)

    def options(self, net: NetworkRecord) -> dict[str, str]:
        return {}

    def serves_dns(self, net: NetworkRecord) -> bool:
        return False

    def publishes(self, net: NetworkRecord) -> bool:
        return False


DRIVER = MacvlanDriver()

"""The bridge driver: a Linux bridge per network, a veth per container, NAT and isolation
rules in the root's nft table, and a DNS server on user-defined networks (as docker)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ocirt.manager.errors import ManagerError
from ocirt.manager.network import bridge, dnsd, ipam, links, nat

if TYPE_CHECKING:
    from ocirt.manager.network.settings import NetSettings
    from ocirt.manager.network.store import Endpoint, NetworkRecord


class BridgeDriver:
    name = "bridge"
    creatable = True
    avoids_host_routes = True
    exclusive_link = False
    subnet_required: str | None = None

    def validate(self, opts: dict[str, str]) -> None:
        if opts:
            raise ManagerError(f"invalid -o {sorted(opts)[0]}: not an option of the bridge driver")

    def link(self, prefix: str, net_id: str, opts: dict[str, str]) -> str:
        return f"{prefix}b{net_id[:6]}"

    def create(self, root: str, cfg: NetSettings, net: NetworkRecord) -> None:
        subnet = ipam.network_of(net.subnet)
        bridge.ensure(net.link, f"{net.gateway}/{subnet.prefixlen}", forward=not net.internal)
        nat.ensure_network(cfg.nft_table, net.id, net.link, net.subnet, net.internal)
        if self.serves_dns(net):
            dnsd.ensure_running(root, cfg, net)

    def remove(self, cfg: NetSettings, net: NetworkRecord) -> None:
        dnsd.stop(cfg, net.id)
        nat.remove_rules(cfg.nft_table, nat.network_tag(net.id))
        links.delete(net.link)

    def connect(self, net: NetworkRecord, ep: Endpoint, netns_path: str) -> None:
        links.add_veth(ep.host_if, net.link, netns_path, ep.ifname, ep.mac)

    def disconnect(self, net: NetworkRecord, ep: Endpoint, netns_path: str) -> None:
        if os.path.exists(netns_path):
            links.delete_inside(netns_path, ep.ifname)
        links.delete(ep.host_if)

    def options(self, net: NetworkRecord) -> dict[str, str]:
        return {"com.docker.network.bridge.name": net.link}

    def serves_dns(self, net: NetworkRecord) -> bool:
        """Docker's embedded DNS serves user-defined bridge networks only."""
        return not net.is_default

    def publishes(self, net: NetworkRecord) -> bool:
        return not net.internal


DRIVER = BridgeDriver()

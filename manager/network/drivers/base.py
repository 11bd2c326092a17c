"""What a network driver is: the part of a network that differs between bridge, macvlan,
host and none. ``service`` owns the records, the IPAM ledger and the locks; a driver is
asked only what to make in the kernel and how the network behaves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ocirt.manager.network.settings import NetSettings
    from ocirt.manager.network.store import Endpoint, NetworkRecord


class NetworkDriver(Protocol):
    name: str
    # ``network create -d NAME`` makes networks of it; host and none exist once, pre-defined
    creatable: bool
    # the host's routes are taken address space (bridge), or the network is the link's own (macvlan)
    avoids_host_routes: bool
    # one network per link (macvlan shares its parent's L2 segment with nobody else here)
    exclusive_link: bool
    # None: the subnet is picked from the pool; else the message when --subnet is missing
    subnet_required: str | None

    def validate(self, opts: dict[str, str]) -> None:
        """Refuse unknown or bad ``-o`` options in one line; fill in the defaults."""

    def link(self, prefix: str, net_id: str, opts: dict[str, str]) -> str:
        """The host interface the network is built on (the record's ``link``)."""

    def create(self, root: str, cfg: NetSettings, net: NetworkRecord) -> None:
        """Bring the kernel in line with the record; idempotent, cheap when all is there."""

    def remove(self, cfg: NetSettings, net: NetworkRecord) -> None:
        """Undo ``create``; safe on a half-made network."""

    def connect(self, net: NetworkRecord, ep: Endpoint, netns_path: str) -> None:
        """Give the namespace its interface ``ep.ifname`` (addresses are the service's)."""

    def disconnect(self, net: NetworkRecord, ep: Endpoint, netns_path: str) -> None:
        """Remove what ``connect`` made; safe when part of it is gone."""

    def options(self, net: NetworkRecord) -> dict[str, str]:
        """``network inspect``'s Options beyond the ones given at create."""

    def serves_dns(self, net: NetworkRecord) -> bool:
        """Containers find each other by name through the network's DNS server."""

    def publishes(self, net: NetworkRecord) -> bool:
        """``-p`` ports may be forwarded to an address on this network."""

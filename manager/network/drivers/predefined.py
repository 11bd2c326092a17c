"""The host and none drivers: one pre-defined network each, never created or connected to.
A container on ``host`` shares the host's network namespace; one on ``none`` gets a new
namespace holding only ``lo``. Neither has interfaces, addresses or ports of its own."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ocirt.manager.errors import ManagerError

if TYPE_CHECKING:
    from ocirt.manager.network.settings import NetSettings
    from ocirt.manager.network.store import Endpoint, NetworkRecord


class PredefinedDriver:
    creatable = False
    avoids_host_routes = False
    exclusive_link = False
    subnet_required: str | None = None

    def __init__(self, name: str, netns: str | None) -> None:
        self.name = name
        self.netns = netns

    def record(self) -> NetworkRecord:
        """The network as ``network ls`` shows it, with docker's driver name (``none``'s is
        ``null``) and an id that stays the same across calls (nothing is stored for it)."""
        import hashlib

        from ocirt.manager.network.store import NetworkRecord

        net_id = hashlib.sha256(f"ocirt pre-defined network {self.name}".encode()).hexdigest()
        driver = "null" if self.name == "none" else self.name
        return NetworkRecord(net_id, self.name, driver, "", "", "", "", created=0.0)

    def refuse(self) -> ManagerError:
        return ManagerError(f"the {self.name} network is pre-defined: it has no endpoints or options")

    def validate(self, opts: dict[str, str]) -> None:
        raise self.refuse()

    def link(self, prefix: str, net_id: str, opts: dict[str, str]) -> str:
        raise self.refuse()

    def create(self, root: str, cfg: NetSettings, net: NetworkRecord) -> None:
        raise self.refuse()

    def remove(self, cfg: NetSettings, net: NetworkRecord) -> None:
        raise self.refuse()

    def connect(self, net: NetworkRecord, ep: Endpoint, netns_path: str) -> None:
        raise self.refuse()

    def disconnect(self, net: NetworkRecord, ep: Endpoint, netns_path: str) -> None:
        raise self.refuse()

    def options(self, net: NetworkRecord) -> dict[str, str]:
        return {}

    def serves_dns(self, net: NetworkRecord) -> bool:
        return False

    def publishes(self, net: NetworkRecord) -> bool:
        return False


HOST = PredefinedDriver("host", "host")
NONE = PredefinedDriver("none", None)

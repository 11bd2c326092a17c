"""Network drivers by name: adding one is a module implementing ``NetworkDriver`` and one
entry in ``REGISTRY``; ``tests/test_network_drivers.py`` runs its suite on every entry."""

from __future__ import annotations

from ocirt.manager.errors import ManagerError
from ocirt.manager.network.drivers import bridge, macvlan, predefined
from ocirt.manager.network.drivers.base import NetworkDriver
from ocirt.manager.network.store import NetworkRecord

REGISTRY: dict[str, NetworkDriver] = {
    d.name: d for d in (bridge.DRIVER, macvlan.DRIVER, predefined.HOST, predefined.NONE)
}


def predefined_records() -> list[NetworkRecord]:
    """``host`` and ``none``, which docker's ``network ls`` lists beside ``bridge``."""
    return [d.record() for d in REGISTRY.values() if isinstance(d, predefined.PredefinedDriver)]


def creatable() -> list[str]:
    return [name for name, d in REGISTRY.items() if d.creatable]


def for_create(name: str) -> NetworkDriver:
    """The driver ``network create -d NAME`` asks for; a pre-defined one is refused too."""
    driver = REGISTRY.get(name)
    if driver is None or not driver.creatable:
        raise ManagerError(f"invalid --driver {name!r}: expected {' or '.join(creatable())}")
    return driver


def of(net_driver: str) -> NetworkDriver:
    """The driver of a stored network (the record's ``driver`` column)."""
    driver = REGISTRY.get(net_driver)
    if driver is None:
        raise ManagerError(f"network driver {net_driver!r} is unknown to this ocirtctl")
    return driver


def pre_defined(mode: str) -> predefined.PredefinedDriver | None:
    """For ``--network MODE``: the driver whose one pre-defined network MODE names, if any
    (``bridge`` names the default bridge network, a network like any other)."""
    driver = REGISTRY.get(mode)
    return driver if isinstance(driver, predefined.PredefinedDriver) else None

"""Network drivers by name: adding one is a module implementing ``NetworkDriver`` and one
entry in ``REGISTRY``; ``tests/test_network_drivers.py`` runs its suite on every entry."""

from __future__ import annotations

from ocirt.manager.errors import ManagerError
from ocirt.manager.network.drivers import predefined
from ocirt.manager.network.drivers.base import NetworkDriver
from ocirt.manager.network.store import NetworkRecord

_PRE_DEFINED = (predefined.HOST, predefined.NONE)
_REGISTRY: dict[str, NetworkDriver] = {}


def registry() -> dict[str, NetworkDriver]:
    """Built on first use: bridge and macvlan load netlink, nft and the DNS server, which a
    ``--network none`` or ``host`` run and most exits never touch."""
    if not _REGISTRY:
        from ocirt.manager.network.drivers import bridge, macvlan

        _REGISTRY.update({d.name: d for d in (bridge.DRIVER, macvlan.DRIVER, *_PRE_DEFINED)})
    return _REGISTRY


def __getattr__(name: str) -> dict[str, NetworkDriver]:
    """``drivers.REGISTRY`` for the modules that read it."""
    if name == "REGISTRY":
        return registry()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def predefined_records() -> list[NetworkRecord]:
    """``host`` and ``none``, which docker's ``network ls`` lists beside ``bridge``."""
    return [d.record() for d in _PRE_DEFINED]


def creatable() -> list[str]:
    return [name for name, d in registry().items() if d.creatable]


def for_create(name: str) -> NetworkDriver:
    """The driver ``network create -d NAME`` asks for; a pre-defined one is refused too."""
    driver = registry().get(name)
    if driver is None or not driver.creatable:
        raise ManagerError(f"invalid --driver {name!r}: expected {' or '.join(creatable())}")
    return driver


def of(net_driver: str) -> NetworkDriver:
    """The driver of a stored network (the record's ``driver`` column)."""
    driver = registry().get(net_driver)
    if driver is None:
        raise ManagerError(f"network driver {net_driver!r} is unknown to this ocirtctl")
    return driver


def pre_defined(mode: str) -> predefined.PredefinedDriver | None:
    """For ``--network MODE``: the driver whose one pre-defined network MODE names, if any
    (``bridge`` names the default bridge network, a network like any other)."""
    return next((d for d in _PRE_DEFINED if d.name == mode), None)

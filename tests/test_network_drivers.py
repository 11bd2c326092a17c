"""One suite every network driver passes (containerd's snapshotter testsuite idea): each
entry of ``drivers.REGISTRY`` must have a case here, and each case runs the same contract
against the real kernel, in namespaces the test creates and ``cleanup`` removes.

A creatable driver makes a network that ``ls`` and ``inspect`` show under its name, gives
two namespaces an ``eth0`` with their addresses that reach each other, takes the interface
back on disconnect, refuses an unknown ``-o`` in one line, and leaves nothing on removal.
A pre-defined driver (host, none) is refused by ``network create`` and names the namespace
its container lives in, as Docker's ``--network host|none`` do.
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
from ocirt.manager.errors import ManagerError
from ocirt.manager.network import drivers, links, service, settings
from support.nethost import cleanup, net_root, ping


@contextmanager
def bridge_network(root: str) -> Iterator[dict[str, Any]]:
    yield {}


@contextmanager
def macvlan_network(root: str) -> Iterator[dict[str, Any]]:
    """A veth pair of the test's own is the parent (this kernel has no dummy driver)."""
    parent = settings.load(root).prefix + "p"
    subprocess.run(["ip", "link", "add", parent, "type", "veth", "peer", "name", parent + "x"], check=True)
    try:
        for dev in (parent, parent + "x"):
            subprocess.run(["ip", "link", "set", dev, "up"], check=True)
        yield {"subnet": "10.219.0.0/24", "options": {"parent": parent}}
    finally:
        links.delete(parent)


# driver -> how to make a network of it (None: pre-defined) and, then, the container's netns
CASES: dict[str, Callable[[str], AbstractContextManager[dict[str, Any]]] | None] = {
    "bridge": bridge_network,
    "macvlan": macvlan_network,
    "host": None,
    "none": None,
}
# Docker: --network host shares the host's namespace; --network none gets a new, empty one
PRE_DEFINED_NETNS = {"host": "host", "none": None}


@pytest.fixture
def root(tmp_path: object) -> Iterator[str]:
    path = net_root(tmp_path)
    try:
        yield path
    finally:
        cleanup(path)


def cid(n: int) -> str:
    return f"{n:02d}" * 32


def test_every_registered_driver_has_a_case() -> None:
    assert set(drivers.REGISTRY) == set(CASES)
    assert {name for name, make in CASES.items() if make is not None} == set(drivers.creatable())


@pytest.mark.parametrize("name", [n for n, make in CASES.items() if make is not None])
def test_a_network_connects_namespaces_and_goes_without_a_trace(root: str, name: str) -> None:
    make = CASES[name]
    assert make is not None
    with make(root) as kwargs:
        net = service.create_network(root, "net", driver=name, **kwargs)
        assert [(n.name, n.driver) for n in service.list_networks(root)] == [("net", name)]
        assert service.inspect_network(root, "net")["Driver"] == name
        a, b = service.netns_create(root, cid(1)), service.netns_create(root, cid(2))
        ea = service.connect(root, "net", cid(1), a)
        eb = service.connect(root, "net", cid(2), b)
        prefix = ipaddress.IPv4Network(net.subnet).prefixlen
        assert links.inside_links(a)["eth0"] == [f"{ea.ip}/{prefix}"]
        assert links.inside_links(b)["eth0"] == [f"{eb.ip}/{prefix}"]
        assert ipaddress.IPv4Address(ea.ip) in ipaddress.IPv4Network(net.subnet)
        assert ping(a, eb.ip) and ping(b, ea.ip)

        service.disconnect(root, "net", cid(2), b)
        assert "eth0" not in links.inside_links(b) and not ping(a, eb.ip)
        with pytest.raises(ManagerError, match="active endpoints"):
            service.remove_network(root, "net")
        service.teardown_container(root, cid(1))
        service.teardown_container(root, cid(2))
        service.remove_network(root, "net")
        assert service.list_networks(root) == []
        made = set(links.names_with_prefix(settings.load(root).prefix))
        assert made <= {kwargs.get("options", {}).get("parent"), f"{settings.load(root).prefix}px"}


@pytest.mark.parametrize("name", [n for n, make in CASES.items() if make is not None])
def test_an_unknown_option_is_one_line_and_makes_nothing(root: str, name: str) -> None:
    make = CASES[name]
    assert make is not None
    with make(root) as kwargs:
        options = {**kwargs.get("options", {}), "bogus": "1"}
        with pytest.raises(ManagerError, match=f"^invalid -o bogus: not an option of the {name} driver$"):
            service.create_network(root, "net", driver=name, **{**kwargs, "options": options})
        assert service.list_networks(root) == []
        assert not links.names_with_prefix(settings.load(root).prefix + "b")


@pytest.mark.parametrize("name", [n for n, make in CASES.items() if make is None])
def test_a_pre_defined_driver_is_never_created_and_names_its_namespace(root: str, name: str) -> None:
    with pytest.raises(ManagerError, match=f"^invalid --driver '{name}': expected bridge or macvlan$"):
        service.create_network(root, "net", driver=name)
    assert service.list_networks(root) == []
    with pytest.raises(ManagerError, match="reserved"):
        service.create_network(root, name)
    driver = drivers.pre_defined(name)
    assert driver is not None and driver.netns == PRE_DEFINED_NETNS[name]
    assert drivers.pre_defined("bridge") is None, "bridge names the default network, not a mode"

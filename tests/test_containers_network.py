"""Containers on networks, end to end through ``ocirtctl``: user networks with names, a
published port from the host, a joined network namespace, connect/disconnect, isolation,
and 20 concurrent ``run -d`` each with its own working address."""

from __future__ import annotations

import concurrent.futures
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest
from support.ctl import Manager, checked, manager
from support.registry import free_port


@pytest.fixture(scope="module")
def mgr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Manager]:
    with manager(str(tmp_path_factory.mktemp("ctrnet"))) as m:
        yield m


@pytest.fixture
def ctl(mgr: Manager) -> Iterator[Manager]:
    def tidy() -> None:
        for net in ("front", "back", "other"):
            mgr("network", "rm", net, check=False)

    with checked(mgr, tidy) as m:
        yield m


def fetch(ctl: Manager, container: str, url: str, wait: int = 5) -> subprocess.CompletedProcess[str]:
    """busybox wget inside ``container``; its own -T crashes busybox 1.35, so ``timeout``."""
    return ctl("exec", container, "timeout", str(wait), "wget", "-q", "-O", "-", url, check=False)


def http_get(url: str) -> str:
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                body: bytes = resp.read()
                return body.decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def address(ctl: Manager, name: str, network: str) -> str:
    ip: str = ctl.inspect(name)["NetworkSettings"]["Networks"][network]["IPAddress"]
    return ip


def test_web_servers_by_name_and_published_port(ctl: Manager) -> None:
    ctl("network", "create", "front")
    port = free_port()
    ctl("run", "-d", "--name", "web1", "--network", "front", ctl.httpd)
    ctl("run", "-d", "--name", "web2", "--network", "front", "-p", f"{port}:80", ctl.httpd)
    assert fetch(ctl, "web1", "http://web2/").stdout == "hello from ocirt\n"
    assert fetch(ctl, "web2", "http://web1/").stdout == "hello from ocirt\n"
    assert http_get(f"http://127.0.0.1:{port}/") == "hello from ocirt\n"
    assert ctl("port", "web2").stdout.strip() == f"80/tcp -> 0.0.0.0:{port}"


def test_default_bridge_publish_all_and_no_names(ctl: Manager) -> None:
    ctl("run", "-d", "--name", "pa", "-P", ctl.httpd)
    mapping = ctl("port", "pa", "80").stdout.strip()
    host_port = int(mapping.rpartition(":")[2])
    assert http_get(f"http://127.0.0.1:{host_port}/") == "hello from ocirt\n"
    ctl("run", "-d", "--name", "pb", ctl.httpd)
    assert fetch(ctl, "pb", "http://pa/", wait=2).returncode != 0  # no DNS on the default bridge
    assert fetch(ctl, "pb", f"http://{address(ctl, 'pa', 'bridge')}/").stdout == "hello from ocirt\n"


def test_joined_network_namespace_over_loopback(ctl: Manager) -> None:
    ctl("run", "-d", "--name", "owner", "--network", "none", ctl.httpd)
    done = ctl(
        "run", "--rm", "--network", "container:owner", ctl.httpd, "wget", "-q", "-O", "-", "http://127.0.0.1/"
    )
    assert done.stdout == "hello from ocirt\n"


def test_connect_and_disconnect_seen_inside(ctl: Manager) -> None:
    ctl("network", "create", "front")
    ctl("network", "create", "--subnet", "10.213.7.0/24", "back")
    ctl("run", "-d", "--name", "multi", "--network", "front", ctl.httpd)
    assert ctl("exec", "multi", "ls", "/sys/class/net").stdout.split() == ["eth0", "lo"]
    ctl("network", "connect", "back", "multi")
    assert ctl("exec", "multi", "ls", "/sys/class/net").stdout.split() == ["eth0", "eth1", "lo"]
    ctl(
        "run",
        "-d",
        "--name",
        "peer",
        "--network",
        "back",
        "--ip",
        "10.213.7.50",
        "--network-alias",
        "db",
        "--net-alias",  # docker's hidden spelling
        "cache",
        ctl.httpd,
    )
    assert address(ctl, "peer", "back") == "10.213.7.50"
    assert fetch(ctl, "peer", "http://multi/").stdout == "hello from ocirt\n"
    by_alias = ctl(
        "run", "--rm", "--network", "back", ctl.httpd, "timeout", "5", "wget", "-q", "-O", "-", "http://db/"
    )
    assert by_alias.stdout == "hello from ocirt\n"
    by_hidden = ctl(
        "run",
        "--rm",
        "--network",
        "back",
        ctl.httpd,
        "timeout",
        "5",
        "wget",
        "-q",
        "-O",
        "-",
        "http://cache/",
    )
    assert by_hidden.stdout == "hello from ocirt\n"
    ctl("network", "disconnect", "back", "multi")
    assert ctl("exec", "multi", "ls", "/sys/class/net").stdout.split() == ["eth0", "lo"]


def test_two_networks_are_isolated(ctl: Manager) -> None:
    ctl("network", "create", "front")
    ctl("network", "create", "other")
    ctl("run", "-d", "--name", "a1", "--network", "front", ctl.httpd)
    ctl("run", "-d", "--name", "b1", "--network", "other", ctl.httpd)
    ctl("run", "-d", "--name", "a2", "--network", "front", ctl.httpd)
    assert fetch(ctl, "a2", f"http://{address(ctl, 'a1', 'front')}/").stdout == "hello from ocirt\n"
    assert fetch(ctl, "a1", f"http://{address(ctl, 'b1', 'other')}/", wait=2).returncode != 0
    assert fetch(ctl, "b1", f"http://{address(ctl, 'a1', 'front')}/", wait=2).returncode != 0


def test_twenty_parallel_runs_get_distinct_working_addresses(ctl: Manager) -> None:
    ctl("network", "create", "front")

    def run(i: int) -> subprocess.CompletedProcess[str]:
        return ctl(
            "run", "-d", "--name", f"par{i}", "--network", "front", ctl.httpd, check=False, timeout=300
        )

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(run, range(20)))
    assert [r.stderr for r in results if r.returncode != 0] == []
    addrs = [address(ctl, f"par{i}", "front") for i in range(20)]
    assert len(set(addrs)) == 20
    for ip in addrs:
        assert http_get(f"http://{ip}/") == "hello from ocirt\n"
    assert fetch(ctl, "par0", "http://par19/").stdout == "hello from ocirt\n"

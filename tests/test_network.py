"""The network library against the real kernel: namespaces, veths, bridges, nftables, DNS.

No containers are needed: a container's network namespace is exactly what ``netns_create``
makes, and commands run in it with ``nsenter``. Each test has its own manager root, hence its
own link prefix, nft table and run dir; ``cleanup`` then fails the test on any leftover.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
from ocirt.manager import db
from ocirt.manager.errors import ManagerError
from ocirt.manager.network import dnsd, links, nat, netns, service, settings
from ocirt.manager.network.ports import PortSpec, parse_port_spec
from ocirt.manager.network.rtnetlink import NetlinkError
from support.nethost import (
    OUTSIDE_HOST,
    OUTSIDE_IP,
    Daemon,
    Outside,
    cleanup,
    httpd,
    in_ns,
    net_root,
    nslookup,
    ping,
    set_upstream,
    wait_for,
    wget,
)


@pytest.fixture
def root(tmp_path: object) -> Iterator[str]:
    path = net_root(tmp_path)
    try:
        yield path
    finally:
        cleanup(path)


@pytest.fixture
def outside(root: str, tmp_path: object) -> Iterator[Outside]:
    out = Outside(root, str(tmp_path))
    try:
        yield out
    finally:
        out.close()


def cid(n: int) -> str:
    return f"{n:02d}" * 32


def addrs(path: str) -> dict[str, list[str]]:
    return links.inside_links(path)


def default_route(path: str) -> str:
    return in_ns(path, "ip", "-4", "route", "show", "default").stdout.strip()


def test_connect_gives_address_route_and_reaches_peer(root: str) -> None:
    net = service.create_network(root, "front")
    a, b = service.netns_create(root, cid(1)), service.netns_create(root, cid(2))
    ea = service.connect(root, "front", cid(1), a, name="web1")
    eb = service.connect(root, "front", cid(2), b, name="web2")
    prefix = ipaddress.IPv4Network(net.subnet).prefixlen
    assert addrs(a)["eth0"] == [f"{ea.ip}/{prefix}"]
    assert addrs(a)["lo"] == ["127.0.0.1/8"]
    assert ea.ip != eb.ip and ipaddress.IPv4Address(ea.ip) in ipaddress.IPv4Network(net.subnet)
    assert f"via {net.gateway} dev eth0" in default_route(a)
    assert ping(a, eb.ip) and ping(b, ea.ip) and ping(a, net.gateway)
    info = service.inspect_network(root, "front")
    assert info["Containers"][cid(2)]["IPv4Address"] == f"{eb.ip}/{prefix}"
    assert [e.ip for e in service.endpoints(root, cid(1))] == [ea.ip]

    service.disconnect(root, "front", cid(2), b)
    assert "eth0" not in addrs(b)
    assert not links.exists(eb.host_if)
    assert service.endpoints(root, cid(2)) == []
    assert not ping(a, eb.ip)
    reused = service.connect(root, "front", cid(3), service.netns_create(root, cid(3)))
    assert reused.ip == eb.ip, "a disconnected address is free again"


def test_second_network_adds_and_removes_eth1(root: str) -> None:
    service.create_network(root, "one")
    service.create_network(root, "two")
    a = service.netns_create(root, cid(1))
    service.connect(root, "one", cid(1), a)
    e2 = service.connect(root, "two", cid(1), a)
    assert e2.ifname == "eth1"
    assert addrs(a)["eth1"][0].startswith(e2.ip + "/")
    service.disconnect(root, "two", cid(1), a)
    assert set(addrs(a)) == {"lo", "eth0"}
    with pytest.raises(ManagerError, match="not connected to network two"):
        service.disconnect(root, "two", cid(1), a)


def test_networks_are_isolated_from_each_other(root: str) -> None:
    service.create_network(root, "red")
    service.create_network(root, "blue")
    r1, r2, b1 = (service.netns_create(root, cid(i)) for i in (1, 2, 3))
    e_r1 = service.connect(root, "red", cid(1), r1)
    service.connect(root, "red", cid(2), r2)
    e_b1 = service.connect(root, "blue", cid(3), b1)
    assert ping(r2, e_r1.ip), "same network must connect"
    assert not ping(b1, e_r1.ip)
    assert not ping(r1, e_b1.ip)


def test_internal_network_has_no_way_out(root: str, outside: Outside) -> None:
    net = service.create_network(root, "vault", internal=True)
    service.create_network(root, "open")
    v1, v2, o = (service.netns_create(root, cid(i)) for i in (1, 2, 3))
    e1 = service.connect(root, "vault", cid(1), v1)
    service.connect(root, "vault", cid(2), v2)
    service.connect(root, "open", cid(3), o)
    assert default_route(v1) == ""
    assert ping(v2, e1.ip), "containers of an internal network still reach each other"
    assert ping(o, OUTSIDE_IP), "control: a normal network gets out"
    # even with a route by hand, the forward chain drops whatever crosses the bridge
    assert in_ns(v1, "ip", "route", "add", "default", "via", net.gateway).returncode == 0
    assert not ping(v1, OUTSIDE_IP)
    assert wget(v1, f"http://{OUTSIDE_IP}:8000/").returncode != 0
    assert not ping(o, e1.ip)


def test_outbound_nat_and_dns(root: str, outside: Outside) -> None:
    set_upstream(root, OUTSIDE_IP)
    net = service.create_network(root, "apps")
    a, b = service.netns_create(root, cid(1)), service.netns_create(root, cid(2))
    ea = service.connect(root, "apps", cid(1), a, name="alpha", aliases=["db", "Primary"])
    service.connect(root, "apps", cid(2), b, name="beta")

    res = wget(b, f"http://{OUTSIDE_IP}:8000/")
    assert res.returncode == 0 and "outside says hi" in res.stdout, res.stderr
    log = outside.web.output()
    assert f"{OUTSIDE_HOST} - -" in log, log  # masqueraded to the host's address
    assert ea.ip not in log

    # the search domain containers inherit is tried first by resolvers: it must resolve too
    for name in ("alpha", "db", "primary", cid(1)[:12], "alpha.test.internal"):
        res = nslookup(b, name, net.gateway)
        assert res.returncode == 0 and f"Address: {ea.ip}" in res.stdout, (name, res.stdout, res.stderr)
    res = nslookup(b, "outside.test", net.gateway)  # not ours: forwarded to the host's resolver
    assert res.returncode == 0 and f"Address: {OUTSIDE_IP}" in res.stdout, res.stdout
    assert nslookup(b, "nowhere.test", net.gateway).returncode != 0

    conf = service.resolv_conf(root, "apps")
    assert conf.splitlines()[0] == f"nameserver {net.gateway}"
    service.disconnect(root, "apps", cid(1), a)
    assert nslookup(b, "alpha", net.gateway).returncode != 0


def test_default_bridge(root: str) -> None:
    cfg = settings.load(root)
    routes_before = links.host_routes()
    net = service.ensure_default(root)
    assert (net.name, net.link, net.is_default) == ("bridge", cfg.default_bridge, True)
    assert links.exists(cfg.default_bridge)
    assert service.ensure_default(root).id == net.id
    assert not any(ipaddress.IPv4Network(net.subnet).overlaps(r) for r in routes_before)
    a = service.netns_create(root, cid(1))
    ep = service.connect(root, "bridge", cid(1), a, name="plain")
    assert ping(a, net.gateway)
    # no DNS on the default bridge, as in docker: the host's resolvers, loopback ones dropped
    assert dnsd.running(cfg, net.id) is None
    assert service.resolv_conf(root, "bridge") == "search test.internal\noptions ndots:1\n"
    assert f"{ep.ip}\tweb\n" in service.hosts_file(root, cid(1), "web")
    with pytest.raises(ManagerError, match="--ip"):
        service.connect(root, "bridge", cid(2), service.netns_create(root, cid(2)), ip="172.17.0.9")
    with pytest.raises(ManagerError, match="pre-defined"):
        service.remove_network(root, "bridge")


def test_published_ports(root: str, outside: Outside, tmp_path: object) -> None:
    net = service.create_network(root, "pub")
    web, peer = service.netns_create(root, cid(1)), service.netns_create(root, cid(2))
    service.connect(root, "pub", cid(1), web)
    service.connect(root, "pub", cid(2), peer)
    docroot = os.path.join(str(tmp_path), "www")
    os.makedirs(docroot)
    with open(os.path.join(docroot, "index.html"), "w") as f:
        f.write("published hello\n")
    server = httpd(web, docroot, os.path.join(str(tmp_path), "httpd.log"))
    try:
        [binding] = service.publish(root, cid(1), [parse_port_spec("80")])
        assert 49153 <= binding.host_port <= 65535
        url = f"http://127.0.0.1:{binding.host_port}/"
        res = subprocess.run(["curl", "-s", "-m", "5", url], capture_output=True, text=True)
        assert res.stdout == "published hello\n", res
        host_url = f"http://{OUTSIDE_HOST}:{binding.host_port}/"  # a host address (of the test's veth)
        assert subprocess.run(["curl", "-s", "-m", "5", host_url], capture_output=True, text=True).stdout
        assert "published hello" in wget(peer, host_url).stdout, "another container through the host"
        assert "published hello" in wget(web, host_url).stdout, "hairpin to itself"
        assert "published hello" in wget(outside.path, host_url).stdout, "from beyond the host"

        service.unpublish(root, cid(1))
        assert subprocess.run(["curl", "-s", "-m", "2", url], capture_output=True).returncode != 0
        assert not [c for c in nat.rules(settings.load(root).nft_table) if c.startswith("port:")]
        assert service.port_bindings(root, cid(1)) == []
        [fixed] = service.publish(root, cid(1), [PortSpec(80, binding.host_port, "127.0.0.1")])
        assert subprocess.run(["curl", "-s", "-m", "5", url], capture_output=True, text=True).stdout
        with pytest.raises(ManagerError, match="already allocated"):
            service.publish(root, cid(2), [PortSpec(80, fixed.host_port)])
        with pytest.raises(ManagerError, match="not an address of this host"):
            service.publish(root, cid(2), [PortSpec(80, None, "203.0.113.9")])
        assert service.port_bindings(root, cid(2)) == [] and ping(peer, net.gateway)
    finally:
        server.stop()


UDP_ECHO = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 53))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(100)
    s.sendto(b"echo " + data, peer)
"""


def test_published_udp_port(root: str, tmp_path: object) -> None:
    service.create_network(root, "dgram")
    path = service.netns_create(root, cid(1))
    service.connect(root, "dgram", cid(1), path)
    echo = Daemon(path, [sys.executable, "-u", "-c", UDP_ECHO], os.path.join(str(tmp_path), "echo.log"))
    try:
        wait_for(lambda: "ready" in echo.output(), "the UDP echo server")
        [binding] = service.publish(root, cid(1), [parse_port_spec("127.0.0.1::53/udp")])
        assert (binding.proto, binding.host_ip) == ("udp", "127.0.0.1")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            sock.sendto(b"ping", ("127.0.0.1", binding.host_port))
            assert sock.recvfrom(100)[0] == b"echo ping"
    finally:
        echo.stop()


def test_teardown_container_removes_everything_and_is_idempotent(root: str) -> None:
    cfg = settings.load(root)
    service.create_network(root, "n1")
    service.create_network(root, "n2")
    path = service.netns_create(root, cid(1))
    e1 = service.connect(root, "n1", cid(1), path, name="x")
    e2 = service.connect(root, "n2", cid(1), path)
    service.publish(root, cid(1), [parse_port_spec("127.0.0.1::8080/udp")])
    service.teardown_container(root, cid(1))
    service.teardown_container(root, cid(1))
    assert not netns.is_mounted(path) and not os.path.exists(path)
    assert not links.exists(e1.host_if) and not links.exists(e2.host_if)
    assert not [c for c in nat.rules(cfg.nft_table) if c.startswith("port:")]
    assert service.endpoints(root, cid(1)) == [] and service.port_bindings(root, cid(1)) == []


def test_static_ip_and_ip_range(root: str) -> None:
    service.create_network(
        root, "fixed", subnet="10.213.7.0/24", gateway="10.213.7.254", ip_range="10.213.7.128/25"
    )
    a, b = service.netns_create(root, cid(1)), service.netns_create(root, cid(2))
    ea = service.connect(root, "fixed", cid(1), a, ip="10.213.7.8")
    assert ea.ip == "10.213.7.8" and addrs(a)["eth0"] == ["10.213.7.8/24"]
    assert service.connect(root, "fixed", cid(2), b).ip == "10.213.7.129"
    assert ping(b, "10.213.7.8") and ping(a, "10.213.7.254")
    c = service.netns_create(root, cid(3))
    with pytest.raises(ManagerError, match=re.escape("--ip 10.213.7.8: address already in use")):
        service.connect(root, "fixed", cid(3), c, ip="10.213.7.8")
    with pytest.raises(ManagerError, match=re.escape("--ip 10.9.9.9")):
        service.connect(root, "fixed", cid(3), c, ip="10.9.9.9")
    assert set(addrs(c)) == {"lo"}, "a refused connect leaves nothing behind"


CONCURRENT = """
import sys
from ocirt.manager.network import service
root, n = sys.argv[1], int(sys.argv[2])
cid = f"{n:02d}" * 32
path = service.netns_create(root, cid)
print(service.connect(root, "many", cid, path).ip)
"""


def test_ipam_under_concurrent_processes(root: str) -> None:
    net = service.create_network(root, "many")
    procs = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT, root, str(i)], stdout=subprocess.PIPE, text=True)
        for i in range(20)
    ]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0] * 20
    assert len(set(outs)) == 20, outs
    gw = service.netns_create(root, cid(99))
    service.connect(root, "many", cid(99), gw)
    for i, ip in enumerate(outs):
        assert addrs(service.netns_path(root, cid(i)))["eth0"][0].startswith(ip + "/")
    for ip in outs[:5]:
        assert ping(gw, ip)
    info = service.inspect_network(root, net.name)
    assert len(info["Containers"]) == 21


def test_macvlan_on_a_veth_parent(root: str) -> None:
    # this kernel has no dummy driver; a veth pair of the test's own serves as the parent
    parent = settings.load(root).prefix + "p"
    subprocess.run(["ip", "link", "add", parent, "type", "veth", "peer", "name", parent + "x"], check=True)
    try:
        for dev in (parent, parent + "x"):
            subprocess.run(["ip", "link", "set", dev, "up"], check=True)
        with pytest.raises(ManagerError, match="--subnet"):
            service.create_network(root, "mv", driver="macvlan", options={"parent": parent})
        net = service.create_network(
            root, "mv", driver="macvlan", subnet="10.214.0.0/24", options={"parent": parent}
        )
        with pytest.raises(ManagerError, match="already uses it"):
            service.create_network(
                root, "mv2", driver="macvlan", subnet="10.215.0.0/24", options={"parent": parent}
            )
        a, b = service.netns_create(root, cid(1)), service.netns_create(root, cid(2))
        service.connect(root, "mv", cid(1), a, ip="10.214.0.10")
        service.connect(root, "mv", cid(2), b, ip="10.214.0.11")
        kind = in_ns(a, "ip", "-d", "link", "show", "eth0").stdout
        assert "macvlan mode bridge" in kind
        assert ping(a, "10.214.0.11")
        assert not links.names_with_prefix(settings.load(root).prefix + "b"), "macvlan makes no bridge"
        assert service.inspect_network(root, "mv")["Driver"] == "macvlan"
        assert net.link == parent
        service.teardown_container(root, cid(1))
        service.teardown_container(root, cid(2))
        service.remove_network(root, "mv")
        assert links.exists(parent), "the parent is not ours to delete"
    finally:
        links.delete(parent)


def test_remove_and_prune(root: str) -> None:
    cfg = settings.load(root)
    used = service.create_network(root, "used")
    idle = service.create_network(root, "idle")
    service.connect(root, "used", cid(1), service.netns_create(root, cid(1)))
    assert dnsd.running(cfg, idle.id) is not None
    with pytest.raises(ManagerError, match="active endpoints"):
        service.remove_network(root, "used")
    assert service.prune_networks(root) == ["idle"]
    assert not links.exists(idle.link)
    assert dnsd.running(cfg, idle.id) is None
    assert not [c for c in nat.rules(cfg.nft_table) if c == nat.network_tag(idle.id)]
    service.teardown_container(root, cid(1))
    service.remove_network(root, used.id[:12])
    assert not links.exists(used.link) and service.list_networks(root) == []


def test_bad_input_leaves_nothing(root: str) -> None:
    for kwargs, message in [
        ({"subnet": "10.216.0.1/24"}, "host bits set"),
        ({"subnet": "nonsense"}, "invalid --subnet"),
        ({"subnet": "10.216.0.0/24", "gateway": "10.217.0.1"}, "invalid --gateway"),
        ({"subnet": "10.216.0.0/24", "ip_range": "10.216.1.0/25"}, "invalid --ip-range"),
        ({"driver": "overlay"}, "invalid --driver"),
        ({"options": {"mtu": "9000"}}, "invalid -o mtu"),
    ]:
        with pytest.raises(ManagerError, match=message):
            service.create_network(root, "bad", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ManagerError, match="reserved"):
        service.create_network(root, "host")
    with pytest.raises(ManagerError, match="invalid network name"):
        service.create_network(root, "no/slash")
    service.create_network(root, "taken", subnet="10.216.0.0/24")
    with pytest.raises(ManagerError, match="overlaps with network taken"):
        service.create_network(root, "other", subnet="10.216.0.128/25")
    with pytest.raises(ManagerError, match="not found"):
        service.connect(root, "ghost", cid(1), "/nonexistent")
    assert [n.name for n in service.list_networks(root)] == ["taken"]
    assert len(links.names_with_prefix(settings.load(root).prefix)) == 1


def test_parse_port_spec() -> None:
    assert parse_port_spec("8080:80") == PortSpec(80, 8080, "0.0.0.0", "tcp")
    assert parse_port_spec("127.0.0.1:8080:80/udp") == PortSpec(80, 8080, "127.0.0.1", "udp")
    assert parse_port_spec("127.0.0.1::80") == PortSpec(80, None, "127.0.0.1", "tcp")
    assert parse_port_spec("53/udp") == PortSpec(53, None, "0.0.0.0", "udp")
    for bad, message in [
        ("80/sctp", "invalid protocol"),
        ("99999", "container port"),
        ("x:80", "host port"),
        ("1.2.3:80:80", "host address"),
    ]:
        with pytest.raises(ManagerError, match=message):
            parse_port_spec(bad)


def test_cli_network_commands(root: str) -> None:
    def ctl(*args: str) -> subprocess.CompletedProcess[str]:
        exe = os.path.join(os.path.dirname(sys.executable), "ocirtctl")
        return subprocess.run(
            [exe, "--root", root, "network", *args], capture_output=True, text=True, timeout=60
        )

    db.close_all()
    made = ctl("create", "--subnet", "10.218.0.0/24", "--gateway", "10.218.0.1", "--internal", "cli1")
    assert made.returncode == 0, made.stderr
    net_id = made.stdout.strip()
    assert ctl("create", "cli2").returncode == 0
    listed = ctl("ls")
    assert "cli1" in listed.stdout and "cli2" in listed.stdout and "10.218.0.0/24" in listed.stdout
    [info] = json.loads(ctl("inspect", "cli1").stdout)
    assert (info["Id"], info["Internal"], info["IPAM"]["Config"][0]["Gateway"]) == (
        net_id,
        True,
        "10.218.0.1",
    )
    bad = ctl("create", "--subnet", "10.218.0.0/33", "cli3")
    assert (
        bad.returncode != 0
        and bad.stderr.startswith("ocirtctl: invalid --subnet")
        and "Traceback" not in bad.stderr
    )
    assert len(bad.stderr.strip().splitlines()) == 1
    missing = ctl("connect", "cli1", "nosuchcontainer")
    assert missing.returncode != 0 and "no such container: nosuchcontainer" in missing.stderr
    gone = ctl("rm", "cli1", "nosuch")
    assert gone.returncode != 0 and gone.stdout == "cli1\n" and "network nosuch not found" in gone.stderr
    assert ctl("prune").stdout == "Deleted Networks:\ncli2\n"
    assert ctl("ls", "--format", "{{.Name}}").stdout.split() == ["host", "none"]  # docker's pre-defined


def test_rtnetlink_answers_and_refusals() -> None:
    """The stdlib netlink client: lookups, dumps, and the kernel's errno on a refusal."""
    with links.rtnl() as ipr:
        lo = ipr.link_index("lo")
        assert lo is not None and ipr.link_index("no-such-link0") is None
        assert any(link.index == lo and link.name == "lo" for link in ipr.links())
        assert any(a.index == lo and a.address == "127.0.0.1" for a in ipr.addresses())
        assert any(r.dst == "127.0.0.0" and r.dst_len == 8 for r in ipr.routes())
        with pytest.raises(NetlinkError) as refused:
            ipr.link_delete(2**31 - 1)
        assert refused.value.errno == 19  # ENODEV

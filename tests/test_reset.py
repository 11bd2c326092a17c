"""What a root leaves on the host once it is done with: ``ocirtctl system reset`` removes
all of it; an exit command that runs after a teardown makes nothing again; published ports
stay one address-scoped DNAT rule each."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from typing import Any

from ocirt.foundation import procfs
from ocirt.manager.network import links, nat, service
from support.ctl import OCIRTCTL, manager
from support.nethost import leftovers


def _record(root: str, name: str) -> tuple[str, int]:
    conn = sqlite3.connect(os.path.join(root, "ocirt.db"), timeout=30)
    try:
        state, pid = conn.execute("SELECT state, pid FROM containers WHERE name=?", (name,)).fetchone()
    finally:
        conn.close()
    return str(state), int(pid)


def test_system_reset_removes_everything_the_root_made(tmp_path: Any) -> None:
    with manager(str(tmp_path)) as m:
        cfg = m.cfg
        m("network", "create", "resetnet")
        m("volume", "create", "resetvol")
        m("run", "-d", "--name", "web", "-p", "127.0.0.1::80", m.httpd)
        m(
            "run",
            "-d",
            "--name",
            "db",
            "--network",
            "resetnet",
            "-v",
            "resetvol:/data",
            m.httpd,
            "sleep",
            "600",
        )
        pids = [m.inspect(name)["State"]["Pid"] for name in ("web", "db")]
        assert links.exists(cfg.default_bridge) and nat.table_exists(cfg.nft_table)

        refused = subprocess.run(
            [OCIRTCTL, "--root", m.root, "system", "reset"],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        assert (
            refused.returncode == 125
            and len(refused.stderr.splitlines()) == 1
            and "--force" in refused.stderr
        )
        assert os.path.exists(m.root)

        m("system", "reset", "--force")
        assert not os.path.exists(m.root)
        assert not links.exists(cfg.default_bridge) and not nat.table_exists(cfg.nft_table)
        assert leftovers(cfg, m.root) == []
        assert [p for p in pids if procfs.start_ticks(p) is not None] == []


def test_exit_command_after_teardown_makes_no_network(tmp_path: Any) -> None:
    """A ``--restart always`` container whose root was torn down dies: its exit command must
    not bring back the default bridge, the nft table or a namespace to restart it into."""
    with manager(str(tmp_path)) as m:
        cfg = m.cfg
        m("run", "-d", "--name", "keeper", "--restart", "always", m.httpd, "sleep", "600")
        pid = m.inspect("keeper")["State"]["Pid"]
        service.teardown_root(m.root)
        assert not links.exists(cfg.default_bridge) and not nat.table_exists(cfg.nft_table)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _record(m.root, "keeper") == ("running", pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # a restart that got through would be making its network about now
        state, _ = _record(m.root, "keeper")
        made = [n for n in (cfg.default_bridge,) if links.exists(n)]
        made += [cfg.nft_table] if nat.table_exists(cfg.nft_table) else []
        made += [cfg.run_dir] if os.path.exists(cfg.run_dir) else []
        assert (state, made) == ("exited", []), "the exit command restarted the container into a new network"


def test_published_ports_are_one_address_scoped_dnat_each(tmp_path: Any) -> None:
    """docker's rule shape: each ``-p`` is one DNAT in the root's table, matching its host
    port and, when one was given, its host address; the rest is reached only for traffic
    to a local address (``fib daddr type local``)."""
    with manager(str(tmp_path)) as m:
        cid = m(
            "run", "-d", "-p", "127.0.0.1::80", "-p", "8080/tcp", "-p", "0.0.0.0::53/udp", m.httpd
        ).stdout.strip()
        ports = m.inspect(cid)["NetworkSettings"]["Ports"]
        ip = m.inspect(cid)["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
        out = subprocess.run(
            ["nft", "-j", "list", "table", "ip", m.cfg.nft_table], capture_output=True, text=True
        )
        items = [i["rule"] for i in json.loads(out.stdout)["nftables"] if "rule" in i]
        dnats = [r for r in items if any("dnat" in e for e in r["expr"])]
        assert len(dnats) == 3, dnats
        asked = {(80, "tcp"): "127.0.0.1", (8080, "tcp"): "0.0.0.0", (53, "udp"): "0.0.0.0"}
        host_port = {  # chosen freely; docker's Ports map: "80/tcp" -> [{HostIp, HostPort}]
            (int(key.partition("/")[0]), key.partition("/")[2]): int(binds[0]["HostPort"])
            for key, binds in ports.items()
            if binds
        }
        want = {(proto, port, addr, host_port[port, proto]) for (port, proto), addr in asked.items()}
        got = {_dnat_shape(r, ip) for r in dnats}
        assert got == want, (got, want)
        chains = {r["chain"] for r in dnats}
        jumps = [r for r in items if any(e.get("jump", {}).get("target") in chains for e in r["expr"])]
        assert jumps and all(
            "fib" in json.dumps(r["expr"]) and "local" in json.dumps(r["expr"]) for r in jumps
        )


def _dnat_shape(rule: dict[str, Any], container_ip: str) -> tuple[str, int, str, int]:
    """(protocol, container port, host address or 0.0.0.0, host port) of one DNAT rule."""
    daddr, proto, dport = "0.0.0.0", "", 0
    for e in rule["expr"]:
        match = e.get("match")
        if match and "payload" in match["left"]:
            field = match["left"]["payload"]
            if field.get("protocol") == "ip" and field.get("field") == "daddr":
                daddr = match["right"]
            elif field.get("field") == "dport":
                proto, dport = field["protocol"], int(match["right"])
        if "dnat" in e:
            assert e["dnat"]["addr"] == container_ip, e
            to_port = int(e["dnat"]["port"])
    return proto, to_port, daddr, dport

"""Starting and stopping a network's DNS daemon (``dns.py``), tracked by a pidfile per network.

A pid alone could be reused by an unrelated process after a reboot or a crash, so a pid only
counts while its command line still names the network's id.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from ocirt.manager.errors import ManagerError
from ocirt.manager.network.dns import log_path
from ocirt.manager.network.settings import NetSettings
from ocirt.manager.network.store import NetworkRecord

STOP_TIMEOUT = 5.0


def pidfile(cfg: NetSettings, network_id: str) -> str:
    return os.path.join(cfg.dns_dir, f"{network_id[:12]}.pid")


def running(cfg: NetSettings, network_id: str) -> int | None:
    try:
        with open(pidfile(cfg, network_id)) as f:
            pid = int(f.read().strip() or 0)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    return pid if network_id.encode() in cmdline else None


def ensure_running(root: str, cfg: NetSettings, net: NetworkRecord) -> None:
    if running(cfg, net.id) is not None:
        return
    os.makedirs(cfg.dns_dir, mode=0o711, exist_ok=True)
    argv = [sys.executable, "-m", "ocirt.manager.network.dns", os.path.abspath(root), net.id, net.gateway]
    argv += [pidfile(cfg, net.id), cfg.resolv_conf]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    if proc.returncode != 0:
        raise ManagerError(f"DNS server for network {net.name}: {proc.stderr.strip() or 'failed to start'}")


def stop(cfg: NetSettings, network_id: str) -> None:
    pid = running(cfg, network_id)
    if pid is not None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + STOP_TIMEOUT
        while running(cfg, network_id) is not None and time.monotonic() < deadline:
            time.sleep(0.02)
    for path in (pidfile(cfg, network_id), log_path(pidfile(cfg, network_id))):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

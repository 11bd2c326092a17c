"""``-p`` specifications and the choice of a free host port.

Parsing is pure; ``free_host_port`` probes the host with a real ``bind`` because a port the
host already uses would make a DNAT rule silently steal or lose its traffic.
"""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
import random
import socket
from collections.abc import Set
from dataclasses import dataclass

from ocirt.manager.errors import ManagerError

EPHEMERAL = (49153, 65535)  # docker's range for -p CONTAINER and -P
PROTOS = ("tcp", "udp")


@dataclass(frozen=True)
class PortSpec:
    """``host_port`` None: any free port; ``host_ip`` ``0.0.0.0``: every host address."""

    container_port: int
    host_port: int | None = None
    host_ip: str = "0.0.0.0"
    proto: str = "tcp"


def _port(text: str, what: str, spec: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ManagerError(f"invalid {what} port {text!r} in -p {spec!r}: expected 1-65535")
    return int(text)


def parse_port_spec(spec: str) -> PortSpec:
    """``[[IP:]HOST:]CONTAINER[/tcp|udp]``, as ``docker run -p`` takes it."""
    body, _, proto = spec.partition("/")
    proto = proto or "tcp"
    if proto not in PROTOS:
        raise ManagerError(f"invalid protocol {proto!r} in -p {spec!r}: expected tcp or udp")
    host_ip, host, container = _split(body, spec)
    if host_ip:
        try:
            host_ip = str(ipaddress.IPv4Address(host_ip.strip("[]")))
        except ValueError:
            raise ManagerError(f"invalid host address {host_ip!r} in -p {spec!r}") from None
    return PortSpec(
        container_port=_port(container, "container", spec),
        host_port=_port(host, "host", spec) if host else None,
        host_ip=host_ip or "0.0.0.0",
        proto=proto,
    )


def parse_port_specs(spec: str) -> list[PortSpec]:
    """``-p`` with docker's ranges too: ``8000-8001:80-81`` binds 8000 to 80 and 8001 to 81;
    ``80-81`` publishes both, each on a free host port."""
    body, slash, proto = spec.partition("/")
    parts = body.rsplit(":", 2)
    if "-" not in "".join(parts[-2:]):
        return [parse_port_spec(spec)]
    containers = _port_range(parts[-1], "container", spec)
    hosts = _port_range(parts[-2], "host", spec) if len(parts) > 1 and parts[-2] else []
    if hosts and len(hosts) != len(containers):
        raise ManagerError(f"-p {spec!r}: the host and container port ranges differ in length")
    first = (
        [*parts[:-2], str(hosts[0]) if hosts else "", str(containers[0])]
        if len(parts) > 1
        else [parts[0].split("-")[0]]
    )
    head = parse_port_spec(":".join(first) + slash + proto)
    return [
        dataclasses.replace(head, container_port=port, host_port=hosts[i] if hosts else None)
        for i, port in enumerate(containers)
    ]


def _port_range(text: str, what: str, spec: str) -> list[int]:
    low, dash, high = text.partition("-")
    first = _port(low, what, spec)
    last = _port(high, what, spec) if dash else first
    if last < first:
        raise ManagerError(f"invalid {what} port range {text!r} in -p {spec!r}")
    return list(range(first, last + 1))


def _split(body: str, spec: str) -> tuple[str, str, str]:
    parts = body.rsplit(":", 2)
    if len(parts) == 1:
        return "", "", parts[0]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    if not parts[0]:
        raise ManagerError(f"empty host address in -p {spec!r}")
    return parts[0], parts[1], parts[2]


def free_host_port(proto: str, taken: Set[int], host_ip: str = "0.0.0.0") -> int:
    """A port in docker's ephemeral range that no binding holds and nothing on the host uses."""
    low, high = EPHEMERAL
    start = random.randint(low, high)
    for offset in range(high - low + 1):
        port = low + (start - low + offset) % (high - low + 1)
        if port not in taken and host_port_free(proto, port, host_ip):
            return port
    raise ManagerError(f"no free host port left for {proto}")


def host_port_free(proto: str, port: int, host_ip: str = "0.0.0.0") -> bool:
    """A trial bind; an address that is not the host's own is an error, not a busy port."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind((host_ip, port))
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                raise ManagerError(f"-p {host_ip}:{port}: {host_ip} is not an address of this host") from None
            return False
    return True

"""``/etc/resolv.conf`` and ``/etc/hosts`` contents for a container: pure text in, text out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class HostResolvers:
    nameservers: list[str] = field(default_factory=list)
    search: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)


def parse(text: str) -> HostResolvers:
    out = HostResolvers()
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) < 2:
            continue
        if words[0] == "nameserver":
            out.nameservers.append(words[1])
        elif words[0] in ("search", "domain"):
            out.search = words[1:]
        elif words[0] == "options":
            out.options.extend(words[1:])
    return out


def read_host(path: str) -> HostResolvers:
    try:
        with open(path) as f:
            return parse(f.read())
    except FileNotFoundError:
        return HostResolvers()


def without_loopback(r: HostResolvers) -> HostResolvers:
    """A host resolver on 127.0.0.x or ::1 means nothing inside another netns (docker drops them)."""
    kept = [ns for ns in r.nameservers if not ns.startswith("127.") and ns != "::1"]
    return HostResolvers(kept, r.search, r.options)


def render(r: HostResolvers) -> str:
    lines = [f"nameserver {ns}" for ns in r.nameservers]
    if r.search:
        lines.append("search " + " ".join(r.search))
    if r.options:
        lines.append("options " + " ".join(r.options))
    return "\n".join(lines) + "\n"


def hosts(hostname: str, addrs: Sequence[str], extra: Sequence[tuple[str, str]]) -> str:
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
    ]
    lines += [f"{host_ip}\t{name}" for name, host_ip in extra]
    lines += [f"{addr}\t{hostname}" for addr in addrs]
    return "\n".join(lines) + "\n"

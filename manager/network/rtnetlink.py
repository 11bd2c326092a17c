"""rtnetlink over a plain ``socket``: the few link, address and route requests the network
code makes, on the host or inside a network namespace.

Not pyroute2: importing it costs ~0.4 s per ``ocirtctl`` process on the bench machine (it
loads every netlink family it knows), more than the rest of a container start; and its
namespaced sockets fork a helper process. A socket opened by a thread that ``setns``-ed
into the namespace stays bound to it, which is all a namespaced request needs.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import threading
from dataclasses import dataclass

from ocirt.runtime import syscalls

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
NLMSG_ERROR, NLMSG_DONE = 2, 3
F_REQUEST, F_ACK, F_DUMP, F_EXCL, F_CREATE = 0x1, 0x4, 0x300, 0x200, 0x400

IFLA_ADDRESS, IFLA_IFNAME, IFLA_LINK, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 5, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFLA_MACVLAN_MODE = 1
MACVLAN_MODES = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8}
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
RT_TABLE_MAIN, RTPROT_BOOT, RTN_UNICAST = 254, 3, 1
IFF_UP = 1
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED / NLA_F_NET_BYTEORDER

_HEADER = struct.Struct("=IHHII")  # nlmsghdr
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg
_IFADDR = struct.Struct("=BBBBi")  # ifaddrmsg
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg
_ATTR = struct.Struct("=HH")  # rtattr
_RECV = 1 << 16


class NetlinkError(OSError):
    """The kernel refused a request; ``errno`` says why."""


@dataclass(frozen=True)
class Link:
    index: int
    name: str


@dataclass(frozen=True)
class Address:
    index: int
    address: str
    prefixlen: int


@dataclass(frozen=True)
class Route:
    dst: str | None
    dst_len: int
    table: int


def attr(kind: int, value: bytes) -> bytes:
    """One rtattr, padded to 4 bytes; a nested one is an attr of concatenated attrs."""
    data = _ATTR.pack(_ATTR.size + len(value), kind) + value
    return data + b"\0" * (-len(data) % 4)


def text_attr(kind: int, value: str) -> bytes:
    return attr(kind, value.encode() + b"\0")


def u32_attr(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def ip_attr(kind: int, address: str) -> bytes:
    return attr(kind, ipaddress.IPv4Address(address).packed)


def mac_attr(kind: int, mac: str) -> bytes:
    return attr(kind, bytes.fromhex(mac.replace(":", "")))


def ifinfo(index: int = 0, up: bool = False) -> bytes:
    return _IFINFO.pack(socket.AF_UNSPEC, 0, index, IFF_UP if up else 0, IFF_UP if up else 0)


def parse_attrs(data: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    pos = 0
    while pos + _ATTR.size <= len(data):
        length, kind = _ATTR.unpack_from(data, pos)
        if length < _ATTR.size:
            break
        out[kind & NLA_TYPE_MASK] = data[pos + _ATTR.size : pos + length]
        pos += (length + 3) & ~3
    return out


def _text(value: bytes) -> str:
    return value.split(b"\0", 1)[0].decode()


def _open_socket() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
    sock.bind((0, 0))
    return sock


def _socket_in(netns_path: str) -> socket.socket:
    """A socket of the namespace at ``netns_path``, opened by a thread that joined it."""
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    made: list[socket.socket | OSError] = []

    def enter() -> None:
        try:
            syscalls.setns(fd, syscalls.CLONE_NEWNET)
            made.append(_open_socket())
        except OSError as exc:
            made.append(exc)

    try:
        thread = threading.Thread(target=enter)
        thread.start()
        thread.join()
    finally:
        os.close(fd)
    if isinstance(made[0], OSError):
        raise made[0]
    return made[0]


class Rtnl:
    """One netlink socket; each request waits for its whole answer."""

    def __init__(self, netns_path: str | None = None) -> None:
        self.sock = _open_socket() if netns_path is None else _socket_in(netns_path)
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def request(self, kind: int, body: bytes, flags: int = 0, dump: bool = False) -> list[bytes]:
        """The payloads of the answer's messages; a dump ends with DONE, the rest with an ack.

        (NLM_F_DUMP shares its bits with NLM_F_EXCL, hence ``dump`` rather than a flag test.)"""
        self.seq += 1
        flags |= F_DUMP if dump else F_ACK
        self.sock.send(_HEADER.pack(_HEADER.size + len(body), kind, flags | F_REQUEST, self.seq, 0) + body)
        replies: list[bytes] = []
        while True:
            data = self.sock.recv(_RECV)
            pos = 0
            while pos + _HEADER.size <= len(data):
                length, mtype, _, seq, _ = _HEADER.unpack_from(data, pos)
                payload = data[pos + _HEADER.size : pos + length]
                pos += (max(length, _HEADER.size) + 3) & ~3
                if seq != self.seq:
                    continue
                if mtype == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    if code:
                        raise NetlinkError(code, os.strerror(code))
                    return replies
                if mtype == NLMSG_DONE:
                    return replies
                replies.append(payload)

    # -- links
    def link_index(self, name: str) -> int | None:
        try:
            [reply] = self.request(RTM_GETLINK, ifinfo() + text_attr(IFLA_IFNAME, name))
        except NetlinkError as exc:
            if exc.errno in (19, 2):  # ENODEV, ENOENT
                return None
            raise
        index: int = _IFINFO.unpack_from(reply)[2]
        return index

    def links(self) -> list[Link]:
        out = []
        for reply in self.request(RTM_GETLINK, ifinfo(), dump=True):
            attrs = parse_attrs(reply[_IFINFO.size :])
            out.append(Link(_IFINFO.unpack_from(reply)[2], _text(attrs.get(IFLA_IFNAME, b""))))
        return out

    def link_add(self, name: str, kind: str, data: bytes = b"", extra: bytes = b"") -> None:
        """A new link of ``kind`` (``data``: its IFLA_INFO_DATA attrs; ``extra``: more IFLA attrs)."""
        info = text_attr(IFLA_INFO_KIND, kind) + (attr(IFLA_INFO_DATA, data) if data else b"")
        body = ifinfo() + text_attr(IFLA_IFNAME, name) + extra + attr(IFLA_LINKINFO, info)
        self.request(RTM_NEWLINK, body, F_CREATE | F_EXCL)

    def veth_add(self, name: str, peer: str, peer_mac: str, peer_netns_fd: int) -> None:
        """A veth pair whose ``peer`` end is born inside the namespace of ``peer_netns_fd``."""
        end = ifinfo() + text_attr(IFLA_IFNAME, peer) + mac_attr(IFLA_ADDRESS, peer_mac)
        self.link_add(name, "veth", attr(VETH_INFO_PEER, end + u32_attr(IFLA_NET_NS_FD, peer_netns_fd)))

    def macvlan_add(self, name: str, parent: int, mode: str, mac: str, netns_fd: int) -> None:
        """A macvlan of link ``parent`` born inside the namespace of ``netns_fd``."""
        extra = u32_attr(IFLA_LINK, parent) + mac_attr(IFLA_ADDRESS, mac) + u32_attr(IFLA_NET_NS_FD, netns_fd)
        self.link_add(name, "macvlan", u32_attr(IFLA_MACVLAN_MODE, MACVLAN_MODES[mode]), extra)

    def link_up(self, index: int, master: int | None = None) -> None:
        extra = u32_attr(IFLA_MASTER, master) if master is not None else b""
        self.request(RTM_SETLINK, ifinfo(index, up=True) + extra)

    def link_delete(self, index: int) -> None:
        self.request(RTM_DELLINK, ifinfo(index))

    # -- addresses and routes (IPv4)
    def address_add(self, index: int, address: str, prefixlen: int) -> None:
        net = ipaddress.IPv4Network(f"{address}/{prefixlen}", strict=False)
        body = _IFADDR.pack(socket.AF_INET, prefixlen, 0, 0, index)
        body += ip_attr(IFA_LOCAL, address) + ip_attr(IFA_ADDRESS, address)
        if prefixlen < 31:
            body += ip_attr(IFA_BROADCAST, str(net.broadcast_address))
        self.request(RTM_NEWADDR, body, F_CREATE | F_EXCL)

    def addresses(self) -> list[Address]:
        out = []
        for reply in self.request(RTM_GETADDR, _IFADDR.pack(socket.AF_INET, 0, 0, 0, 0), dump=True):
            _, prefixlen, _, _, index = _IFADDR.unpack_from(reply)
            attrs = parse_attrs(reply[_IFADDR.size :])
            raw = attrs.get(IFA_ADDRESS) or attrs.get(IFA_LOCAL)
            if raw is not None:
                out.append(Address(index, str(ipaddress.IPv4Address(raw)), prefixlen))
        return out

    def routes(self) -> list[Route]:
        """Every IPv4 route of every table."""
        out = []
        body = _RTMSG.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)
        for reply in self.request(RTM_GETROUTE, body, dump=True):
            dst_len, table = _RTMSG.unpack_from(reply)[1], _RTMSG.unpack_from(reply)[4]
            attrs = parse_attrs(reply[_RTMSG.size :])
            if RTA_TABLE in attrs:
                table = struct.unpack("=I", attrs[RTA_TABLE])[0]
            dst = str(ipaddress.IPv4Address(attrs[RTA_DST])) if RTA_DST in attrs else None
            out.append(Route(dst, dst_len, table))
        return out

    def default_route_add(self, gateway: str, oif: int) -> None:
        body = _RTMSG.pack(socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, 0, RTN_UNICAST, 0)
        body += ip_attr(RTA_GATEWAY, gateway) + u32_attr(RTA_OIF, oif)
        self.request(RTM_NEWROUTE, body, F_CREATE | F_EXCL)

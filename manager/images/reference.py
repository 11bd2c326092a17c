"""Image references as docker writes them: ``busybox`` is ``docker.io/library/busybox:latest``.

Pure parsing: a ``Reference`` knows its registry (domain), repository path, tag and digest,
and prints itself in full (``str``) or as docker shortens it (``familiar``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ocirt.manager.errors import ManagerError
from ocirt.manager.images import digest as digests

DEFAULT_DOMAIN = "docker.io"
DEFAULT_TAG = "latest"
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DOMAIN = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?\.?)+(?::[0-9]+)?$|^\[[0-9a-fA-F:]+\](?::[0-9]+)?$"
)


@dataclass(frozen=True)
class Reference:
    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """``domain/path``: what a tag or a digest is appended to."""
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        out = self.repository
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    @property
    def familiar(self) -> str:
        """Docker's short form: ``busybox:latest`` for Docker Hub's library images."""
        name = self.repository
        if self.domain == DEFAULT_DOMAIN:
            name = self.path.removeprefix("library/")
        if self.tag:
            name += f":{self.tag}"
        if self.digest:
            name += f"@{self.digest}"
        return name

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.domain, self.path, tag, None)


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        if not _DOMAIN.match(first):
            raise ManagerError(f"invalid reference {name!r}: bad registry {first!r}")
        domain = "docker.io" if first in ("index.docker.io", "registry-1.docker.io") else first
        return domain, rest
    return DEFAULT_DOMAIN, name


def parse(text: str, default_tag: bool = True) -> Reference:
    """Parse ``text``; a reference with neither tag nor digest gets ``latest`` unless
    ``default_tag`` is false (``ocirtctl push`` of a bare repository, ``rmi`` by name)."""
    if not text or len(text) > 4096 or text.strip() != text:
        raise ManagerError(f"invalid reference {text!r}")
    name, at, digest = text.partition("@")
    if at:
        digests.validate(digest, f"reference {text!r}")
    tag: str | None = None
    head, colon, maybe_tag = name.rpartition(":")
    if colon and "/" not in maybe_tag:
        if not _TAG.match(maybe_tag):
            raise ManagerError(f"invalid reference {text!r}: bad tag {maybe_tag!r}")
        name, tag = head, maybe_tag
    domain, path = _split_domain(name)
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"library/{path}"
    for component in path.split("/"):
        if not _COMPONENT.match(component):
            raise ManagerError(f"invalid reference {text!r}: repository must be lowercase, got {path!r}")
    if tag is None and not at and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest or None)


def looks_like_id(text: str) -> bool:
    """A hex prefix of an image id (``docker rmi 3f57d9401f8d``), or a full ``sha256:`` id."""
    hexpart = text.removeprefix("sha256:")
    return 4 <= len(hexpart) <= 64 and all(c in "0123456789abcdef" for c in hexpart)

"""Content digests: the ``algorithm:hex`` names every blob is stored and verified under."""

from __future__ import annotations

import hashlib
import re

from ocirt.manager.errors import ManagerError

_FORMS = {"sha256": re.compile(r"^[a-f0-9]{64}$"), "sha512": re.compile(r"^[a-f0-9]{128}$")}


def validate(digest: str, what: str = "digest") -> str:
    """``digest`` itself if it is well formed, so a hostile name can never become a path."""
    algo, sep, hexpart = digest.partition(":")
    form = _FORMS.get(algo)
    if not sep or form is None or not form.match(hexpart):
        raise ManagerError(f"{what}: invalid digest {digest!r}")
    return digest


def hasher(digest: str) -> hashlib._Hash:
    """A fresh hash object of the algorithm ``digest`` names."""
    return hashlib.new(validate(digest).partition(":")[0])


def of_bytes(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def hex_part(digest: str) -> str:
    return validate(digest).partition(":")[2]


def short_id(digest: str) -> str:
    """The 12-character id ``docker images`` shows."""
    return hex_part(digest)[:12]


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The chain ID of each layer prefix (OCI image spec): a snapshot's name depends on every
    layer under it, so equal prefixes share one unpacked snapshot."""
    chain: list[str] = []
    for diff_id in diff_ids:
        validate(diff_id, "diff_id")
        if not chain:
            chain.append(diff_id)
        else:
            chain.append(of_bytes(f"{chain[-1]} {diff_id}".encode()))
    return chain

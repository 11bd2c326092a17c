"""Container names: the user's (checked), or a generated ``adjective_noun`` as docker does."""

from __future__ import annotations

import os
import re

from ocirt.manager.errors import ManagerError

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_ADJECTIVES = (
    "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid", "merry",
    "nimble", "proud", "quiet", "rapid", "sharp", "tender", "upbeat", "vivid", "witty", "zealous",
)  # fmt: skip
_NOUNS = (
    "albatross", "badger", "crane", "dolphin", "eagle", "falcon", "gecko", "heron", "ibis",
    "jaguar", "koala", "lynx", "marmot", "newt", "otter", "panda", "quail", "raven", "stork", "tapir",
)  # fmt: skip


def check(name: str) -> str:
    if not NAME_RE.match(name) or len(name) > 128:
        raise ManagerError(f"--name: invalid container name {name!r} ([a-zA-Z0-9][a-zA-Z0-9_.-]*)")
    return name


def generate() -> str:
    """Random enough that two concurrent ``run``s rarely collide; the UNIQUE column decides."""
    pick = int.from_bytes(os.urandom(4))  # os.urandom, not secrets: that costs OpenSSL's import
    adjective = _ADJECTIVES[pick % len(_ADJECTIVES)]
    noun = _NOUNS[pick // len(_ADJECTIVES) % len(_NOUNS)]
    return f"{adjective}_{noun}_{os.urandom(3).hex()}"

"""``ocirt features``: what this runtime implements, as runc prints it (JSON, 4-space indent)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def features_document() -> dict[str, Any]:
    from ocirt.runtime.features import build, kernel_seccomp_flags

    doc = build()
    if doc["linux"]["seccomp"]["enabled"]:
        doc["linux"]["seccomp"]["supportedFlags"] = kernel_seccomp_flags()
    return doc

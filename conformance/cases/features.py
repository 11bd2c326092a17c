"""features.md and features-linux.md: the ``features`` document (runc's ``features`` command)
against the schema in specs/, and its consistency with what the suite checks elsewhere."""

from __future__ import annotations

import json
from typing import Any

from ocirt.conformance.harness import Context
from ocirt.conformance.model import MUST, SHOULD, Case, Fail, add, expect
from ocirt.specs.schema import validate_features

FT, FL = "features.md", "features-linux.md"


def features(ctx: Context) -> dict[str, Any]:
    res = ctx.cli("features")
    if not res.ok:
        raise Fail("features", res.brief(), "a features document")
    try:
        doc: dict[str, Any] = json.loads(res.out)
    except ValueError:
        raise Fail("features output", res.out[:80], "JSON") from None
    return doc


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("-")[0].split(".")[:3])


def _schema(ctx: Context) -> None:
    expect("schema violations", validate_features(features(ctx)), [])


def _range(ctx: Context) -> None:
    doc = features(ctx)
    low, high = _version(doc["ociVersionMin"]), _version(doc["ociVersionMax"])
    expect("ociVersionMin <= 1.0.2 <= ociVersionMax", low <= (1, 0, 2) <= high, True)


def _hooks(ctx: Context) -> None:
    hooks = set(features(ctx).get("hooks") or [])
    want = {"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"}
    expect("hooks not listed", sorted(want - hooks), [])


def _namespaces(ctx: Context) -> None:
    spaces = set((features(ctx).get("linux") or {}).get("namespaces") or [])
    want = {"cgroup", "ipc", "mount", "network", "pid", "user", "uts"}
    expect("namespaces not listed", sorted(want - spaces), [])


def _mount_options(ctx: Context) -> None:
    options = set(features(ctx).get("mountOptions") or [])
    want = {"ro", "rw", "nosuid", "nodev", "noexec", "bind", "rbind", "rshared", "rslave", "rprivate"}
    expect("mount options not listed", sorted(want - options), [])


def _capabilities(ctx: Context) -> None:
    caps = set((features(ctx).get("linux") or {}).get("capabilities") or [])
    expect("CAP_CHOWN, CAP_SYS_ADMIN listed", {"CAP_CHOWN", "CAP_SYS_ADMIN"} <= caps, True)


_schema.__doc__ = "The features document follows features-schema.json (ociVersionMin/Max REQUIRED)."
_range.__doc__ = "ociVersionMin and ociVersionMax bound the versions the runtime takes; 1.0.2 is in it."
_hooks.__doc__ = "hooks lists the hook kinds the runtime supports: all six are."
_namespaces.__doc__ = "linux.namespaces lists the namespace kinds the runtime supports."
_mount_options.__doc__ = "mountOptions lists the options the runtime recognizes, the common ones included."
_capabilities.__doc__ = "linux.capabilities lists the capabilities the runtime knows."
for _id, _spec, _heading, _level, _func in (
    ("features.schema", FT, "Features structure", MUST, _schema),
    ("features.version-range", FT, "Features structure", MUST, _range),
    ("features.hooks", FT, "Hooks", SHOULD, _hooks),
    ("features.mount-options", FT, "Mount Options", SHOULD, _mount_options),
    ("features.namespaces", FL, "Namespaces", SHOULD, _namespaces),
    ("features.capabilities", FL, "Capabilities", SHOULD, _capabilities),
):
    add(Case(_id, _spec, _heading, _level, _func))

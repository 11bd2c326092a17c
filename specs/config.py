"""Typed model of an OCI runtime bundle's ``config.json`` (runtime-spec 1.0 to 1.3), parsed once.

Plain slotted classes rather than dataclasses: ``import dataclasses`` costs about 30 ms on
the target machines, and this module sits on the runtime's hot path. Every check raises
``SpecError`` naming the field by its JSON path, so a bad bundle is one clear line.
Sections that later stages interpret (``linux.resources``, ``linux.seccomp``)
stay raw dictionaries here and are checked by the code that applies them.
"""

from __future__ import annotations

from ocirt.foundation.errors import SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SUPPORTED_MAJOR = "1"
SPEC_VERSION = "1.3.0"
NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")


# The kernel's ranges: ids are 32 bits (all ones means "unchanged" to setresuid), rlimits and
# anything else numeric at most 64; a dev_t holds a 12-bit major and a 20-bit minor.
ID_MAX = 2**32 - 2
U16_MAX, U32_MAX, U64_MAX = 2**16 - 1, 2**32 - 1, 2**64 - 1
I64_MIN = -(2**63)
MAJOR_MAX, MINOR_MAX = 2**12 - 1, 2**20 - 1


def check_document(raw: Any, path: str = "") -> None:
    """Every string and number in the document, the raw sections included, before any use.

    A NUL cannot cross a syscall, a lone surrogate (JSON's ``"\\ud800"``) cannot be encoded
    for one or for state.json, and no integer outside 64 bits fits a kernel field: each
    would otherwise fail deep inside create (or delete) instead of naming its field here.
    Iterative, so that nesting as deep as the JSON scanner allows cannot exhaust the stack.
    """
    stack: list[tuple[str, Any]] = [(path, raw)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            _check_text(value, path)
        elif isinstance(value, int) and not isinstance(value, bool):
            if not I64_MIN <= value <= U64_MAX:
                raise SpecError(path, f"{value} is out of range for any kernel value")
        elif isinstance(value, dict):
            for key, item in value.items():
                where = f"{path}.{key}" if path else key
                _check_text(key, where)
                stack.append((where, item))
        elif isinstance(value, list):
            stack += [(f"{path}[{i}]", item) for i, item in enumerate(value)]


def _check_text(value: str, path: str) -> None:
    if "\0" in value:
        raise SpecError(path, "must not contain a NUL character")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            raise SpecError(path, f"is not valid Unicode: lone surrogate {value[exc.start]!r}") from None


def _ranged(value: int | None, path: str, hi: int) -> int | None:
    if value is not None and not 0 <= value <= hi:
        raise SpecError(path, f"must be between 0 and {hi}, got {value}")
    return value


def object_field(parent: dict[str, Any], key: str, path: str) -> dict[str, Any] | None:
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SpecError(path, "must be an object")
    return value


def _str(parent: dict[str, Any], key: str, path: str, default: str | None = None) -> str | None:
    value = parent.get(key, default)
    if value is not None and not isinstance(value, str):
        raise SpecError(path, "must be a string")
    return value


def _req_str(parent: dict[str, Any], key: str, path: str) -> str:
    value = _str(parent, key, path)
    if value is None:
        raise SpecError(path, "is required")
    return value


def _int(
    parent: dict[str, Any], key: str, path: str, default: int | None = None, hi: int | None = None
) -> int | None:
    """``hi``: the kernel's largest value for the field, which then cannot be negative either."""
    value = parent.get(key, default)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise SpecError(path, "must be an integer")
    return value if hi is None else _ranged(value, path, hi)


def _req_int(parent: dict[str, Any], key: str, path: str, hi: int | None = None) -> int:
    value = _int(parent, key, path, hi=hi)
    if value is None:
        raise SpecError(path, "is required")
    return value


def _bool(parent: dict[str, Any], key: str, path: str) -> bool:
    value = parent.get(key, False)
    if not isinstance(value, bool):
        raise SpecError(path, "must be true or false")
    return value


def list_field(parent: dict[str, Any], key: str, path: str) -> list[Any]:
    value = parent.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpecError(path, "must be a list")
    return value


def _str_list(parent: dict[str, Any], key: str, path: str) -> list[str]:
    items = list_field(parent, key, path)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise SpecError(f"{path}[{i}]", "must be a string")
    return items


def _abs_list(parent: dict[str, Any], key: str, path: str) -> list[str]:
    paths = _str_list(parent, key, path)
    for i, item in enumerate(paths):
        if not item.startswith("/"):
            raise SpecError(f"{path}[{i}]", f"must be an absolute path, got {item!r}")
    return paths


def _env(parent: dict[str, Any], key: str, path: str) -> list[str]:
    """KEY=value entries, as the schema and runc (``missing '='``) require."""
    env = _str_list(parent, key, path)
    for i, entry in enumerate(env):
        if entry.find("=") < 1:
            raise SpecError(f"{path}[{i}]", f"{entry!r} is not a KEY=value entry")
    return env


def _str_map(parent: dict[str, Any], key: str, path: str) -> dict[str, str]:
    value = object_field(parent, key, path) or {}
    for k, v in value.items():
        if not isinstance(v, str):
            raise SpecError(f"{path}.{k}", "must be a string")
    return value


class Root:
    __slots__ = ("path", "readonly")

    def __init__(self, path: str, readonly: bool) -> None:
        self.path = path
        self.readonly = readonly


class IDMapping:
    __slots__ = ("container_id", "host_id", "size")

    def __init__(self, container_id: int, host_id: int, size: int) -> None:
        self.container_id = container_id
        self.host_id = host_id
        self.size = size


class Mount:
    __slots__ = ("destination", "gid_mappings", "options", "source", "type", "uid_mappings")

    def __init__(
        self,
        destination: str,
        type: str | None,
        source: str | None,
        options: list[str],
        uid_mappings: list[IDMapping],
        gid_mappings: list[IDMapping],
    ) -> None:
        self.destination = destination
        self.type = type
        self.source = source
        self.options = options
        self.uid_mappings = uid_mappings
        self.gid_mappings = gid_mappings

    def idmapped(self) -> bool:
        """runtime-spec 1.2: an ``idmap``/``ridmap`` option or mappings of its own."""
        return bool(self.uid_mappings or self.gid_mappings) or any(
            o in ("idmap", "ridmap") for o in self.options
        )


class User:
    __slots__ = ("additional_gids", "gid", "uid", "umask")

    def __init__(self, uid: int, gid: int, umask: int | None, additional_gids: list[int]) -> None:
        self.uid = uid
        self.gid = gid
        self.umask = umask
        self.additional_gids = additional_gids


class Rlimit:
    __slots__ = ("hard", "soft", "type")

    def __init__(self, type: str, hard: int, soft: int) -> None:
        self.type = type
        self.hard = hard
        self.soft = soft


class Process:
    __slots__ = (
        "apparmor_profile",
        "args",
        "capabilities",
        "console_size",
        "cwd",
        "env",
        "no_new_privileges",
        "oom_score_adj",
        "raw",
        "rlimits",
        "selinux_label",
        "terminal",
        "user",
    )

    def __init__(self, raw: dict[str, Any], path: str = "process") -> None:
        self.raw = raw
        self.terminal = _bool(raw, "terminal", f"{path}.terminal")
        size = object_field(raw, "consoleSize", f"{path}.consoleSize")
        self.console_size = (
            None
            if size is None
            else (
                _req_int(size, "height", f"{path}.consoleSize.height", U16_MAX),
                _req_int(size, "width", f"{path}.consoleSize.width", U16_MAX),
            )
        )
        self.args = _str_list(raw, "args", f"{path}.args")
        if not self.args:
            raise SpecError(f"{path}.args", "must be a non-empty list")
        self.env = _env(raw, "env", f"{path}.env")
        self.cwd = _req_str(raw, "cwd", f"{path}.cwd")
        if not self.cwd.startswith("/"):
            raise SpecError(f"{path}.cwd", f"must be an absolute path, got {self.cwd!r}")
        user = object_field(raw, "user", f"{path}.user")
        self.user = User(0, 0, None, []) if user is None else _parse_user(user, f"{path}.user")
        self.capabilities = _parse_capabilities(raw, f"{path}.capabilities")
        self.rlimits = _parse_rlimits(raw, f"{path}.rlimits")
        self.no_new_privileges = _bool(raw, "noNewPrivileges", f"{path}.noNewPrivileges")
        self.apparmor_profile = _str(raw, "apparmorProfile", f"{path}.apparmorProfile")
        self.selinux_label = _str(raw, "selinuxLabel", f"{path}.selinuxLabel")
        self.oom_score_adj = _int(raw, "oomScoreAdj", f"{path}.oomScoreAdj")
        if self.oom_score_adj is not None and not -1000 <= self.oom_score_adj <= 1000:
            raise SpecError(f"{path}.oomScoreAdj", "must be between -1000 and 1000")


CAPABILITY_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")


def _parse_capabilities(raw: dict[str, Any], path: str) -> dict[str, list[str]] | None:
    caps = object_field(raw, "capabilities", path)
    if caps is None:
        return None
    for key in caps:
        if key not in CAPABILITY_SETS:
            raise SpecError(f"{path}.{key}", f"unknown capability set (known: {', '.join(CAPABILITY_SETS)})")
    sets = {name: _str_list(caps, name, f"{path}.{name}") for name in CAPABILITY_SETS}
    for name, names in sets.items():
        for i, cap in enumerate(names):
            if not (cap.startswith("CAP_") and len(cap) > 4 and cap[4:].strip(_CAP_CHARS) == ""):
                raise SpecError(f"{path}.{name}[{i}]", f"{cap!r} is not a capability name such as CAP_KILL")
    return sets


_CAP_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ_"


def _parse_user(raw: dict[str, Any], path: str) -> User:
    gids = list_field(raw, "additionalGids", f"{path}.additionalGids")
    for i, gid in enumerate(gids):
        if not isinstance(gid, int) or isinstance(gid, bool) or gid < 0:
            raise SpecError(f"{path}.additionalGids[{i}]", "must be a non-negative integer")
        _ranged(gid, f"{path}.additionalGids[{i}]", ID_MAX)
    uid, gid = _int(raw, "uid", f"{path}.uid", 0), _int(raw, "gid", f"{path}.gid", 0)
    for field, value in (("uid", uid), ("gid", gid)):
        if field not in raw:
            raise SpecError(f"{path}.{field}", "is required")
        if value is None or value < 0:
            raise SpecError(f"{path}.{field}", "must be a non-negative integer")
        _ranged(value, f"{path}.{field}", ID_MAX)
    umask = _int(raw, "umask", f"{path}.umask")
    if umask is not None and not 0 <= umask <= 0o7777:
        raise SpecError(f"{path}.umask", "must be between 0 and 0o7777")
    return User(uid or 0, gid or 0, umask, gids)


def _parse_rlimits(raw: dict[str, Any], path: str) -> list[Rlimit]:
    limits, seen = [], set()
    for i, item in enumerate(list_field(raw, "rlimits", path)):
        where = f"{path}[{i}]"
        if not isinstance(item, dict):
            raise SpecError(where, "must be an object")
        kind = _req_str(item, "type", f"{where}.type")
        if not kind.startswith("RLIMIT_"):
            raise SpecError(f"{where}.type", f"unknown rlimit {kind!r}")
        if kind in seen:
            raise SpecError(f"{where}.type", f"{kind} is given twice")
        seen.add(kind)
        hard, soft = (
            _req_int(item, "hard", f"{where}.hard", U64_MAX),
            _req_int(item, "soft", f"{where}.soft", U64_MAX),
        )
        if soft > hard:
            raise SpecError(where, f"soft limit {soft} is above hard limit {hard}")
        limits.append(Rlimit(kind, hard, soft))
    return limits


def _parse_mappings(parent: dict[str, Any], key: str, path: str) -> list[IDMapping]:
    out = []
    for i, item in enumerate(list_field(parent, key, path)):
        where = f"{path}[{i}]"
        if not isinstance(item, dict):
            raise SpecError(where, "must be an object")
        ids = [_req_int(item, key, f"{where}.{key}", U32_MAX) for key in ("containerID", "hostID", "size")]
        out.append(IDMapping(*ids))
    return out


def _parse_mount(item: Any, where: str) -> Mount:
    if not isinstance(item, dict):
        raise SpecError(where, "must be an object")
    dest = _req_str(item, "destination", f"{where}.destination")
    if not dest.startswith("/"):
        raise SpecError(f"{where}.destination", f"must be an absolute path, got {dest!r}")
    return Mount(
        dest,
        _str(item, "type", f"{where}.type"),
        _str(item, "source", f"{where}.source"),
        _str_list(item, "options", f"{where}.options"),
        _parse_mappings(item, "uidMappings", f"{where}.uidMappings"),
        _parse_mappings(item, "gidMappings", f"{where}.gidMappings"),
    )


HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


class Hook:
    """One hook; ``field`` names it in its failures (``hooks.poststart[1]``)."""

    __slots__ = ("args", "env", "field", "path", "timeout")
    env: list[str] | None  # None: the runtime's own environment

    def __init__(self, raw: Any, field: str) -> None:
        if not isinstance(raw, dict):
            raise SpecError(field, "must be an object")
        path = raw.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise SpecError(f"{field}.path", "must be an absolute path")
        args, env = raw.get("args", [path]), raw.get("env")
        for key, value in (("args", args), ("env", [] if env is None else env)):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise SpecError(f"{field}.{key}", "must be a list of strings")
        if env is not None:
            _env(raw, "env", f"{field}.env")
        timeout = raw.get("timeout")
        if timeout is not None and (not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 1):
            raise SpecError(f"{field}.timeout", "must be a positive number of seconds")
        self.path, self.args, self.env, self.timeout, self.field = path, args or [path], env, timeout, field


def parse_hooks(raw: Any) -> dict[str, list[Hook]]:
    """Every hook checked up front, so a bad one fails ``create`` before anything exists; the
    state directory keeps the raw section, and ``start``/``delete`` parse their part again."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SpecError("hooks", "must be an object")
    hooks: dict[str, list[Hook]] = {}
    for kind, entries in raw.items():
        if kind not in HOOK_KINDS:
            raise SpecError(f"hooks.{kind}", f"unknown hook kind (known: {', '.join(HOOK_KINDS)})")
        if not isinstance(entries, list):
            raise SpecError(f"hooks.{kind}", "must be a list")
        hooks[kind] = [Hook(e, f"hooks.{kind}[{i}]") for i, e in enumerate(entries)]
    return hooks


class Namespace:
    __slots__ = ("path", "type")

    def __init__(self, type: str, path: str | None) -> None:
        self.type = type
        self.path = path


class Device:
    __slots__ = ("file_mode", "gid", "major", "minor", "path", "type", "uid")

    def __init__(
        self,
        path: str,
        type: str,
        major: int,
        minor: int,
        file_mode: int | None,
        uid: int | None,
        gid: int | None,
    ) -> None:
        self.path = path
        self.type = type
        self.major = major
        self.minor = minor
        self.file_mode = file_mode
        self.uid = uid
        self.gid = gid


def _device_path(path: str, where: str) -> str:
    """Anywhere in the container, "notably outside of /dev" (config-linux.md), cleaned as
    runc cleans it: ``/dev/fuse/`` is ``/dev/fuse``; ``..`` is left for the lookup inside
    the rootfs."""
    if not path.startswith("/"):
        raise SpecError(where, f"must be an absolute path, got {path!r}")
    clean = "/" + "/".join(p for p in path.split("/") if p and p != ".")
    if clean == "/":
        raise SpecError(where, f"must name a file, got {path!r}")
    return clean


def _parse_device(item: Any, where: str) -> Device:
    if not isinstance(item, dict):
        raise SpecError(where, "must be an object")
    path = _device_path(_req_str(item, "path", f"{where}.path"), f"{where}.path")
    kind = _req_str(item, "type", f"{where}.type")
    if kind not in ("c", "u", "b", "p"):
        raise SpecError(f"{where}.type", f"must be one of c, u, b, p, got {kind!r}")
    major = _int(item, "major", f"{where}.major", 0, MAJOR_MAX) or 0
    minor = _int(item, "minor", f"{where}.minor", 0, MINOR_MAX) or 0
    if kind != "p" and ("major" not in item or "minor" not in item):
        raise SpecError(where, "major and minor are required for c, u and b devices")
    return Device(
        path,
        kind,
        major,
        minor,
        _int(item, "fileMode", f"{where}.fileMode", hi=U32_MAX),
        _int(item, "uid", f"{where}.uid", hi=ID_MAX),
        _int(item, "gid", f"{where}.gid", hi=ID_MAX),
    )


class Linux:
    __slots__ = (
        "cgroups_path",
        "devices",
        "domainless",
        "gid_mappings",
        "masked_paths",
        "mount_label",
        "namespaces",
        "net_devices",
        "raw",
        "readonly_paths",
        "resources",
        "rootfs_propagation",
        "sysctl",
        "time_offsets",
        "uid_mappings",
    )

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.namespaces = _parse_namespaces(raw)
        self.uid_mappings = _parse_mappings(raw, "uidMappings", "linux.uidMappings")
        self.gid_mappings = _parse_mappings(raw, "gidMappings", "linux.gidMappings")
        self.devices = [
            _parse_device(d, f"linux.devices[{i}]")
            for i, d in enumerate(list_field(raw, "devices", "linux.devices"))
        ]
        self.cgroups_path = _str(raw, "cgroupsPath", "linux.cgroupsPath")
        self.resources = object_field(raw, "resources", "linux.resources")
        self.rootfs_propagation = _str(raw, "rootfsPropagation", "linux.rootfsPropagation")
        if self.rootfs_propagation not in (
            None,
            "",
            "private",
            "rprivate",
            "slave",
            "rslave",
            "shared",
            "rshared",
            "unbindable",
            "runbindable",
        ):
            raise SpecError("linux.rootfsPropagation", f"unknown value {self.rootfs_propagation!r}")
        self.masked_paths = _abs_list(raw, "maskedPaths", "linux.maskedPaths")
        self.readonly_paths = _abs_list(raw, "readonlyPaths", "linux.readonlyPaths")
        self.mount_label = _str(raw, "mountLabel", "linux.mountLabel")
        self.sysctl = _str_map(raw, "sysctl", "linux.sysctl")
        self.time_offsets = object_field(raw, "timeOffsets", "linux.timeOffsets")
        self.net_devices = _parse_net_devices(raw)
        self.domainless = False

    def namespace(self, kind: str) -> Namespace | None:
        for ns in self.namespaces:
            if ns.type == kind:
                return ns
        return None


def _parse_net_devices(raw: dict[str, Any]) -> dict[str, str]:
    """Host interface name -> its name in the container (the same one unless ``name`` says)."""
    found = {}
    devices = object_field(raw, "netDevices", "linux.netDevices") or {}
    for host_name in devices:
        where = f"linux.netDevices.{host_name}"
        _interface_name(host_name, where)
        entry = object_field(devices, host_name, where) or {}
        name = _str(entry, "name", f"{where}.name")
        found[host_name] = host_name if name is None else _interface_name(name, f"{where}.name")
    return found


def _interface_name(name: str, where: str) -> str:
    """The kernel's rule (dev_valid_name): 1 to 15 bytes, no '/', ':' or white space, not '.' or '..'."""
    if not 0 < len(name) <= 15 or name in (".", "..") or any(c in "/:" or c.isspace() for c in name):
        raise SpecError(where, f"{name!r} is not an interface name")
    return name


def _parse_namespaces(raw: dict[str, Any]) -> list[Namespace]:
    out: list[Namespace] = []
    seen = set()
    for i, item in enumerate(list_field(raw, "namespaces", "linux.namespaces")):
        where = f"linux.namespaces[{i}]"
        if not isinstance(item, dict):
            raise SpecError(where, "must be an object")
        kind = _req_str(item, "type", f"{where}.type")
        if kind not in NAMESPACE_TYPES:
            raise SpecError(f"{where}.type", f"unknown namespace type {kind!r}")
        if kind in seen:
            raise SpecError(f"{where}.type", f"namespace {kind!r} is listed twice")
        seen.add(kind)
        path = _str(item, "path", f"{where}.path")
        if path is not None and not path.startswith("/"):
            raise SpecError(f"{where}.path", f"must be an absolute path, got {path!r}")
        out.append(Namespace(kind, path or None))
    return out


class Config:
    """A whole ``config.json``; ``raw`` keeps the document for hooks and later stages."""

    __slots__ = (
        "annotations",
        "domainname",
        "hooks",
        "hostname",
        "linux",
        "mounts",
        "oci_version",
        "process",
        "raw",
        "root",
    )

    def __init__(self, raw: Any) -> None:
        if not isinstance(raw, dict):
            raise SpecError("(document)", "must be a JSON object")
        check_document(raw)
        self.raw = raw
        self.oci_version = _semver(_req_str(raw, "ociVersion", "ociVersion"))
        if self.oci_version.split(".", 1)[0] != SUPPORTED_MAJOR:
            raise SpecError(
                "ociVersion",
                f"unsupported version {self.oci_version!r} (ocirt runs 1.0.0 to {SPEC_VERSION})",
            )
        root = object_field(raw, "root", "root")
        if root is None:
            raise SpecError("root", "is required on Linux")
        self.root = Root(_req_str(root, "path", "root.path"), _bool(root, "readonly", "root.readonly"))
        if not self.root.path:
            raise SpecError("root.path", "must not be empty")
        self.mounts = [
            _parse_mount(m, f"mounts[{i}]") for i, m in enumerate(list_field(raw, "mounts", "mounts"))
        ]
        proc = object_field(raw, "process", "process")
        self.process = None if proc is None else Process(proc)
        self.hostname = _str(raw, "hostname", "hostname")
        self.domainname = _str(raw, "domainname", "domainname")
        self.hooks = parse_hooks(raw.get("hooks"))
        self.annotations = _str_map(raw, "annotations", "annotations")
        self.linux = Linux(object_field(raw, "linux", "linux") or {})
        self._check_namespace_needs()

    def _check_namespace_needs(self) -> None:
        """Cross-field rules the runtime-spec states in prose."""
        linux = self.linux
        if (self.hostname or self.domainname) and linux.namespace("uts") is None:
            field = "hostname" if self.hostname else "domainname"
            raise SpecError(field, "setting it needs a new uts namespace in linux.namespaces")
        user = linux.namespace("user")
        # with a joined namespace the mappings are its own; runc wants them repeated, so allow it
        if (linux.uid_mappings or linux.gid_mappings) and user is None:
            raise SpecError("linux.uidMappings", "mappings need a user namespace in linux.namespaces")
        if user is not None and user.path is None and not (linux.uid_mappings and linux.gid_mappings):
            raise SpecError("linux.uidMappings", "a new user namespace needs uidMappings and gidMappings")
        if linux.time_offsets and (linux.namespace("time") is None or linux.namespace("time").path):  # type: ignore[union-attr]
            raise SpecError("linux.timeOffsets", "needs a new time namespace in linux.namespaces")


_IDENT_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-"


def _semver(version: str) -> str:
    """SemVer 2.0.0 (the schema's ``ociVersion`` pattern), by hand: ``re`` costs the hot path."""
    core, plus, build = version.partition("+")
    core, dash, pre = core.partition("-")
    numbers = core.split(".")
    valid = len(numbers) == 3 and all(
        (n.isascii() and n.isdigit() and n.lstrip("0") == n) or n == "0" for n in numbers
    )
    for present, idents in ((dash, pre), (plus, build)):
        if present and not all(i and i.strip(_IDENT_CHARS) == "" for i in idents.split(".")):
            valid = False
    if not valid:
        raise SpecError("ociVersion", f"{version!r} is not a SemVer version such as {SPEC_VERSION}")
    return version


def load_config(text: str, source: str = "config.json") -> Config:
    """Parse config text; syntax errors name the file and the offset."""
    from ocirt.foundation import fastjson

    try:
        raw = fastjson.loads(text)
    except ValueError as exc:
        raise SpecError("(syntax)", f"not valid JSON: {exc}", source) from None
    return Config(raw)

"""What ``create``/``run`` flags ask for, parsed and checked, before anything exists.

A ``CreateOptions`` is stored with the container (as JSON) so that a restart, ``inspect`` or
``update`` sees what the user asked for, not what a later image or host default would give.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any

from ocirt.manager.containers import units
from ocirt.manager.errors import ManagerError
from ocirt.shim import lognet, logs, logwire

# the namespace flags' modes docker knows that ocirtctl honours ("" is the default: private)
NAMESPACE_MODES = {
    "pid": ("", "private", "host"),
    "ipc": ("", "private", "shareable", "host"),
    "uts": ("", "private", "host"),
    "cgroupns": ("", "private", "host"),
    "userns": ("", "host"),
}
RESTART_POLICIES = ("no", "always", "on-failure", "unless-stopped")
DEFAULT_LOG_DRIVER = "json-file"  # docker's (the shim's own default is conmon's k8s-file)
MAX_LOG_FILES = 1000  # every rotated file is looked for on each read
ULIMIT_NAMES = (
    "as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
    "nproc", "rss", "rtprio", "rttime", "sigpending", "stack",
)  # fmt: skip


@dataclass
class Resources:
    memory: int | None = None
    memory_swap: int | None = None
    memory_reservation: int | None = None
    cpu_shares: int | None = None
    cpus: float | None = None
    cpuset_cpus: str | None = None
    pids_limit: int | None = None
    blkio_weight: int | None = None
    cpu_period: int | None = None
    cpu_quota: int | None = None
    cpuset_mems: str | None = None
    memory_swappiness: int | None = None
    device_read_bps: list[list[Any]] = field(default_factory=list)
    device_write_bps: list[list[Any]] = field(default_factory=list)
    device_read_iops: list[list[Any]] = field(default_factory=list)
    device_write_iops: list[list[Any]] = field(default_factory=list)
    oom_kill_disable: bool = False
    oom_score_adj: int | None = None


@dataclass
class CreateOptions:
    image: str
    command: list[str] = field(default_factory=list)
    name: str | None = None
    entrypoint: list[str] | None = None
    env: list[str] = field(default_factory=list)
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    restart: str = "no"
    restart_max: int = 0
    stop_signal: str | None = None
    stop_timeout: int | None = None
    init: bool = False
    privileged: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    read_only: bool = False
    no_new_privileges: bool = False
    seccomp: str | None = None
    unmasked_paths: bool = False  # --security-opt systempaths=unconfined
    device_rules: list[dict[str, Any]] = field(default_factory=list)  # linux.resources.devices entries
    pull: str = "missing"  # --pull: always, missing or never
    cgroup_parent: str | None = None
    mac_address: str | None = None
    platform: str | None = None
    ulimits: list[list[Any]] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    devices: list[list[str]] = field(default_factory=list)
    tmpfs: list[list[str]] = field(default_factory=list)
    log_driver: str = DEFAULT_LOG_DRIVER
    log_opts: dict[str, str] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    network: str = "bridge"
    ports: list[str] = field(default_factory=list)
    publish_all: bool = False
    ip: str | None = None
    aliases: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    volumes_from: list[str] = field(default_factory=list)
    tty: bool = False
    interactive: bool = False
    auto_remove: bool = False
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    extra_hosts: list[list[str]] = field(default_factory=list)  # [name, address]
    group_add: list[str] = field(default_factory=list)
    domainname: str | None = None
    expose: list[str] = field(default_factory=list)  # "80/tcp"
    pid: str = ""  # "" or "private": the container's own; "host"
    ipc: str = ""
    uts: str = ""
    cgroupns: str = ""
    shm_size: int | None = None
    cidfile: str | None = None
    healthcheck: dict[str, Any] = field(default_factory=dict)  # docker's HealthConfig, from flags

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> CreateOptions:
        data = json.loads(text)
        data["resources"] = Resources(**data.get("resources", {}))
        return cls(**data)


def restart_policy(text: str) -> tuple[str, int]:
    """``on-failure:3`` → (``on-failure``, 3); 0 means no limit."""
    name, _, count = text.partition(":")
    if name not in RESTART_POLICIES:
        raise ManagerError(f"--restart: unknown policy {name!r} (one of {', '.join(RESTART_POLICIES)})")
    if count and name != "on-failure":
        raise ManagerError(f"--restart: only on-failure takes a retry count, got {text!r}")
    return name, units.integer(count, "--restart", 0) if count else 0


def env_entry(text: str) -> str | None:
    """``KEY=VALUE`` as is; a bare ``KEY`` takes the caller's value, or nothing if unset."""
    if "=" in text:
        if text.startswith("="):
            raise ManagerError(f"--env: empty variable name in {text!r}")
        return text
    value = os.environ.get(text)
    return None if value is None else f"{text}={value}"


def lines_of(path: str, flag: str) -> list[str]:
    """The lines of a docker ``--env-file``/``--label-file``: stripped, no blanks or comments."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise ManagerError(f"{flag}: {path}: {exc.strerror}") from None
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def env_file_entries(path: str) -> list[str]:
    return [e for e in (env_entry(line) for line in lines_of(path, "--env-file")) if e is not None]


def address(text: str, flag: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ManagerError(f"{flag}: {text!r} is not an IP address") from None


def extra_host(text: str) -> list[str]:
    """``--add-host NAME:IP`` (the IP may be IPv6, so the name ends at the first colon)."""
    name, sep, ip = text.partition(":")
    if not sep or not name:
        raise ManagerError(f"--add-host: expected HOST:IP, got {text!r}")
    return [name, address(ip.strip("[]"), "--add-host")]


def mac_address(text: str) -> str:
    """A unicast Ethernet address (``02:42:ac:11:00:02``), lower case as the kernel shows it."""
    octets = text.lower().split(":")
    if len(octets) != 6 or not all(len(o) == 2 and all(c in "0123456789abcdef" for c in o) for o in octets):
        raise ManagerError(f"--mac-address: {text!r} is not a MAC address")
    if int(octets[0], 16) & 1:
        raise ManagerError(f"--mac-address: {text!r} is a multicast address")
    return ":".join(octets)


def group(text: str) -> str:
    if not text or ":" in text or any(c.isspace() for c in text):
        raise ManagerError(f"--group-add: {text!r} is not a group name or id")
    return text


def exposed(text: str) -> list[str]:
    """``--expose 8000-8002/udp`` → ``8000/udp``, ``8001/udp``, ``8002/udp``."""
    ports, _, proto = text.partition("/")
    proto = proto or "tcp"
    first, _, last = ports.partition("-")
    low = units.integer(first, "--expose", 1, 65535)
    high = units.integer(last, "--expose", low, 65535) if last else low
    if proto not in ("tcp", "udp", "sctp"):
        raise ManagerError(f"--expose: unknown protocol {proto!r}")
    return [f"{port}/{proto}" for port in range(low, high + 1)]


def ulimit(text: str) -> list[Any]:
    """``nofile=1024:4096`` → [``RLIMIT_NOFILE``, soft, hard]; -1 is unlimited."""
    name, value = units.key_value(text, "--ulimit")
    if name not in ULIMIT_NAMES:
        raise ManagerError(f"--ulimit: unknown limit {name!r}")
    soft_text, _, hard_text = value.partition(":")
    soft = _limit(soft_text)
    hard = _limit(hard_text) if hard_text else soft
    if soft > hard:
        raise ManagerError(f"--ulimit: {name}: soft limit {soft} above hard limit {hard}")
    return [f"RLIMIT_{name.upper()}", soft, hard]


def _limit(text: str) -> int:
    value = units.integer(text, "--ulimit", -1, units.UINT64_MAX)
    return (1 << 64) - 1 if value == -1 else value


def device(text: str) -> list[str]:
    """``/dev/x[:/dev/y][:rwm]`` → [host, container, permissions]."""
    parts = text.split(":")
    host = parts[0]
    target = parts[1] if len(parts) > 1 and parts[1].startswith("/") else host
    perms = parts[-1] if len(parts) > 1 and not parts[-1].startswith("/") else "rwm"
    if not host.startswith("/") or len(parts) > 3 or not perms or set(perms) - set("rwm"):
        raise ManagerError(f"--device: invalid device {text!r} (HOST[:CONTAINER][:rwm])")
    return [host, target, perms]


def device_rule(text: str) -> dict[str, Any]:
    """``--device-cgroup-rule 'c 1:3 rwm'`` as an allowing ``linux.resources.devices`` entry
    (``*`` for any major or minor, type ``a`` for every device)."""
    parts = text.split()
    numbers = parts[1].split(":") if len(parts) == 3 else []
    if len(numbers) != 2 or parts[0] not in ("a", "b", "c") or not parts[2] or set(parts[2]) - set("rwm"):
        raise ManagerError(f"--device-cgroup-rule: invalid rule {text!r} (TYPE MAJOR:MINOR ACCESS)")
    major, minor = (
        None if n == "*" else units.integer(n, "--device-cgroup-rule", 0, 0xFFFFFFFF) for n in numbers
    )
    rule: dict[str, Any] = {"allow": True, "type": parts[0], "access": parts[2]}
    if major is not None:
        rule["major"] = major
    if minor is not None:
        rule["minor"] = minor
    return rule


def tmpfs(text: str) -> list[str]:
    path, _, opts = text.partition(":")
    if not path.startswith("/"):
        raise ManagerError(f"--tmpfs: {path!r} is not an absolute path")
    return [path, ",".join(units.tmpfs_option(o, "--tmpfs") for o in opts.split(",") if o)]


def device_rate(text: str, flag: str, parse_size: bool) -> list[Any]:
    path, sep, rate = text.rpartition(":")
    if not sep or not path.startswith("/"):
        raise ManagerError(f"{flag}: expected DEVICE:RATE, got {text!r}")
    value = units.size(rate, flag) if parse_size else units.integer(rate, flag, 0, units.UINT64_MAX)
    return [path, value]


def security_opt(text: str, opts: CreateOptions) -> None:
    if text in ("no-new-privileges", "no-new-privileges:true", "no-new-privileges=true"):
        opts.no_new_privileges = True
        return
    key, sep, value = text.partition("=")
    if not sep and ":" in text:  # docker's older spelling: label:disable
        key, sep, value = text.partition(":")
    if key in ("label", "apparmor", "systempaths"):
        _lsm_opt(key, value, opts)
        return
    if key != "seccomp" or not sep:
        raise ManagerError(f"--security-opt: unsupported option {text!r}")
    if value == "unconfined":
        opts.seccomp = "unconfined"
        return
    try:
        with open(value) as f:
            profile = f.read()
        json.loads(profile)
    except OSError as exc:
        raise ManagerError(f"--security-opt: seccomp profile {value}: {exc.strerror}") from None
    except ValueError as exc:
        raise ManagerError(f"--security-opt: seccomp profile {value}: invalid JSON: {exc}") from None
    opts.seccomp = profile


def _lsm_opt(key: str, value: str, opts: CreateOptions) -> None:
    """What a host without SELinux or AppArmor can mean: no confinement (accepted, as it is
    what the container gets), and ``systempaths=unconfined`` (no masked or read-only /proc
    and /sys paths). Asking for a label or a profile is refused: nothing here could apply it."""
    if key == "systempaths":
        if value != "unconfined":
            raise ManagerError(f"--security-opt: systempaths takes only unconfined, got {value!r}")
        opts.unmasked_paths = True
    elif (key, value) not in (("label", "disable"), ("apparmor", "unconfined")):
        lsm = "SELinux" if key == "label" else "AppArmor"
        raise ManagerError(f"--security-opt: {key}={value}: not supported: {lsm} is not enabled on this host")


def log_opt(text: str, driver: str) -> tuple[str, str]:
    """One ``--log-opt KEY=VALUE``, checked against ``driver``'s options."""
    key, value = units.key_value(text, "--log-opt")
    known = logs.DRIVERS[driver].options
    if key not in known:
        raise ManagerError(f"--log-opt: unsupported option {key!r} ({', '.join(known)})")
    if key == "max-size":
        units.size(value, "--log-opt max-size")
    elif key == "max-file":
        units.integer(value, "--log-opt max-file", 1, MAX_LOG_FILES)
    else:
        check = lognet.check_syslog_option if driver == "syslog" else logwire.check_option
        try:
            check(key, value)
        except lognet.LogOptionError as exc:
            raise ManagerError(f"--log-opt {exc}") from None
    return key, value

"""A container's ``config.json``: the image's process, then the user's flags on top (pure).

The caller resolves everything that touches the host first (device numbers, the user in the
image's passwd, mount sources, the network namespace path) and passes plain values in, so
this module is a function from data to data and can be read top to bottom.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from ocirt.manager.containers.options import CreateOptions, Resources
from ocirt.manager.images.bundle import DOCKER_CAPS
from ocirt.runtime.capabilities import NAMES

TMPFS_DEFAULTS = ["nosuid", "nodev", "noexec"]
CPU_PERIOD = 100_000
INIT_PATH = "/run/ocirt-init"
SPEC_VERSION = "1.1.0"  # crun 1.8 accepts up to 1.1.x; nothing here needs later fields


@dataclass
class Plumbing:
    """What the manager prepared on the host for this container."""

    mounts: list[dict[str, Any]] = field(default_factory=list)  # binds, volumes, tmpfs, /etc files
    netns: str | None = None  # a path to join; None: a new namespace; "host": none at all
    devices: list[dict[str, Any]] = field(default_factory=list)  # linux.devices entries
    block_devices: dict[str, tuple[int, int]] = field(default_factory=dict)  # path → (major, minor)
    init: str | None = None  # host path of the init binary for --init
    cgroups_path: str = ""
    group_ids: list[int] = field(default_factory=list)  # --group-add, resolved in the image


def build(base: dict[str, Any], opts: CreateOptions, p: Plumbing) -> dict[str, Any]:
    """``base`` is the image's bundle config (``images.bundle.runtime_config``); the flags
    that config does not know about go on top."""
    config = dict(base)
    config["ociVersion"] = SPEC_VERSION
    config["process"] = _process(config["process"], opts, p)
    config["mounts"] = _mounts(config["mounts"], opts, p)
    config["linux"] = _linux(config["linux"], opts, p)
    if opts.domainname:
        config["domainname"] = opts.domainname
    if opts.uts == "host":  # no UTS namespace: no name to set in it (the runtime refuses one)
        config.pop("hostname", None)
    return config


def _process(base: dict[str, Any], opts: CreateOptions, p: Plumbing) -> dict[str, Any]:
    proc = dict(base)
    caps = capabilities(opts)
    proc["capabilities"] = {k: list(caps) for k in ("bounding", "effective", "permitted")}
    proc["rlimits"] = [{"type": t, "soft": s, "hard": h} for t, s, h in opts.ulimits]
    proc["noNewPrivileges"] = opts.no_new_privileges
    if p.group_ids:
        user = dict(proc["user"])
        known = user.get("additionalGids", [])
        user["additionalGids"] = known + [g for g in p.group_ids if g not in known]
        proc["user"] = user
    if p.init:
        proc["args"] = [INIT_PATH, "--", *proc["args"]]
    if opts.resources.oom_score_adj is not None:
        proc["oomScoreAdj"] = opts.resources.oom_score_adj
    return proc


def capabilities(opts: CreateOptions) -> list[str]:
    if opts.privileged:
        return _all_caps()
    caps = [] if "ALL" in opts.cap_drop else [c for c in DOCKER_CAPS if c not in opts.cap_drop]
    added = _all_caps() if "ALL" in opts.cap_add else opts.cap_add
    return caps + [c for c in added if c not in caps and c not in opts.cap_drop]


def _all_caps() -> list[str]:
    from ocirt.runtime.capabilities import last_cap

    return list(NAMES[: last_cap() + 1])


def _mounts(defaults: list[dict[str, Any]], opts: CreateOptions, p: Plumbing) -> list[dict[str, Any]]:
    taken = {m["destination"] for m in p.mounts}
    out = [m for m in defaults if m["destination"] not in taken]
    if opts.privileged:
        for m in out:
            if m["destination"] in ("/sys", "/sys/fs/cgroup"):
                m["options"] = [o for o in m.get("options", []) if o != "ro"] + ["rw"]
    if opts.shm_size is not None or opts.ipc == "host":
        out = [_shm(m, opts) for m in out if m["destination"] != "/dev/shm" or opts.ipc != "host"]
    out += p.mounts
    if opts.ipc == "host":  # the host's IPC namespace and its /dev/shm, as docker
        out.append(
            {"destination": "/dev/shm", "type": "bind", "source": "/dev/shm", "options": ["rbind", "rw"]}
        )
    if p.init:
        out.append({"destination": INIT_PATH, "type": "bind", "source": p.init, "options": ["bind", "ro"]})
    return out


def _shm(mount: dict[str, Any], opts: CreateOptions) -> dict[str, Any]:
    if mount["destination"] != "/dev/shm" or opts.shm_size is None:
        return mount
    kept = [o for o in mount.get("options", []) if not o.startswith("size=")]
    return {**mount, "options": [*kept, f"size={opts.shm_size}"]}


def _linux(base: dict[str, Any], opts: CreateOptions, p: Plumbing) -> dict[str, Any]:
    linux = dict(base)
    linux["cgroupsPath"] = p.cgroups_path
    linux["resources"] = resources(opts.resources, p.block_devices)
    linux["resources"]["devices"] = _device_rules(opts, p.devices)
    host = {kind for kind in ("pid", "ipc", "uts", "cgroupns") if getattr(opts, kind) == "host"}
    linux["namespaces"] = [
        ns
        for ns in _namespaces(base["namespaces"], p.netns)
        if ns["type"].replace("cgroup", "cgroupns") not in host
    ]
    if p.devices:
        linux["devices"] = p.devices
    if opts.sysctls:
        linux["sysctl"] = dict(opts.sysctls)
    if opts.privileged or opts.unmasked_paths:
        linux["maskedPaths"], linux["readonlyPaths"] = [], []
    if opts.seccomp and opts.seccomp != "unconfined" and not opts.privileged:
        linux["seccomp"] = seccomp_from_docker(json.loads(opts.seccomp))
    return linux


def _namespaces(base: list[dict[str, Any]], netns: str | None) -> list[dict[str, Any]]:
    out = [ns for ns in base if ns["type"] != "network"]
    if netns is None:
        out.append({"type": "network"})
    elif netns != "host":
        out.append({"type": "network", "path": netns})
    return out


def _device_rules(opts: CreateOptions, devices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if opts.privileged:
        return [{"allow": True, "access": "rwm"}]
    rules: list[dict[str, Any]] = [{"allow": False, "access": "rwm"}]
    for dev, (_, _, perms) in zip(devices, opts.devices, strict=True):
        rules.append(
            {
                "allow": True,
                "type": dev["type"],
                "major": dev["major"],
                "minor": dev["minor"],
                "access": perms,
            }
        )
    return rules + [dict(rule) for rule in opts.device_rules]


def resources(res: Resources, block_devices: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """``linux.resources`` from the resource flags; also what ``ocirt update`` reads."""
    out: dict[str, Any] = {}
    memory = _memory(res)
    if memory:
        out["memory"] = memory
    cpu = _cpu(res)
    if cpu:
        out["cpu"] = cpu
    if res.pids_limit is not None:
        out["pids"] = {"limit": res.pids_limit if res.pids_limit > 0 else -1}
    block = _block_io(res, block_devices)
    if block:
        out["blockIO"] = block
    return out


def _memory(res: Resources) -> dict[str, Any]:
    memory: dict[str, Any] = {}
    if res.memory is not None:
        memory["limit"] = res.memory
    if res.memory_swap is not None:
        memory["swap"] = res.memory_swap
    elif res.memory is not None:
        memory["swap"] = res.memory * 2  # docker's default: as much swap as memory
    if res.memory_reservation is not None:
        memory["reservation"] = res.memory_reservation
    if res.oom_kill_disable:
        memory["disableOOMKiller"] = True
    if res.memory_swappiness is not None and res.memory_swappiness >= 0:  # -1: the host's
        memory["swappiness"] = res.memory_swappiness
    return memory


def _cpu(res: Resources) -> dict[str, Any]:
    cpu: dict[str, Any] = {}
    if res.cpu_shares is not None:
        cpu["shares"] = res.cpu_shares
    if res.cpus is not None:
        cpu["period"] = CPU_PERIOD
        cpu["quota"] = int(res.cpus * CPU_PERIOD)
    if res.cpu_period is not None:
        cpu["period"] = res.cpu_period
    if res.cpu_quota is not None:
        cpu["quota"] = res.cpu_quota
    if res.cpuset_cpus is not None:
        cpu["cpus"] = res.cpuset_cpus
    if res.cpuset_mems is not None:
        cpu["mems"] = res.cpuset_mems
    return cpu


def _block_io(res: Resources, devices: dict[str, tuple[int, int]]) -> dict[str, Any]:
    block: dict[str, Any] = {}
    if res.blkio_weight is not None:
        block["weight"] = res.blkio_weight
    pairs = (
        ("throttleReadBpsDevice", res.device_read_bps),
        ("throttleWriteBpsDevice", res.device_write_bps),
        ("throttleReadIOPSDevice", res.device_read_iops),
        ("throttleWriteIOPSDevice", res.device_write_iops),
    )
    for key, entries in pairs:
        if entries:
            block[key] = [
                {"major": devices[path][0], "minor": devices[path][1], "rate": rate} for path, rate in entries
            ]
    return block


def seccomp_from_docker(profile: dict[str, Any]) -> dict[str, Any]:
    """Docker's profile format (``archMap``, ``names``, ``includes``…) → ``linux.seccomp``."""
    arches = list(profile.get("architectures", []))
    for entry in profile.get("archMap") or []:
        arches += [entry["architecture"], *entry.get("subArchitectures", [])]
    out: dict[str, Any] = {"defaultAction": profile.get("defaultAction", "SCMP_ACT_ALLOW")}
    if "defaultErrnoRet" in profile:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    if arches:
        out["architectures"] = arches
    rules = []
    for rule in profile.get("syscalls", []):
        names = rule.get("names") or ([rule["name"]] if "name" in rule else [])
        kept = {k: rule[k] for k in ("action", "args", "errnoRet") if k in rule}
        rules.append({"names": names, **kept})
    if rules:
        out["syscalls"] = rules
    return out


def device_entry(host: str, target: str) -> dict[str, Any]:
    """``linux.devices`` entry for a host device node (reads the host: called by the planner)."""
    import stat

    st = os.stat(host)
    kind = "c" if stat.S_ISCHR(st.st_mode) else "b" if stat.S_ISBLK(st.st_mode) else ""
    return {
        "path": target,
        "type": kind,
        "major": os.major(st.st_rdev),
        "minor": os.minor(st.st_rdev),
        "fileMode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
    }

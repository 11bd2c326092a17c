"""The ``create``/``run`` command line: argparse flags, and the ``CreateOptions`` they make."""

from __future__ import annotations

import argparse
from typing import Any

from ocirt.manager.containers import options, units
from ocirt.manager.containers.options import CreateOptions
from ocirt.manager.errors import ManagerError
from ocirt.shim.logs import DRIVERS as LOG_DRIVERS

_LISTS = (
    (("-e", "--env"), "env", "set an environment variable (KEY=VALUE or KEY)"),
    (("--env-file",), "env_file", "read environment variables from a file"),
    (("-l", "--label"), "label", "set a label (KEY=VALUE)"),
    (("--cap-add",), "cap_add", "add a capability"),
    (("--cap-drop",), "cap_drop", "drop a capability"),
    (("--security-opt",), "security_opt", "no-new-privileges, seccomp=PROFILE|unconfined"),
    (("--ulimit",), "ulimit", "NAME=SOFT[:HARD]"),
    (("--sysctl",), "sysctl", "KEY=VALUE"),
    (("--device",), "device", "HOST[:CONTAINER][:PERMS]"),
    (("--tmpfs",), "tmpfs", "PATH[:OPTIONS]"),
    (
        ("--log-opt",),
        "log_opt",
        "KEY=VALUE: max-size, max-file, tag, labels, env, syslog-*, gelf-*, fluentd-*",
    ),
    (("--device-read-bps",), "device_read_bps", "DEVICE:RATE"),
    (("--device-write-bps",), "device_write_bps", "DEVICE:RATE"),
    (("--device-read-iops",), "device_read_iops", "DEVICE:N"),
    (("--device-write-iops",), "device_write_iops", "DEVICE:N"),
    (("-p", "--publish"), "publish", "[IP:][HOST:]CONTAINER[/PROTO]"),
    (("--network-alias",), "network_alias", "another name on the network"),
    (("-v", "--volume"), "volume", "SRC:DST[:ro] or NAME:DST or DST"),
    (("--mount",), "mount", "type=bind|volume|tmpfs,source=,target=[,readonly]"),
    (("--volumes-from",), "volumes_from", "CONTAINER[:ro|rw]"),
    (("--dns",), "dns", "a DNS server for /etc/resolv.conf"),
    (("--dns-search",), "dns_search", "a DNS search domain"),
    (("--dns-option",), "dns_option", "a resolv.conf option (ndots:2, ...)"),
    (("--add-host",), "add_host", "HOST:IP line for /etc/hosts"),
    (("--group-add",), "group_add", "another group of the process (name or gid)"),
    (("--label-file",), "label_file", "read labels (KEY=VALUE lines) from a file"),
    (("--expose",), "expose", "PORT[-PORT][/PROTO] published by -P"),
    (("--device-cgroup-rule",), "device_cgroup_rule", "TYPE MAJOR:MINOR ACCESS, e.g. 'c 1:3 rwm'"),
)
_VALUES = (
    (("--name",), "name", "container name"),
    (("-w", "--workdir"), "workdir", "working directory"),
    (("-u", "--user"), "user", "USER[:GROUP]"),
    (("--entrypoint",), "entrypoint", "override the image's entrypoint"),
    (("-h", "--hostname"), "hostname", "container host name"),
    (("--restart",), "restart", "no, always, on-failure[:N], unless-stopped"),
    (("--stop-signal",), "stop_signal", "signal for stop"),
    (("--stop-timeout",), "stop_timeout", "seconds before stop kills"),
    (("--log-driver",), "log_driver", ", ".join(LOG_DRIVERS)),
    (("--network", "--net"), "network", "bridge, none, host, container:NAME, or a network"),
    (("--ip",), "ip", "static address on the network"),
    (("--mac-address",), "mac_address", "the Ethernet address of the container's interface"),
    (("--domainname",), "domainname", "NIS domain name"),
    (("--pid",), "pid", "PID namespace: host or private"),
    (("--ipc",), "ipc", "IPC namespace: host, private or shareable"),
    (("--uts",), "uts", "UTS namespace: host or private"),
    (("--userns",), "userns", "user namespace: host (the only mode)"),
    (("--cgroupns",), "cgroupns", "cgroup namespace: host or private"),
    (("--shm-size",), "shm_size", "size of /dev/shm (default 64m)"),
    (("--cidfile",), "cidfile", "write the container id to this file"),
    (("--pull",), "pull", "always, missing (default) or never"),
    (("--cgroup-parent",), "cgroup_parent", "cgroup the container's cgroup is made under"),
    (("--platform",), "platform", "os/arch[/variant] of the image to pull"),
    (("--health-cmd",), "health_cmd", "command run in the container to check its health"),
    (("--health-interval",), "health_interval", "time between checks (ms|s|m|h, default 30s)"),
    (("--health-timeout",), "health_timeout", "longest a check may run (default 30s)"),
    (("--health-start-period",), "health_start_period", "grace before failures count (default 0s)"),
    (("--health-retries",), "health_retries", "failures in a row that make it unhealthy (default 3)"),
)
# flags docker has that need what this host or ocirtctl lacks: refused, never ignored
REFUSED = {
    "--gpus": "no GPU support (no NVIDIA container toolkit on this host)",
    "--isolation": "isolation technologies are Windows containers' (process, hyperv)",
    "--kernel-memory": "kernel memory limits are deprecated, and cgroup v2 and recent kernels have none",
    "--cpu-rt-period": "realtime CPU budgets need RT group scheduling, which this kernel lacks",
    "--cpu-rt-runtime": "realtime CPU budgets need RT group scheduling, which this kernel lacks",
    "--storage-opt": "per-container storage quotas need an xfs project-quota or devicemapper backing store",
}
RESOURCE_FLAGS = (
    (("-m", "--memory"), "memory", "memory limit"),
    (("--memory-swap",), "memory_swap", "memory+swap limit (-1: unlimited)"),
    (("--memory-reservation",), "memory_reservation", "memory soft limit"),
    (("-c", "--cpu-shares"), "cpu_shares", "relative CPU weight"),
    (("--cpus",), "cpus", "number of CPUs"),
    (("--cpuset-cpus",), "cpuset_cpus", "CPUs allowed (0-3, 0,1)"),
    (("--pids-limit",), "pids_limit", "process limit (-1: unlimited)"),
    (("--blkio-weight",), "blkio_weight", "block IO weight 10..1000"),
    (("--cpu-period",), "cpu_period", "CFS period in microseconds"),
    (("--cpu-quota",), "cpu_quota", "CFS quota in microseconds per period"),
    (("--cpuset-mems",), "cpuset_mems", "memory nodes allowed (0-3, 0,1)"),
    (("--memory-swappiness",), "memory_swappiness", "0..100: how readily the kernel swaps its pages"),
)
_BOOLS = (
    (("-i", "--interactive"), "interactive", "keep stdin open"),
    (("-t", "--tty"), "tty", "allocate a terminal"),
    (("--rm",), "rm", "remove the container when it exits"),
    (("--init",), "init", "run a reaping init as pid 1"),
    (("--privileged",), "privileged", "all capabilities and devices"),
    (("--read-only",), "read_only", "read-only root filesystem"),
    (("-P", "--publish-all"), "publish_all", "publish every exposed port"),
    (("--oom-kill-disable",), "oom_kill_disable", "do not OOM-kill the container"),
    (("--no-healthcheck",), "no_healthcheck", "disable the image's HEALTHCHECK"),
)


class Refused(argparse.Action):
    """A docker flag ocirtctl cannot honour: one line saying which and why, at parse time."""

    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace, *rest: object) -> None:
        flag = self.option_strings[0]
        parser.exit(125, f"ocirtctl: {flag}: not supported: {REFUSED[flag]}\n")


def add_resource_flags(parser: argparse.ArgumentParser) -> None:
    for names, dest, text in RESOURCE_FLAGS:
        parser.add_argument(*names, dest=dest, help=text)


def add_create_flags(parser: argparse.ArgumentParser) -> None:
    """Every flag of ``create`` and ``run`` (``-h`` is the host name, as in docker)."""
    for names, dest, text in _LISTS:
        parser.add_argument(*names, dest=dest, action="append", default=[], help=text)
    for names, dest, text in _VALUES:
        parser.add_argument(*names, dest=dest, help=text)
    for names, dest, text in _BOOLS:
        parser.add_argument(*names, dest=dest, action="store_true", help=text)
    add_resource_flags(parser)
    parser.add_argument("--net-alias", dest="network_alias", action="append", help=argparse.SUPPRESS)
    parser.add_argument("--dns-opt", dest="dns_option", action="append", help=argparse.SUPPRESS)
    for flag, why in REFUSED.items():
        parser.add_argument(flag, action=Refused, help=f"not supported: {why}")
    parser.add_argument("--oom-score-adj", dest="oom_score_adj", help="-1000..1000")
    parser.add_argument("image", help="image reference")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="command and arguments")


def from_args(ns: argparse.Namespace) -> CreateOptions:
    opts = CreateOptions(image=ns.image, command=list(ns.command), name=ns.name)
    _process(ns, opts)
    _security(ns, opts)
    _plumbing(ns, opts)
    _namespaces(ns, opts)
    opts.resources = resources(ns, options.Resources())
    if ns.oom_score_adj is not None:
        opts.resources.oom_score_adj = units.integer(ns.oom_score_adj, "--oom-score-adj", -1000, 1000)
    return opts


def _process(ns: argparse.Namespace, opts: CreateOptions) -> None:
    for path in ns.env_file:
        opts.env += options.env_file_entries(path)
    opts.env += [e for e in (options.env_entry(t) for t in ns.env) if e is not None]
    for path in ns.label_file:
        opts.labels.update(units.key_value(t, "--label-file") for t in options.lines_of(path, "--label-file"))
    opts.labels.update(units.key_value(t, "--label") for t in ns.label)
    opts.group_add = [options.group(t) for t in ns.group_add]
    opts.domainname = ns.domainname
    if ns.entrypoint is not None:
        opts.entrypoint = [ns.entrypoint] if ns.entrypoint else []
    opts.workdir, opts.user, opts.hostname = ns.workdir, ns.user, ns.hostname
    if opts.workdir is not None and not opts.workdir.startswith("/"):
        raise ManagerError(f"--workdir: {opts.workdir!r} is not an absolute path")
    opts.tty, opts.interactive, opts.init = ns.tty, ns.interactive, ns.init


def _security(ns: argparse.Namespace, opts: CreateOptions) -> None:
    opts.privileged, opts.read_only = ns.privileged, ns.read_only
    opts.cap_add = [_cap(c, "--cap-add") for c in ns.cap_add]
    opts.cap_drop = [_cap(c, "--cap-drop") for c in ns.cap_drop]
    for text in ns.security_opt:
        options.security_opt(text, opts)
    opts.ulimits = [options.ulimit(t) for t in ns.ulimit]
    opts.sysctls = dict(units.key_value(t, "--sysctl") for t in ns.sysctl)
    opts.devices = [options.device(t) for t in ns.device]
    opts.device_rules = [options.device_rule(t) for t in ns.device_cgroup_rule]
    opts.tmpfs = [options.tmpfs(t) for t in ns.tmpfs]


def _cap(text: str, flag: str) -> str:
    from ocirt.runtime.capabilities import NAMES

    name = text.upper()
    name = name if name.startswith("CAP_") or name == "ALL" else f"CAP_{name}"
    if name != "ALL" and name not in NAMES:
        raise ManagerError(f"{flag}: unknown capability {text!r}")
    return name


def _plumbing(ns: argparse.Namespace, opts: CreateOptions) -> None:
    if ns.restart is not None:
        opts.restart, opts.restart_max = options.restart_policy(ns.restart)
    if opts.restart != "no" and ns.rm:
        raise ManagerError("--restart: conflicts with --rm")
    opts.auto_remove = ns.rm
    if ns.stop_signal is not None:
        from ocirt.foundation.signals import parse
        from ocirt.runtime.errors import OcirtError

        try:
            parse(ns.stop_signal)
        except OcirtError as exc:
            raise ManagerError(f"--stop-signal: {exc}") from None
        opts.stop_signal = ns.stop_signal
    if ns.stop_timeout is not None:
        opts.stop_timeout = units.integer(ns.stop_timeout, "--stop-timeout", 0, units.SECONDS_MAX)
    if ns.log_driver is not None:
        if ns.log_driver not in LOG_DRIVERS:
            raise ManagerError(f"--log-driver: unsupported driver {ns.log_driver!r}")
        opts.log_driver = ns.log_driver
    opts.log_opts = dict(options.log_opt(t, opts.log_driver) for t in ns.log_opt)
    opts.network = ns.network or "bridge"
    opts.ports, opts.publish_all, opts.ip = list(ns.publish), ns.publish_all, ns.ip
    opts.aliases = list(ns.network_alias)
    opts.dns = [options.address(t, "--dns") for t in ns.dns]
    opts.dns_search, opts.dns_options = list(ns.dns_search), list(ns.dns_option)
    opts.extra_hosts = [options.extra_host(t) for t in ns.add_host]
    opts.mac_address = None if ns.mac_address is None else options.mac_address(ns.mac_address)
    opts.expose = [e for t in ns.expose for e in options.exposed(t)]
    opts.volumes, opts.mounts, opts.volumes_from = list(ns.volume), list(ns.mount), list(ns.volumes_from)
    opts.healthcheck = _healthcheck(ns)
    check_before_pull(opts)


def _healthcheck(ns: argparse.Namespace) -> dict[str, Any]:
    """docker's HealthConfig from the ``--health-*`` flags (nanoseconds; 0: the image's or
    the default); ``--no-healthcheck`` is ``Test: ["NONE"]``."""
    durations = {"Interval": ns.health_interval, "Timeout": ns.health_timeout}
    durations["StartPeriod"] = ns.health_start_period
    given = ns.health_cmd is not None or ns.health_retries is not None or any(durations.values())
    if ns.no_healthcheck:
        if given:
            raise ManagerError("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    out: dict[str, Any] = {}
    if ns.health_cmd is not None:
        out["Test"] = ["CMD-SHELL", ns.health_cmd]
    for key, text in durations.items():
        if text is not None:
            flag = "--health-" + {"StartPeriod": "start-period"}.get(key, key.lower())
            out[key] = _duration(text, flag)
    if ns.health_retries is not None:
        out["Retries"] = units.integer(ns.health_retries, "--health-retries", 0, 1 << 31)
    return out


def _duration(text: str, flag: str) -> int:
    from ocirt.manager.timeargs import go_duration_ns

    ns = go_duration_ns(text)
    if ns is None or ns < 0:
        raise ManagerError(f"{flag}: invalid duration {text!r} (such as 500ms, 30s, 1m)")
    if 0 < ns < 1_000_000:
        raise ManagerError(f"{flag}: cannot be less than 1ms")
    return ns


def _namespaces(ns: argparse.Namespace, opts: CreateOptions) -> None:
    """``--pid``/``--ipc``/``--uts``/``--cgroupns``/``--userns``: the host's namespace or one of
    the container's own; docker's ``container:NAME`` forms are refused, not ignored."""
    for name, modes in options.NAMESPACE_MODES.items():
        value = getattr(ns, name)
        if value is not None and value not in modes:
            raise ManagerError(
                f"--{name}: unsupported mode {value!r} (one of {', '.join(m for m in modes if m)})"
            )
    opts.pid, opts.ipc, opts.uts, opts.cgroupns = ns.pid or "", ns.ipc or "", ns.uts or "", ns.cgroupns or ""
    if ns.shm_size is not None:
        opts.shm_size = units.size(ns.shm_size, "--shm-size")
        if opts.shm_size <= 0:
            raise ManagerError("--shm-size: must be more than 0")
    opts.cidfile = ns.cidfile
    _image_choice(ns, opts)
    if ns.cgroup_parent is not None:
        parts = ns.cgroup_parent.strip("/").split("/")
        if not all(parts) or any(p in (".", "..") for p in parts):
            raise ManagerError(f"--cgroup-parent: {ns.cgroup_parent!r} is not a cgroup path")
        opts.cgroup_parent = ns.cgroup_parent
    if opts.uts == "host" and (opts.hostname or opts.domainname):
        raise ManagerError("--uts: host conflicts with --hostname and --domainname")


def _image_choice(ns: argparse.Namespace, opts: CreateOptions) -> None:
    from ocirt.manager.images import manifest

    if ns.pull is not None:
        if ns.pull not in ("always", "missing", "never"):
            raise ManagerError(f"--pull: expected always, missing or never, got {ns.pull!r}")
        opts.pull = ns.pull
    if ns.platform is not None:
        manifest.normalize_platform(ns.platform)  # named now, before a pull
        opts.platform = ns.platform


def check_before_pull(opts: CreateOptions) -> None:
    """``-p``, ``--ip``, ``-v``, ``--mount`` and ``--volumes-from`` checked now, before an
    image is pulled or anything is made (``create`` parses them again where it uses them)."""
    from ocirt.manager.network import ipam, ports
    from ocirt.manager.volumes import requests

    for spec in opts.ports:
        ports.parse_port_specs(spec)
    if opts.ip is not None:
        ipam.parse_address(opts.ip, "--ip")
    for text in opts.volumes:
        requests.parse_volume(text)
    for text in opts.mounts:
        requests.parse_mount(text)
    for text in opts.volumes_from:
        requests.parse_volumes_from(text)


def _cfs(ns: argparse.Namespace, res: options.Resources) -> None:
    """``--cpu-period``/``--cpu-quota`` (docker's ranges), which ``--cpus`` would overwrite."""
    if ns.cpu_period is not None:
        res.cpu_period = units.integer(ns.cpu_period, "--cpu-period", 1000, 1_000_000)
    if ns.cpu_quota is not None:
        res.cpu_quota = units.integer(ns.cpu_quota, "--cpu-quota", -1, units.INT64_MAX)
        if 0 <= res.cpu_quota < 1000:
            raise ManagerError("--cpu-quota: must be -1 or at least 1000 (1 ms)")
    if res.cpus is not None and (res.cpu_period is not None or res.cpu_quota is not None):
        raise ManagerError("--cpus: conflicts with --cpu-period and --cpu-quota (set one or the others)")


def resources(ns: argparse.Namespace, res: options.Resources) -> options.Resources:
    """The resource flags given in ``ns`` applied over ``res`` (``update`` starts from the old)."""
    for name in ("memory", "memory_reservation"):
        if getattr(ns, name) is not None:
            setattr(res, name, units.size(getattr(ns, name), f"--{name.replace('_', '-')}"))
    if ns.memory_swap is not None:
        res.memory_swap = -1 if ns.memory_swap == "-1" else units.size(ns.memory_swap, "--memory-swap")
    if ns.cpu_shares is not None:
        res.cpu_shares = units.integer(ns.cpu_shares, "--cpu-shares", 2, 262144)
    if ns.cpus is not None:
        res.cpus = units.cpus(ns.cpus)
    if ns.cpuset_cpus is not None:
        res.cpuset_cpus = units.cpu_list(ns.cpuset_cpus, "--cpuset-cpus")
    if ns.pids_limit is not None:
        res.pids_limit = units.integer(ns.pids_limit, "--pids-limit", -1, units.INT64_MAX)
    _cfs(ns, res)
    if ns.cpuset_mems is not None:
        res.cpuset_mems = units.cpu_list(ns.cpuset_mems, "--cpuset-mems")
    if ns.memory_swappiness is not None:
        res.memory_swappiness = units.integer(ns.memory_swappiness, "--memory-swappiness", -1, 100)
    if ns.blkio_weight is not None:
        res.blkio_weight = units.integer(ns.blkio_weight, "--blkio-weight", 10, 1000)
    for name in ("device_read_bps", "device_write_bps", "device_read_iops", "device_write_iops"):
        given = getattr(ns, name, [])
        if given:
            flag = f"--{name.replace('_', '-')}"
            setattr(res, name, [options.device_rate(t, flag, name.endswith("bps")) for t in given])
    if getattr(ns, "oom_kill_disable", False):
        res.oom_kill_disable = True
    if res.memory is not None and res.memory_swap not in (None, -1) and res.memory_swap < res.memory:
        raise ManagerError("--memory-swap: must be at least --memory")
    return res

"""Configs the managers really hand a runtime, replayed under ocirt and under runc.

A manager is pointed at a wrapper script instead of a runtime: on ``create`` the script
copies the bundle's ``config.json`` (and notes the bundle) and then runs runc with the
same arguments, so the manager's container runs as usual and keeps its rootfs, bind
sources and network namespace in place while the test replays its config. The replay
changes only what cannot be shared with the manager's container: the program (a probe
that prints what the container sees), the terminal, the cgroup path, and the hooks
(Docker's ``libnetwork-setkey`` configures the manager's own container by id).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import subprocess
import time
from typing import Any

from integration import host

RUNC = shutil.which("runc") or "/usr/bin/runc"
NAMESPACES = ("cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts")
LINK_NAMES = {"network": "net", "mount": "mnt"}
# Cgroup v1 files whose values are the container's limits.
CGROUP_FILES = (
    "memory/memory.limit_in_bytes",
    "memory/memory.soft_limit_in_bytes",
    "memory/memory.memsw.limit_in_bytes",
    "memory/memory.swappiness",
    "memory/memory.oom_control",
    "pids/pids.max",
    "cpu/cpu.shares",
    "cpu/cpu.cfs_quota_us",
    "cpu/cpu.cfs_period_us",
    "cpuset/cpuset.cpus",
    "cpuset/cpuset.mems",
    "blkio/blkio.weight",
    "devices/devices.list",
)
PROBE = "; ".join(
    [
        "echo '== id'; id",
        "echo '== status'; grep -E '^(Cap|NoNewPrivs|Seccomp|Groups|Umask)' /proc/self/status",
        "echo '== cwd'; pwd",
        "echo '== env'; env | sort",
        "echo '== limits'; cat /proc/self/limits",
        "echo '== oom_score_adj'; cat /proc/self/oom_score_adj",
        "echo '== personality'; cat /proc/self/personality",
        "echo '== cgroup membership'; cat /proc/self/cgroup",
        "echo '== hostname'; hostname; cat /proc/sys/kernel/domainname",
        "echo '== sysctl'; cd /proc/sys/net/ipv4; cat ping_group_range ip_unprivileged_port_start; cd /",
        "echo '== net'; for i in /sys/class/net/*; do echo ${i##*/} $(cat $i/flags); done",
        f"echo '== ns'; for n in {' '.join(NAMESPACES)}; do echo $n $(readlink /proc/self/ns/$n); done",
        "echo '== dev'; for f in /dev/* /dev/*/*; do stat -c '%n %F %a %u:%g %t:%T' \"$f\"; done",
        "echo '== masked'; for f in /proc/kcore /proc/keys /proc/timer_list /proc/acpi /sys/firmware "
        "/proc/sysrq-trigger /proc/sys/kernel/hostname; do stat -c '%n %F %a %t:%T' $f 2>&1; done",
        "echo '== mount modes'; for m in $(cut -d' ' -f5 /proc/self/mountinfo); do stat -c '%n %a' $m; done",
        "echo '== mountinfo'; cat /proc/self/mountinfo",
    ]
)


class Captured:
    """One ``create`` a manager asked for: the config it wrote and where its bundle was."""

    def __init__(self, config: dict[str, Any], bundle: str) -> None:
        self.config = config
        self.bundle = bundle

    @property
    def rootfs(self) -> str:
        return os.path.join(self.bundle, self.config["root"]["path"])


def write_wrapper(directory: str) -> str:
    """The runtime the managers are given: it copies each ``create``'s config and each
    ``exec``'s process file (``<id>.exec<n>.json``), then is runc."""
    out = os.path.join(directory, "captured")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(directory, "capture-runtime")
    with open(path, "w") as f:
        f.write(
            "#!/bin/sh\n"
            'bundle=""; process=""; prev=""; cmd=""\n'
            'for a in "$@"; do\n'
            '  case "$prev" in --bundle|-b) bundle="$a";; --process|-p) process="$a";; esac\n'
            '  case "$a" in --bundle=*) bundle="${a#--bundle=}";; --process=*) process="${a#--process=}";;\n'
            '    create|exec) cmd="${cmd:-$a}";; esac\n'
            '  prev="$a"\n'
            "done\n"
            'eval "cid=\\${$#}"\n'
            'if [ "$cmd" = create ]; then\n'
            '  bundle="${bundle:-$PWD}"\n'
            f'  cp "$bundle/config.json" "{out}/$cid.tmp" && mv "{out}/$cid.tmp" "{out}/$cid.json"\n'
            f'  echo "$bundle" > "{out}/$cid.bundle"\n'
            'elif [ "$cmd" = exec ] && [ -n "$process" ]; then\n'
            f'  n=$(ls "{out}" | grep -c "^$cid\\.exec")\n'
            f'  cp "$process" "{out}/$cid.tmp" && mv "{out}/$cid.tmp" "{out}/$cid.exec$n.json"\n'
            "fi\n"
            f'exec {RUNC} "$@"\n'
        )
    os.chmod(path, 0o755)
    return path


def load(directory: str, cid: str) -> Captured:
    """What the wrapper in ``directory`` captured for container ``cid``."""
    with open(os.path.join(directory, "captured", f"{cid}.json")) as f:
        config = json.load(f)
    with open(os.path.join(directory, "captured", f"{cid}.bundle")) as f:
        return Captured(config, f.read().strip())


def load_exec(directory: str, cid: str) -> dict[str, Any]:
    """The process file of the first ``exec`` the wrapper saw into container ``cid``."""
    with open(os.path.join(directory, "captured", f"{cid}.exec0.json")) as f:
        process: dict[str, Any] = json.load(f)
    return process


def replay_config(config: dict[str, Any], rootfs: str, cgroups_path: str) -> dict[str, Any]:
    """``config`` with the probe as its program, on ``rootfs``, in ``cgroups_path``, without hooks."""
    out: dict[str, Any] = json.loads(json.dumps(config))
    out["process"]["args"] = ["sh", "-c", PROBE]
    out["process"]["terminal"] = False
    out["process"].pop("consoleSize", None)
    out["root"]["path"] = rootfs
    out.pop("hooks", None)
    out.setdefault("linux", {})["cgroupsPath"] = cgroups_path
    return out


def replay_process(process: dict[str, Any]) -> dict[str, Any]:
    """An ``exec`` process file with the probe as its program and no terminal."""
    out: dict[str, Any] = {**process, "args": ["sh", "-c", PROBE], "terminal": False}
    out.pop("consoleSize", None)
    return out


def exec_probe(runtime: str, workdir: str, config: dict[str, Any], process: dict[str, Any], name: str) -> str:
    """Start ``config`` (its program replaced by a sleep) under ``runtime``, run ``process``
    in it with ``exec --detach --process`` as the managers do, and return what it printed."""
    bundle = os.path.join(workdir, name)
    os.makedirs(bundle)
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump({**config, "process": {**config["process"], "args": ["sleep", "3600"]}}, f)
    process_file = os.path.join(workdir, f"{name}.process.json")
    with open(process_file, "w") as f:
        json.dump(process, f)
    base = [runtime, "--root", os.path.join(workdir, f"{name}-root")]
    output, pid_file = os.path.join(workdir, f"{name}.out"), os.path.join(workdir, f"{name}.pid")
    try:
        host.run([*base, "run", "-d", "--bundle", bundle, name]).ok()
        errors = os.path.join(workdir, f"{name}.err")
        with open(output, "w") as out, open(errors, "w") as err:
            execd = subprocess.run(
                [*base, "exec", "--detach", "--pid-file", pid_file, "--process", process_file, name],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        assert execd.returncode == 0, _read(errors)
        _wait_finished(int(_read(pid_file)), name)
        return _read(output)
    finally:
        host.run([*base, "delete", "--force", name])


def _wait_finished(pid: int, name: str) -> None:
    """Until the probe has exited: gone, or a zombie of the container's init (which never reaps)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except OSError:
            return
        assert time.monotonic() < deadline, f"{name}: the probe did not finish"
        time.sleep(0.05)


def run_probe(runtime: str, workdir: str, config: dict[str, Any], name: str) -> str:
    """Run ``config`` under ``runtime`` (a private root) and return what the probe printed,
    after the container's cgroup limits as the host sees them between create and start
    (not every manager mounts the cgroup filesystem into the container)."""
    bundle = os.path.join(workdir, name)
    os.makedirs(bundle)
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)
    base = [runtime, "--root", os.path.join(workdir, f"{name}-root")]
    output, errors = os.path.join(workdir, f"{name}.out"), os.path.join(workdir, f"{name}.err")
    with open(output, "w") as out, open(errors, "w") as err:
        created = subprocess.run(
            [*base, "create", "--bundle", bundle, name], stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
    try:
        assert created.returncode == 0, _read(errors)
        limits = _cgroup_limits(config["linux"]["cgroupsPath"])
        limits += _created_state(host.run([*base, "state", name]).ok().stdout, name, bundle, config)
        host.run([*base, "start", name]).ok()
        deadline = time.monotonic() + 60
        while json.loads(host.run([*base, "state", name]).ok().stdout)["status"] != "stopped":
            assert time.monotonic() < deadline, f"{name}: the probe did not finish"
            time.sleep(0.05)
    finally:
        host.run([*base, "delete", "--force", name])
    return limits + _read(output)


def _created_state(text: str, name: str, bundle: str, config: dict[str, Any]) -> str:
    """``state`` of the created container, what a manager parses, with the values that
    differ by run named (after checking them) and ``ociVersion`` left out: runc reports the
    spec version it was built with, not the config's."""
    state = json.loads(text)
    state.pop("ociVersion", None)
    expected = {"id": name, "bundle": bundle, "rootfs": config["root"]["path"]}
    for key, value in expected.items():
        if key in state:
            assert state[key] == value, f"state {key}: {state[key]!r}, not {value!r}"
            state[key] = f"<{key}>"
    assert isinstance(state.get("pid"), int) and state["pid"] > 0, state
    state["pid"] = "<pid>"
    assert str(state.get("created", "")).startswith(time.strftime("%Y-")), state
    state["created"] = "<created>"
    return "== state\n" + json.dumps(state, sort_keys=True, indent=0) + "\n"


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _cgroup_limits(cgroups_path: str) -> str:
    lines = ["== cgroup"]
    for name in CGROUP_FILES:
        controller, _, leaf = name.partition("/")
        try:
            value = _read(f"{host.CGROUP_ROOT}/{controller}{cgroups_path}/{leaf}")
            value = _device_rules(value) if leaf == "devices.list" else " ".join(value.split())
        except OSError as exc:
            value = exc.strerror or "error"
        lines.append(f"{name} {value}")
    return "\n".join(lines) + "\n"


def _device_rules(listing: str) -> str:
    """The rules as a set (the kernel lists them in the order they were written). runc 1.1
    alone also allows ``/dev/net/tun`` (c 10:200) to every container; runc 1.2 and crun
    dropped that, and so does ocirt, so it is left out of the comparison."""
    return " | ".join(sorted(set(listing.splitlines()) - {"c 10:200 rwm"}))


def normalise(output: str, cgroups_path: str, config: dict[str, Any]) -> str:
    """What may differ between two correct runs: namespace inodes (named by whose they are),
    mount ids and sources, the cgroup path the replay chose, the host's interfaces."""
    ours = _namespace_owners(config)
    cgroup_dirs = {m["destination"] for m in config.get("mounts", []) if m.get("type") == "cgroup"}
    # the host's interfaces come and go with whatever else runs on it
    host_net = _in_host_netns(config)
    lines = []
    section = ""
    for line in output.replace(cgroups_path, "<cgroup>").splitlines():
        if line.startswith("== "):
            section = line
        elif section == "== net" and host_net:
            continue
        elif section == "== ns":
            kind, _, link = line.partition(" ")
            line = f"{kind} {ours.get(link, 'host' if _host_ns(kind) == link else 'new')}"
        elif section == "== mountinfo":
            line = _mount_line(line, cgroup_dirs)
        elif section == "== cgroup membership" and line.startswith("0::") and _hybrid():
            line = "0::<unified>"
        lines.append(line)
    return "\n".join(lines)


def _hybrid() -> bool:
    """A deliberate difference (README, cgroups): on a hybrid host ocirt joins the unified
    hierarchy only where v1 lacks what the container needs, so its ``0::`` line may stay the
    caller's where runc's names the container's cgroup; the v1 lines are compared as they are."""
    return os.path.ismount(f"{host.CGROUP_ROOT}/unified")


def _in_host_netns(config: dict[str, Any]) -> bool:
    """No network namespace of its own, or the host's joined by path (Docker's --network host
    names the host's, bound under its exec root)."""
    nets = [ns for ns in config.get("linux", {}).get("namespaces", []) if ns["type"] == "network"]
    host = os.stat("/proc/self/ns/net").st_ino
    return not nets or (bool(nets[0].get("path")) and os.stat(nets[0]["path"]).st_ino == host)


def _host_ns(kind: str) -> str:
    try:
        return os.readlink(f"/proc/self/ns/{kind}")
    except OSError:
        return ""


def _namespace_owners(config: dict[str, Any]) -> dict[str, str]:
    """The namespaces the config joins by path, by their ``type:[inode]`` link text."""
    found = {}
    for ns in config.get("linux", {}).get("namespaces", []):
        if ns.get("path"):
            kind = LINK_NAMES.get(ns["type"], ns["type"])
            found[f"{kind}:[{os.stat(ns['path']).st_ino}]"] = "joined"
    return found


def _mount_line(line: str, cgroup_dirs: set[str]) -> str:
    """Mount point, per-mount options, propagation, type and superblock options of one
    mountinfo line. A tmpfs's ``mode=`` is left out: runc mounts it with the default mode and
    then chmods it to the mode of the directory it covers, ocirt passes that mode to mount;
    the probe compares the mode each mount point ends up with instead.

    The one deliberate difference: a read-only ``cgroup`` mount on a v1 host is a tmpfs of
    per-hierarchy binds, and ocirt makes that tmpfs read-only as asked where runc 1.1 leaves
    it writable (its binds are read-only under both)."""
    fields = line.split()
    dash = fields.index("-")
    propagation = sorted(f.split(":")[0] for f in fields[6:dash]) or ["private"]
    options, super_options = fields[5], fields[dash + 3]
    if fields[dash + 1] == "tmpfs":
        super_options = ",".join(o for o in super_options.split(",") if not o.startswith("mode="))
    if fields[4] in cgroup_dirs and fields[dash + 1] == "tmpfs":
        options, super_options = (
            ",".join(o for o in x.split(",") if o not in ("ro", "rw")) for x in (options, super_options)
        )
    return " ".join([fields[4], fields[3], options, ",".join(propagation), fields[dash + 1], super_options])


def set_aside_runc_bugs(
    seen: dict[str, str], config: dict[str, Any], process: dict[str, Any] | None = None
) -> dict[str, str]:
    """Leave out what runc 1.1.5 (built with Go 1.19) gets wrong, after checking ocirt's
    value against the config itself:

    - a tmpfs with ``mode=`` over a directory that exists: runc chmods it to the
      directory's mode anyway (the replay shares the rootfs, where the manager's container
      already made the directory);
    - an exec'd process's RLIMIT_NOFILE: Go 1.19 raises its soft limit at start and puts
      the raised value back over runc's setrlimit, so runc's exec'd process has soft = hard.
    """
    dropped = []
    for mount in config.get("mounts", []):
        modes = [o[5:] for o in mount.get("options", []) if o.startswith("mode=")]
        if mount.get("type") == "tmpfs" and modes:
            expected = f"{mount['destination']} {int(modes[-1], 8):o}"
            assert expected in seen["ocirt"].splitlines(), f"ocirt: no {expected!r} in mount modes"
            dropped.append(re.compile(f"{re.escape(mount['destination'])} [0-7]+"))
    nofile = [r for r in (process or {}).get("rlimits", []) if r["type"] == "RLIMIT_NOFILE"]
    if nofile:
        line = next(x for x in seen["ocirt"].splitlines() if x.startswith("Max open files"))
        assert line.split()[3:5] == [str(nofile[0]["soft"]), str(nofile[0]["hard"])], line
        dropped.append(re.compile("Max open files .*"))
    return {
        runtime: "\n".join(x for x in text.splitlines() if not any(p.fullmatch(x) for p in dropped))
        for runtime, text in seen.items()
    }


def compare(name: str, ocirt: str, runc: str) -> None:
    diff = "\n".join(
        difflib.unified_diff(runc.splitlines(), ocirt.splitlines(), "runc", "ocirt", lineterm="")
    )
    assert ocirt == runc, f"{name}: the container sees something else under ocirt than under runc:\n{diff}"

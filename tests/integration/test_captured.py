"""The configs podman, Docker and containerd really write, run under ocirt and under runc.

Each manager runs its containers on a capturing wrapper around runc (see ``captured.py``),
with its default network and stock defaults, once plainly and once with the options users
pass most (limits, user, capabilities, read-only root, environment). Every captured config
is then replayed on the same rootfs under ocirt and under runc, and what the container
sees (ids, capabilities, seccomp mode, mounts, environment, rlimits, cgroup limits,
devices, hostname, namespaces, sysctls) must be the same. ``runc spec`` output gets the
same comparison, and so does the process file each manager writes for an ``exec``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from ocirt.testing.bundle import make_rootfs

from integration import captured, host, test_containerd, test_docker, test_podman

# Options users pass most, in each manager's spelling.
PODMAN_FLAGS = [
    *("--memory", "64m", "--pids-limit", "50", "--cpu-shares", "512", "--user", "65534:65534"),
    *("--cap-drop", "NET_BIND_SERVICE", "--cap-add", "SYS_TIME", "--read-only", "--env", "FOO=bar"),
    *("--hostname", "flagged", "--tmpfs", "/scratch:size=1m"),
]
DOCKER_FLAGS = PODMAN_FLAGS
CONTAINERD_FLAGS = [
    *("--memory-limit", str(64 * 1024 * 1024), "--cpu-shares", "512", "--cpus", "0.5", "--seccomp"),
    *("--cap-add", "CAP_SYS_TIME", "--cap-drop", "CAP_NET_RAW", "--read-only", "--env", "FOO=bar"),
]
# Finer settings: groups, rlimits, oom score, cpuset, reservations and swap, a namespaced
# sysctl, workdir, shm size, a cgroup namespace, no_new_privs, no capabilities, a device rule.
DETAILED = [
    *("--user", "1000:1000", "--group-add", "5", "--ulimit", "core=0:0", "--oom-score-adj", "100"),
    *("--cpuset-cpus", "0", "--memory", "96m", "--memory-reservation", "32m", "--memory-swap", "128m"),
    *("--sysctl", "net.ipv4.ip_unprivileged_port_start=80", "--workdir", "/tmp", "--shm-size", "8m"),
    *("--cgroupns", "private", "--security-opt", "no-new-privileges", "--cap-drop", "ALL"),
    *("--device-cgroup-rule", "c 42:* rmw", "--cpu-quota", "50000", "--cpu-period", "100000"),
    *("--mount", "type=tmpfs,destination=/t2,tmpfs-mode=1770"),
]
# Still more: a domainname, the OOM killer off, swappiness, shareable ipc, the host's cgroup
# namespace, an exec-able tmpfs on a read-only root, a fractional cpu limit.
MORE = [
    *("--domainname", "example.org", "--oom-kill-disable", "--memory", "64m"),
    *("--memory-swappiness", "0", "--cgroupns", "host", "--read-only", "--cpus", "1.5"),
    *("--tmpfs", "/run:exec,mode=1777,size=2m"),
]
SLEEP = ["sleep", "3600"]
EXEC_FLAGS = ["--user", "65534:65534", "--env", "EXTRA=1", "--workdir", "/tmp"]
# The host's namespaces, an init the manager injects, no seccomp, an added device, a read-only
# volume. (--privileged asks for capabilities this host cannot grant, which runc refuses.)
HOSTLY = [
    *("--ipc", "host", "--network", "host", "--init", "--security-opt", "seccomp=unconfined"),
    *("--cap-add", "SYS_ADMIN", "--device", "/dev/zero:/dev/extra-zero"),
]


def _replay(workdir: str, token: str, run: captured.Captured, name: str) -> None:
    """Run ``run``'s config under both runtimes and compare what the probe saw."""
    seen = {}
    for runtime, binary in (("ocirt", host.OCIRT), ("runc", captured.RUNC)):
        cgroups_path = f"/{token}/{name}-{runtime}"
        config = captured.replay_config(run.config, run.rootfs, cgroups_path)
        out = captured.run_probe(binary, workdir, config, f"{name}-{runtime}")
        seen[runtime] = captured.normalise(out, cgroups_path, config)
    seen = captured.set_aside_runc_bugs(seen, config)
    captured.compare(name, seen["ocirt"], seen["runc"])


def _replay_exec(
    workdir: str, token: str, run: captured.Captured, process: dict[str, Any], name: str
) -> None:
    """Run ``process`` (an exec's process file) in ``run``'s container under both runtimes."""
    seen = {}
    for runtime, binary in (("ocirt", host.OCIRT), ("runc", captured.RUNC)):
        cgroups_path = f"/{token}/{name}-{runtime}"
        config = captured.replay_config(run.config, run.rootfs, cgroups_path)
        out = captured.exec_probe(
            binary, workdir, config, captured.replay_process(process), f"{name}-{runtime}"
        )
        seen[runtime] = captured.normalise(out, cgroups_path, config)
    seen = captured.set_aside_runc_bugs(seen, config, process)
    captured.compare(name, seen["ocirt"], seen["runc"])


@pytest.fixture(scope="module")
def wrapper() -> Iterator[str]:
    directory = os.path.join("/tmp", f"ocirt-captured-{os.urandom(4).hex()}")
    os.makedirs(directory)
    try:
        yield captured.write_wrapper(directory)
    finally:
        shutil.rmtree(directory)


def test_podman_configs(wrapper: str) -> None:
    captures = os.path.dirname(wrapper)
    with test_podman.session(wrapper) as pm:
        plain = pm(*pm.run_args("-d"), test_podman.IMAGE, *SLEEP).ok().stdout.strip()
        flagged = pm(*pm.run_args("-d", *PODMAN_FLAGS), test_podman.IMAGE, *SLEEP).ok().stdout.strip()
        volume = ["-v", f"{pm.ws.path('volume')}:/data:ro"]
        hostly = pm(*pm.run_args("-d", *HOSTLY, *volume), test_podman.IMAGE, *SLEEP).ok().stdout.strip()
        detailed = pm(*pm.run_args("-d", *DETAILED), test_podman.IMAGE, *SLEEP).ok().stdout.strip()
        more_flags = ["--ipc", "shareable", *MORE[2:]]  # podman has no --domainname
        more = pm(*pm.run_args("-d", *more_flags), test_podman.IMAGE, *SLEEP).ok().stdout.strip()
        pm("exec", flagged, "true").ok()
        pm("exec", *EXEC_FLAGS, plain, "true").ok()
        variants = [("plain", plain), ("flags", flagged), ("host", hostly), ("detailed", detailed)]
        for name, cid in [*variants, ("more", more)]:
            _replay(pm.ws.dir, pm.ws.token, captured.load(captures, cid), f"podman-{name}")
        for name, cid in (("exec", flagged), ("exec-flags", plain)):
            made, process = captured.load(captures, cid), captured.load_exec(captures, cid)
            _replay_exec(pm.ws.dir, pm.ws.token, made, process, f"podman-{name}")
        _replay_pod_member(pm, captures)


def _replay_pod_member(pm: test_podman.Podman, captures: str) -> None:
    """A pod member joins its infra container's pid, ipc, net and uts namespaces by path."""
    sharing = ["--share", "pid,ipc,net,uts", "--cgroup-parent", pm.cgroup_parent]
    pod = pm("pod", "create", "--name", "captured", *sharing).ok().stdout.strip()
    try:
        member = pm(*pm.run_args("-d", "--pod", "captured"), test_podman.IMAGE, *SLEEP).ok().stdout.strip()
        _replay(pm.ws.dir, pm.ws.token, captured.load(captures, member), "podman-pod-member")
    finally:
        host.clear_unmounted_hierarchies(pm.ws.token)
        pm("pod", "rm", "--force", "--time", "0", "captured").ok()
        host.remove_cgroups(f"{pm.ws.token}/{pod}")  # see test_podman's pod test


def test_docker_configs(wrapper: str) -> None:
    captures = os.path.dirname(wrapper)
    with test_docker.session(wrapper) as dk:
        run = ["run", "--runtime", "under-test", "-d"]
        plain = dk(*run, test_docker.IMAGE, *SLEEP).ok().stdout.strip()
        flagged = dk(*run, *DOCKER_FLAGS, test_docker.IMAGE, *SLEEP).ok().stdout.strip()
        volume = ["-v", f"{dk.ws.path('volume')}:/data:ro"]
        hostly = dk(*run, *HOSTLY, *volume, test_docker.IMAGE, *SLEEP).ok().stdout.strip()
        # joins the plain container's namespaces by path (/proc/<pid>/ns/*)
        sharing = ["--pid", f"container:{plain}", "--network", f"container:{plain}"]
        joined = dk(*run, *sharing, test_docker.IMAGE, *SLEEP).ok().stdout.strip()
        detailed = dk(*run, *DETAILED, test_docker.IMAGE, *SLEEP).ok().stdout.strip()
        more = dk(*run, "--ipc", "shareable", *MORE, test_docker.IMAGE, *SLEEP).ok().stdout.strip()
        dk("exec", flagged, "true").ok()
        dk("exec", *EXEC_FLAGS, plain, "true").ok()
        variants = [("plain", plain), ("flags", flagged), ("host", hostly), ("joined", joined)]
        variants += [("detailed", detailed), ("more", more)]
        for name, cid in variants:
            _replay(dk.ws.dir, dk.ws.token, captured.load(captures, cid), f"docker-{name}")
        for name, cid in (("exec", flagged), ("exec-flags", plain)):
            made, process = captured.load(captures, cid), captured.load_exec(captures, cid)
            _replay_exec(dk.ws.dir, dk.ws.token, made, process, f"docker-{name}")


def test_containerd_configs(wrapper: str) -> None:
    captures = os.path.dirname(wrapper)
    with test_containerd.session(wrapper) as ctd:
        ctd(*ctd.run_args("-d"), test_containerd.IMAGE, "plain", *SLEEP).ok()
        ctd(*ctd.run_args("-d", *CONTAINERD_FLAGS), test_containerd.IMAGE, "flags", *SLEEP).ok()
        hostly = ["--net-host", "--allow-new-privs", "--device", "/dev/zero"]
        volume = f"type=bind,src={ctd.ws.path('volume')},dst=/data,options=rbind:ro"
        ctd(*ctd.run_args("-d", *hostly, "--mount", volume), test_containerd.IMAGE, "host", *SLEEP).ok()
        host.run(ctd.exec_args("flags", "e1", "true")).ok()
        as_nobody = ["--exec-id", "e2", "--user", "65534", "--cwd", "/tmp"]
        ctd("task", "exec", "--fifo-dir", ctd.ws.path("fifo"), *as_nobody, "plain", "true").ok()
        for cid in ("plain", "flags", "host"):
            _replay(ctd.ws.dir, ctd.ws.token, captured.load(captures, cid), f"containerd-{cid}")
        for name, cid in (("exec", "flags"), ("exec-flags", "plain")):
            made, process = captured.load(captures, cid), captured.load_exec(captures, cid)
            _replay_exec(ctd.ws.dir, ctd.ws.token, made, process, f"containerd-{name}")


def test_runc_spec_config() -> None:
    """``runc spec``'s default config, with the terminal off, on a busybox rootfs."""
    ws = host.Workspace("runc-spec")
    try:
        bundle = ws.path("spec")
        host.run([captured.RUNC, "spec", "--bundle", bundle]).ok()
        with open(os.path.join(bundle, "config.json")) as f:
            config: dict[str, Any] = json.load(f)
        make_rootfs(os.path.join(bundle, config["root"]["path"]))
        _replay(ws.dir, ws.token, captured.Captured(config, bundle), "runc-spec")
    finally:
        found = ws.cleanup()
        assert not found, f"left behind: {found}"

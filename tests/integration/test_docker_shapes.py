"""``ocirtctl`` against docker itself: the same image (one archive, ``docker load`` and
``ocirtctl load``), the same containers in a private dockerd 20.10 and in an ocirtctl
root, and their documents compared: inspect key sets and JSON types recursively, the
``ps``/``images`` ``{{json .}}`` keys, template outputs and exit codes. Values that must
differ (ids, times, paths, pids) are compared by type only; where docker has ``null`` for
an empty list or map, any value of ours is accepted (docker's nil-versus-empty is Go's)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from ocirt.manager.network import settings
from support.ctl import OCIRTCTL, reset
from support.nethost import net_root

from integration import host
from integration.images import docker_archive, rootfs_tar
from integration.test_docker import IMAGE, TRAP_LOOP, Docker, session

DOCKER = "/usr/bin/docker"  # Debian's docker.io 20.10 CLI, the one the issue compares with
# maps whose keys are data (label names, networks, ports), not docker's field names
DATA_MAPS = {
    "Labels",
    "Networks",
    "Ports",
    "PortBindings",
    "ExposedPorts",
    "Volumes",
    "Data",
    "Config",
    "Options",
}


class Pair:
    """One scripted session run twice: ``docker`` against the private dockerd, ``ocirtctl``
    against a private root holding the same image."""

    def __init__(self, dk: Docker, root: str) -> None:
        self.dk = dk
        self.root = root

    def docker(self, *args: str) -> host.Result:
        return host.run([DOCKER, "--host", f"unix://{self.dk.socket}", *args])

    def ocirtctl(self, *args: str) -> host.Result:
        return host.run([OCIRTCTL, "--root", self.root, *args], timeout=120)

    def both(self, *args: str) -> tuple[host.Result, host.Result]:
        return self.docker(*args), self.ocirtctl(*args)

    def run(self, *options: str) -> None:
        """The same detached container in both (docker's runs ocirt as its runtime)."""
        self.docker("run", "--runtime", "under-test", "-d", *options, IMAGE, "sh", "-c", TRAP_LOOP).ok()
        self.ocirtctl("run", "-d", *options, IMAGE, "sh", "-c", TRAP_LOOP).ok()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    tmp = str(tmp_path_factory.mktemp("shapes"))
    root = net_root(tmp)
    cfg = settings.load(root)
    with session(host.OCIRT) as dk:
        try:
            archive = docker_archive(
                rootfs_tar(os.path.join(tmp, "image")), os.path.join(tmp, "i.tar"), IMAGE
            )
            host.run([OCIRTCTL, "--root", root, "load", "-q", "--input", archive], timeout=120).ok()
            yield Pair(dk, root)
        finally:
            left = reset(root, cfg)
            assert not left, f"left behind: {left}"


def differences(ours: Any, theirs: Any, path: str = "") -> list[str]:
    """Where our document's shape leaves docker's: a missing or extra key, another JSON type."""
    if theirs is None:
        return []
    if isinstance(theirs, dict):
        if not isinstance(ours, dict):
            return [f"{path}: {type(ours).__name__} where docker has an object"]
        if path.rpartition(".")[2] in DATA_MAPS:
            return []
        out = [f"{path}.{k}: missing" for k in theirs if k not in ours]
        out += [f"{path}.{k}: not in docker's" for k in ours if k not in theirs]
        return out + [e for k in theirs if k in ours for e in differences(ours[k], theirs[k], f"{path}.{k}")]
    if isinstance(theirs, list):
        if not isinstance(ours, list):
            return [f"{path}: {type(ours).__name__} where docker has an array"]
        return [e for a, b in zip(ours, theirs, strict=False) for e in differences(a, b, f"{path}[]")]
    kinds = (bool, int, float, str)
    want = next(k for k in kinds if isinstance(theirs, k))
    got = next((k for k in kinds if isinstance(ours, k)), type(ours))
    return [] if got is want else [f"{path}: {got.__name__} where docker has {want.__name__}"]


def test_container_inspect_has_dockers_shape(pair: Pair) -> None:
    pair.run("--name", "shape1", "--network", "none", "-l", "team=a", "-e", "X=1", "-m", "64m")
    theirs = json.loads(pair.docker("inspect", "shape1").ok().stdout)[0]
    ours = json.loads(pair.ocirtctl("inspect", "shape1").ok().stdout)[0]
    assert differences(ours, theirs) == []
    for doc in (ours, theirs):  # values docker users script against
        assert doc["Name"] == "/shape1" and doc["State"]["ExitCode"] == 0 and doc["State"]["Running"]
        assert doc["HostConfig"]["Memory"] == 64 << 20 and doc["HostConfig"]["NetworkMode"] == "none"
    assert ours["Config"]["Env"] == theirs["Config"]["Env"]
    assert (ours["Path"], ours["Args"], ours["Config"]["Cmd"]) == (
        theirs["Path"],
        theirs["Args"],
        theirs["Config"]["Cmd"],
    )
    pair.docker("stop", "shape1").ok()
    pair.ocirtctl("stop", "shape1").ok()
    theirs = json.loads(pair.docker("inspect", "shape1").ok().stdout)[0]
    ours = json.loads(pair.ocirtctl("inspect", "shape1").ok().stdout)[0]
    assert differences(ours["State"], theirs["State"]) == []
    stopped = ("Status", "Running", "Pid", "ExitCode", "OOMKilled", "Error")
    assert {k: ours["State"][k] for k in stopped} == {k: theirs["State"][k] for k in stopped}
    assert ours["State"]["FinishedAt"] > ours["State"]["StartedAt"] > "0001"


def test_list_json_keys_and_templates_match(pair: Pair) -> None:
    pair.run("--name", "shape2", "--network", "none", "-l", "team=b")
    keys = [
        {k for line in r.ok().stdout.splitlines() for k in json.loads(line)}
        for r in pair.both("ps", "--filter", "name=shape2", "--format", "{{json .}}")
    ]
    assert keys[0] and keys[0] == keys[1]
    images = [
        json.loads(r.ok().stdout.splitlines()[0]) for r in pair.both("images", "--format", "{{json .}}")
    ]
    assert set(images[0]) == set(images[1])
    for template in [
        "{{.State.Status}} {{.State.Running}} {{.State.ExitCode}} {{.Name}} {{.Path}} {{json .Args}}",
        '{{.Config.Labels}} {{json .Config.Labels}} {{index .Config.Labels "team"}}',
        "{{range $k, $v := .Config.Labels}}{{$k}}={{upper $v}}{{end}} {{len .Mounts}}",
        '{{if eq .State.Status "running"}}up{{else}}down{{end}} {{.RestartCount}}',
        "{{.HostConfig.NetworkMode}} {{.HostConfig.Privileged}} {{.HostConfig.RestartPolicy.Name}}",
    ]:
        docker, ours = pair.both("inspect", "-f", template, "shape2")
        assert ours.ok().stdout == docker.ok().stdout, template
    for template in ['{{.Names}} {{.State}} {{.Label "team"}} {{.Labels}}', "table {{.Names}}\t{{.State}}"]:
        docker, ours = pair.both("ps", "--filter", "name=shape2", "--format", template)
        assert ours.ok().stdout == docker.ok().stdout, template


@pytest.mark.parametrize(
    "args",
    [
        ["inspect", "no-such-object"],
        ["inspect", "-f", "{{.Id}}", "no-such-object"],
        ["container", "inspect", "no-such-object"],
        ["inspect", "--type", "volume", "shape3"],
        ["inspect", "-f", "{{.State.Nope}}", "shape3"],
        ["inspect", "-f", "{{if}}", "shape3"],
        ["ps", "--format", "{{.Nope}}"],
        ["ps", "--format", "{{nope}}"],
    ],
)
def test_failures_exit_as_docker(pair: Pair, args: list[str]) -> None:
    if not pair.docker("ps", "-aq", "--filter", "name=shape3").ok().stdout.strip():
        pair.run("--name", "shape3", "--network", "none")
    docker, ours = pair.both(*args)
    assert (ours.returncode, ours.stdout) == (docker.returncode, docker.stdout), (docker, ours)
    last = docker.stderr.strip().splitlines()[-1]
    assert last.partition(": ")[2] in ours.stderr or last in ours.stderr, (docker.stderr, ours.stderr)


def test_network_and_volume_documents(pair: Pair) -> None:
    for args in (["volume", "create", "shapevol"], ["network", "create", "shapenet"]):
        for r in pair.both(*args):
            r.ok()
    for kind, name in (("volume", "shapevol"), ("network", "shapenet")):
        theirs, ours = (json.loads(r.ok().stdout)[0] for r in pair.both(kind, "inspect", name))
        assert differences(ours, theirs) == [], kind
    subprocess.run(
        [DOCKER, "--host", f"unix://{pair.dk.socket}", "network", "rm", "shapenet"], capture_output=True
    )


def test_published_port_volume_and_bind_have_dockers_shape(pair: Pair, tmp_path: Any) -> None:
    """On each one's default bridge, a port published on loopback, a named volume and a bind."""
    pair.docker("volume", "create", "shapedata").ok()
    pair.ocirtctl("volume", "create", "shapedata").ok()
    options = (
        "--name",
        "shape4",
        "-p",
        "127.0.0.1::80",
        "-v",
        "shapedata:/data",
        "-v",
        f"{tmp_path}:/host:ro",
    )
    pair.run(*options)
    theirs = json.loads(pair.docker("inspect", "shape4").ok().stdout)[0]
    ours = json.loads(pair.ocirtctl("inspect", "shape4").ok().stdout)[0]
    for doc in (ours, theirs):  # docker lists mounts in its map's (random) order
        doc["Mounts"].sort(key=lambda m: m["Destination"])
    assert differences(ours, theirs) == []
    for doc in (ours, theirs):
        (binding,) = doc["NetworkSettings"]["Ports"]["80/tcp"]
        assert binding["HostIp"] == "127.0.0.1" and int(binding["HostPort"]) > 0
        assert (
            doc["NetworkSettings"]["IPAddress"] == doc["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
        )
        kinds = sorted((m["Type"], m["Destination"], m["RW"]) for m in doc["Mounts"])
        assert kinds == [("bind", "/host", False), ("volume", "/data", True)]
    for mount_theirs in theirs["Mounts"]:
        (mount_ours,) = [m for m in ours["Mounts"] if m["Destination"] == mount_theirs["Destination"]]
        assert set(mount_ours) == set(mount_theirs)
    docker_ps, ours_ps = pair.both("ps", "--filter", "name=shape4", "--format", "{{.Ports}}|{{.Mounts}}")
    mounts = [sorted(r.ok().stdout.strip().split("|")[1].split(",")) for r in (ours_ps, docker_ps)]
    assert mounts[0] == mounts[1]  # docker's order is its map's: compared as sets
    ports = [r.stdout.split("|")[0] for r in (ours_ps, docker_ps)]
    assert ports[0].startswith("127.0.0.1:") and ports[0].partition("->")[2] == ports[1].partition("->")[2]


@pytest.mark.parametrize(
    "args",
    [["network", "ls"], ["volume", "ls"], ["history", IMAGE], ["images"]],
)
def test_other_list_json_keys_match(pair: Pair, args: list[str]) -> None:
    for kind in ("network", "volume"):  # something to list in each, whatever ran before
        for r in pair.both(kind, "create", "shapelist"):
            assert r.returncode == 0 or "already exists" in r.stderr, r
    try:
        keys = [
            {k for line in r.ok().stdout.splitlines() for k in json.loads(line)}
            for r in pair.both(*args, "--format", "{{json .}}")
        ]
        assert keys[0] and keys[0] == keys[1]
    finally:  # dockerd leaves a network's bridge on the host after it stops
        pair.docker("network", "rm", "shapelist")


def test_image_inspect_has_dockers_shape(pair: Pair) -> None:
    theirs, ours = (json.loads(r.ok().stdout)[0] for r in pair.both("image", "inspect", IMAGE))
    assert differences(ours, theirs) == []
    assert (ours["RepoTags"], ours["Config"]["Cmd"]) == (theirs["RepoTags"], theirs["Config"]["Cmd"])


@pytest.mark.parametrize(
    "args",
    [
        ["ps", "-a"],
        ["images"],
        ["images", "--digests"],
        ["volume", "ls"],
        ["history", IMAGE],
        ["ps", "--format", "table"],
    ],
)
def test_default_tables_have_dockers_columns(pair: Pair, args: list[str]) -> None:
    """Each command's own table is docker's default template: same columns, same order."""
    pair.docker("volume", "create", "shapetable").ok()
    pair.ocirtctl("volume", "create", "shapetable").ok()
    headers = [re.split(r"\s{2,}", r.ok().stdout.splitlines()[0].strip()) for r in pair.both(*args)]
    assert headers[1] == headers[0]


def test_host_config_carries_the_flags_as_docker_does(pair: Pair) -> None:
    flags = ["--dns", "127.0.0.1", "--dns-search", "example.test", "--add-host", "h:10.0.0.1"]
    flags += ["--shm-size", "128m", "--group-add", "10", "--domainname", "d.test", "--expose", "8080"]
    pair.run("--name", "shape5", *flags)
    theirs, ours = (json.loads(r.ok().stdout)[0] for r in pair.both("inspect", "shape5"))
    assert differences(ours, theirs) == []
    keys = ("Dns", "DnsSearch", "ExtraHosts", "ShmSize", "GroupAdd", "IpcMode", "PidMode", "CgroupnsMode")
    assert {k: ours["HostConfig"][k] for k in keys} == {k: theirs["HostConfig"][k] for k in keys}
    assert ours["Config"]["Domainname"] == theirs["Config"]["Domainname"] == "d.test"
    assert set(ours["Config"]["ExposedPorts"]) == set(theirs["Config"]["ExposedPorts"]) == {"8080/tcp"}
    assert ours["NetworkSettings"]["Ports"] == theirs["NetworkSettings"]["Ports"] == {"8080/tcp": None}


def test_ps_json_values_match(pair: Pair, tmp_path: Any) -> None:
    """The ``{{json .}}`` line's values, but for ids and times. Size is docker's only when
    asked with a size (``0B (virtual ...)``): ocirtctl does not measure the writable layer."""
    pair.docker("volume", "create", "shapevals").ok()
    pair.ocirtctl("volume", "create", "shapevals").ok()
    pair.run("--name", "shape6", "--network", "none", "-l", "b=2", "-l", "a=1", "-v", "shapevals:/v")
    rows = [
        json.loads(r.ok().stdout)
        for r in pair.both("ps", "--filter", "name=shape6", "--format", "{{json .}}")
    ]
    same = ("Command", "Image", "LocalVolumes", "Mounts", "Names", "Networks", "State")
    assert {k: rows[1][k] for k in same} == {k: rows[0][k] for k in same}
    # docker lists labels in Go's map order, which varies from call to call: compare the pairs
    assert sorted(rows[1]["Labels"].split(",")) == sorted(rows[0]["Labels"].split(","))
    assert rows[1]["Status"].startswith("Up ") and rows[0]["Status"].startswith("Up ")


def test_created_container_has_dockers_shape(pair: Pair) -> None:
    """Never started: docker's zero pid and times, the network named but not joined."""
    pair.docker("create", "--runtime", "under-test", "--name", "shape7", IMAGE, "true").ok()
    pair.ocirtctl("create", "--name", "shape7", IMAGE, "true").ok()
    theirs, ours = (json.loads(r.ok().stdout)[0] for r in pair.both("inspect", "shape7"))
    assert differences(ours, theirs) == []
    for key in ("Status", "Running", "Pid", "ExitCode", "StartedAt", "FinishedAt"):
        assert ours["State"][key] == theirs["State"][key], key
    assert list(ours["NetworkSettings"]["Networks"]) == list(theirs["NetworkSettings"]["Networks"])
    assert ours["NetworkSettings"]["IPAddress"] == theirs["NetworkSettings"]["IPAddress"] == ""

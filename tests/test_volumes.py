"""Volumes end to end: named volumes outliving containers, copy-up from an image VOLUME
(the seed's data-packed volume container), ``--volumes-from`` with ``:ro``, binds, tmpfs
and ``--mount``, ``rm -v`` removing anonymous volumes only, and the volume commands."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
from support.ctl import Manager, checked, manager


@pytest.fixture(scope="module")
def mgr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Manager]:
    with manager(str(tmp_path_factory.mktemp("volumes"))) as m:
        yield m


@pytest.fixture
def ctl(mgr: Manager) -> Iterator[Manager]:
    with checked(mgr, lambda: mgr("volume", "prune")) as m:
        yield m


def volumes(ctl: Manager) -> list[str]:
    return ctl("volume", "ls", "-q").stdout.split()


def test_named_volume_outlives_its_containers(ctl: Manager) -> None:
    ctl("run", "--rm", "--network", "none", "-v", "keep:/data", ctl.httpd, "sh", "-c", "echo kept > /data/f")
    assert ctl.ids() == [] and volumes(ctl) == ["keep"]
    done = ctl("run", "--rm", "--network", "none", "-v", "keep:/data", ctl.httpd, "cat", "/data/f")
    assert done.stdout == "kept\n"
    ctl("create", "--name", "holder", "--network", "none", "-v", "keep:/data", ctl.httpd, "true")
    refused = ctl("volume", "rm", "keep", check=False)
    assert refused.returncode != 0 and "in use by container holder" in refused.stderr
    ctl("rm", "holder")
    ctl("volume", "rm", "keep")
    assert volumes(ctl) == []


def test_image_volume_is_copied_up_once(ctl: Manager) -> None:
    ctl("run", "-d", "--name", "packed", "--network", "none", ctl.data, "sleep", "600")
    assert ctl("exec", "packed", "cat", "/data/hello.txt").stdout == "packed in the image\n"
    (mount,) = ctl.inspect("packed")["Mounts"]
    assert mount["Type"] == "volume" and mount["Destination"] == "/data"
    with open(os.path.join(mount["Source"], "hello.txt")) as f:
        assert f.read() == "packed in the image\n"
    ctl("exec", "packed", "sh", "-c", "echo changed > /data/hello.txt")
    ctl("run", "--rm", "--network", "none", "-v", "named:/data", ctl.data, "true")
    done = ctl("run", "--rm", "--network", "none", "-v", "named:/data", ctl.data, "cat", "/data/hello.txt")
    assert done.stdout == "packed in the image\n"


def test_volumes_from_a_volume_container(ctl: Manager, tmp_path: object) -> None:
    shared = os.path.join(str(tmp_path), "shared")
    os.makedirs(shared)
    with open(os.path.join(shared, "tool"), "w") as f:
        f.write("from the host\n")
    ctl("create", "--name", "vc_data", "--network", "none", "-v", f"{shared}:/shared", ctl.data, "true")
    script = "cat /data/hello.txt /shared/tool; echo more > /data/new"
    done = ctl("run", "--rm", "--network", "none", "--volumes-from", "vc_data", ctl.httpd, "sh", "-c", script)
    assert done.stdout == "packed in the image\nfrom the host\n"
    done = ctl("run", "--rm", "--network", "none", "--volumes-from", "vc_data:ro", ctl.httpd,
               "sh", "-c", "cat /data/new; touch /data/x", check=False)  # fmt: skip
    assert done.stdout == "more\n" and done.returncode != 0 and "Read-only file system" in done.stderr


def test_binds_tmpfs_and_mount_flag(ctl: Manager, tmp_path: object) -> None:
    host = os.path.join(str(tmp_path), "ro")
    os.makedirs(host)
    script = (
        "cat /ro/f; touch /ro/x 2>/dev/null && echo writable; grep -c ' /t tmpfs' /proc/mounts; echo v > /v/f"
    )
    with open(os.path.join(host, "f"), "w") as f:
        f.write("bound\n")
    done = ctl("run", "--rm", "--network", "none", "-v", f"{host}:/ro:ro", "--mount", "type=tmpfs,target=/t",
               "--mount", "type=volume,source=mvol,target=/v", ctl.httpd, "sh", "-c", script)  # fmt: skip
    assert done.stdout == "bound\n1\n"
    assert json.loads(ctl("volume", "inspect", "mvol").stdout)[0]["Name"] == "mvol"


def test_rm_v_removes_anonymous_volumes_only(ctl: Manager) -> None:
    ctl("create", "--name", "mixed", "--network", "none", "-v", "/anon", "-v", "named2:/n", ctl.httpd, "true")
    anon = [m["Name"] for m in ctl.inspect("mixed")["Mounts"] if m["Destination"] == "/anon"]
    assert sorted(volumes(ctl)) == sorted([*anon, "named2"])
    ctl("rm", "-v", "mixed")
    assert volumes(ctl) == ["named2"]


def test_volume_commands_and_bad_names(ctl: Manager) -> None:
    assert ctl("volume", "create", "-l", "a=b", "v1").stdout.strip() == "v1"
    assert json.loads(ctl("volume", "inspect", "v1").stdout)[0]["Labels"] == {"a": "b"}
    bad = ctl("volume", "create", "../evil", check=False)
    assert bad.returncode == 125 and "invalid volume name" in bad.stderr
    assert not os.path.exists(os.path.join(ctl.root, "evil"))
    assert ctl("volume", "prune").stdout.split() == ["v1"]

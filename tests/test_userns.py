"""User namespaces: bind sources the mapped root cannot reach, id-mapped mounts, rootless.

runc 1.1.5 (Debian's) is the reference: the same bundle runs under both and the container
must see the same thing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Runtime
from ocirt.conformance.bundle import base_config, make_bundle

MAPPED = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def in_userns(config: dict[str, Any]) -> None:
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = MAPPED
    config["linux"]["gidMappings"] = MAPPED


@pytest.fixture
def runc() -> Iterator[Any]:
    """``runc --root <private>`` for one test; its containers are force-deleted at the end."""
    root = f"/run/runc-test-{uuid.uuid4().hex[:8]}"
    made: list[str] = []

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        if args[0] == "run":
            made.append(args[-1])
        return subprocess.run(
            ["runc", "--root", root, *args],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )

    try:
        yield call
    finally:
        for cid in made:
            call("delete", "--force", cid)
        shutil.rmtree(root, ignore_errors=True)


def userns_bundle(path: str, args: list[str], mounts: list[dict[str, Any]]) -> str:
    """A bundle whose root is host uid 100000, readable by it, with the mount points made
    beforehand (the mapped root may not create entries in a rootfs the host's root owns)."""
    config = base_config(args)
    in_userns(config)
    config["ociVersion"] = "1.0.2"  # runc 1.1.5's
    config["mounts"] += mounts
    make_bundle(path, args, config)
    for m in mounts:
        target = os.path.join(path, "rootfs", m["destination"].lstrip("/"))
        if os.path.isdir(m["source"]):
            os.makedirs(target, exist_ok=True)
        else:
            open(target, "a").close()
    return path


def test_bind_source_behind_a_private_host_directory(rt: Runtime, runc: Any, open_dir: str) -> None:
    """The container's root is host uid 100000, which cannot pass a 0700 root-owned
    directory; the host's root opens the source and init binds the fd, as runc 1.1.5 does."""
    private = os.path.join(open_dir, "private")
    shared = os.path.join(private, "shared")
    os.makedirs(shared)
    os.chmod(private, 0o700)
    with open(os.path.join(shared, "f"), "w") as f:
        f.write("reached\n")
    mounts = [{"destination": "/mnt", "type": "bind", "source": shared, "options": ["rbind", "ro"]}]
    args = ["sh", "-c", "cat /mnt/f; touch /mnt/f 2>/dev/null || echo read-only"]
    bundle = userns_bundle(os.path.join(open_dir, "b"), args, mounts)
    ours = rt("run", "--bundle", bundle, rt.new_id())
    theirs = runc("run", "--bundle", bundle, f"ocirt-test-{uuid.uuid4().hex[:10]}")
    assert (ours.returncode, ours.stdout) == (0, "reached\nread-only\n"), ours.stderr
    assert (theirs.returncode, theirs.stdout) == (ours.returncode, ours.stdout), theirs.stderr


def test_bind_namespace_file_of_a_host_process(rt: Runtime, runc: Any, open_dir: str) -> None:
    """``/proc/<pid>/ns/net`` of a host process is out of the mapped root's reach (ptrace
    rules); bound from the fd it is that very namespace, by the kernel's inode number."""
    holder = subprocess.Popen(["sleep", "600"])
    try:
        source = f"/proc/{holder.pid}/ns/net"
        mounts = [{"destination": "/netns", "type": "bind", "source": source, "options": ["bind"]}]
        bundle = userns_bundle(os.path.join(open_dir, "b"), ["stat", "-L", "-c", "%i", "/netns"], mounts)
        ours = rt("run", "--bundle", bundle, rt.new_id())
        theirs = runc("run", "--bundle", bundle, f"ocirt-test-{uuid.uuid4().hex[:10]}")
        expected = f"{os.stat(source).st_ino}\n"
    finally:
        holder.kill()
        holder.wait()
    assert (ours.returncode, ours.stdout) == (0, expected), ours.stderr
    assert (theirs.returncode, theirs.stdout) == (0, expected), theirs.stderr


def test_missing_bind_source_in_userns_is_one_line(rt: Runtime, open_dir: str) -> None:
    missing = os.path.join(open_dir, "nowhere")
    config = base_config(["true"])
    in_userns(config)
    config["mounts"].append({"destination": "/mnt", "type": "bind", "source": missing, "options": ["bind"]})
    bundle = os.path.join(open_dir, "b")
    make_bundle(bundle, ["true"], config)
    res = rt("run", "--bundle", bundle, rt.new_id())
    assert res.returncode == 1
    index = len(config["mounts"]) - 1
    assert res.stderr == f"ocirt: mounts[{index}] (/mnt): bind source {missing}: No such file or directory\n"


def idmap_bundle(path: str, script: str, mounts: list[dict[str, Any]]) -> str:
    config = base_config(["sh", "-c", script])
    in_userns(config)
    config["mounts"] += mounts
    make_bundle(path, ["sh", "-c", script], config)
    for m in mounts:
        os.makedirs(os.path.join(path, "rootfs", m["destination"].lstrip("/")), exist_ok=True)
    return path


def owners_source(base: str) -> str:
    """Files the host owns as 1000:1001 and 0:0: without an idmapping the container (root at
    host 100000) sees neither owner and shows the overflow id 65534."""
    source = os.path.join(base, "src")
    os.makedirs(source)
    for name, owner in (("user", 1000), ("root", 0)):
        with open(os.path.join(source, name), "w") as f:
            f.write(name)
        os.chown(os.path.join(source, name), owner, owner + (name == "user"))
    os.chmod(source, 0o777)
    return source


def test_idmapped_mounts_map_host_owners(rt: Runtime, open_dir: str) -> None:
    """The kernel's rule: on-disk id k shows as the host id the mount's map gives k, then as
    the container's map shows that host id. Container map 0->100000 (65536 ids)."""
    source = owners_source(open_dir)
    plain = {"destination": "/plain", "type": "bind", "source": source, "options": ["bind"]}
    # same map as the container: on-disk ids come through unchanged
    same = {"destination": "/same", "type": "bind", "source": source, "options": ["bind", "idmap"]}
    # a map of its own: on-disk 1000 -> host 100042 -> container 42; on-disk 0 unmapped
    own_map = [{"containerID": 1000, "hostID": 100042, "size": 2}]
    own = {**plain, "destination": "/own", "uidMappings": own_map, "gidMappings": own_map}
    script = "for d in plain same own; do stat -c '%n %u:%g' /$d/user /$d/root; done; touch /same/new"
    bundle = idmap_bundle(os.path.join(open_dir, "b"), script, [plain, same, own])
    res = rt("run", "--bundle", bundle, rt.new_id())
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "/plain/user 65534:65534",
        "/plain/root 65534:65534",
        "/same/user 1000:1001",
        "/same/root 0:0",
        "/own/user 42:43",
        "/own/root 65534:65534",
    ]
    # what the container's root made through the idmapped mount is the host's root's on disk
    st = os.stat(os.path.join(source, "new"))
    assert (st.st_uid, st.st_gid) == (0, 0)


def test_idmap_refused_where_the_filesystem_cannot(rt: Runtime, open_dir: str) -> None:
    """ramfs has no FS_ALLOW_IDMAP (ext4, tmpfs, overlay, xfs, btrfs here do)."""
    ram = os.path.join(open_dir, "ram")
    os.mkdir(ram)
    subprocess.run(["mount", "-t", "ramfs", "ocirt-test", ram], check=True)
    try:
        source = os.path.join(ram, "src")
        os.mkdir(source)
        m = {"destination": "/mnt", "type": "bind", "source": source, "options": ["rbind", "idmap"]}
        bundle = idmap_bundle(os.path.join(open_dir, "b"), "true", [m])
        res = rt("run", "--bundle", bundle, rt.new_id())
    finally:
        subprocess.run(["umount", ram], check=True)
    index = len(base_config(["true"])["mounts"])
    assert res.returncode == 1
    assert res.stderr == (
        f"ocirt: mounts[{index}] (/mnt): idmap {source}: Invalid argument "
        "(the ramfs filesystem does not support idmapped mounts)\n"
    )


def test_idmap_needs_a_bind_mount_and_mappings(rt: Runtime, open_dir: str) -> None:
    index = len(base_config(["true"])["mounts"])
    tmpfs = {"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]}
    bundle = idmap_bundle(os.path.join(open_dir, "b1"), "true", [tmpfs])
    res = rt("run", "--bundle", bundle, rt.new_id())
    assert (res.returncode, res.stderr) == (
        1,
        f"ocirt: config.json: mounts[{index}].options: an idmapped mount must be a bind mount\n",
    )
    config = base_config(["true"])  # no user namespace: no mappings to borrow
    config["mounts"].append({"destination": "/mnt", "type": "bind", "source": open_dir, "options": ["idmap"]})
    make_bundle(os.path.join(open_dir, "b2"), ["true"], config)
    res = rt("run", "--bundle", os.path.join(open_dir, "b2"), rt.new_id())
    assert res.returncode == 1
    assert res.stderr == (
        f"ocirt: config.json: mounts[{index}].uidMappings: an idmapped mount needs uidMappings "
        "and gidMappings (its own or the container's)\n"
    )

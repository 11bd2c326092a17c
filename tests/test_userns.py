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

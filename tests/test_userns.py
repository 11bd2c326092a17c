"""User namespaces: bind sources the mapped root cannot reach, id-mapped mounts, rootless.

runc 1.1.5 (Debian's) is the reference: the same bundle runs under both and the container
must see the same thing.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import OCIRT, Runtime
from integration.images import rootfs_tar
from ocirt.testing.bundle import base_config, make_bundle, make_rootfs

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


class RootlessUser:
    """A throwaway unprivileged user with a subordinate id range and a runtime dir, as a
    login would give it; everything it made is undone by ``remove``."""

    def __init__(self, base: str) -> None:
        self.name = f"ocirt-rl-{uuid.uuid4().hex[:8]}"
        self.made_run_user = not os.path.isdir("/run/user")
        subprocess.run(["useradd", "-M", "-U", "-s", "/usr/sbin/nologin", self.name], check=True)
        self.uid, self.gid = int(_id(self.name, "-u")), int(_id(self.name, "-g"))
        self.sub = _free_subid_start()
        ids = f"{self.sub}-{self.sub + 65535}"
        subprocess.run(["usermod", "--add-subuids", ids, "--add-subgids", ids, self.name], check=True)
        self.xdg = f"/run/user/{self.uid}"
        os.makedirs(self.xdg, 0o700)
        os.chown(self.xdg, self.uid, self.gid)
        self.home = os.path.join(base, "home")
        os.mkdir(self.home, 0o755)
        os.chown(self.home, self.uid, self.gid)
        self.containers: list[tuple[str, str]] = []  # (runtime, id) to force-delete
        self.grants = grant_traverse([OCIRT, sys.executable], self.uid)

    def __call__(self, *argv: str, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": self.home, "USER": self.name}
        env["XDG_RUNTIME_DIR"] = self.xdg
        # files, not pipes: a detached container keeps its stdio open (see conftest.Runtime)
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            res = subprocess.run(
                list(argv),
                user=self.uid,
                group=self.gid,
                extra_groups=[],
                env=env,
                cwd=cwd or self.home,
                stdout=out,
                stderr=err,
                text=True,
                timeout=60,
                stdin=subprocess.DEVNULL,
            )
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(res.args, res.returncode, out.read(), err.read())

    def bundle(self, runtime: str, script: str, edit: Any = None) -> str:
        """``<runtime> spec --rootless``, run by this user, with ``sh -c script`` as process."""
        path = os.path.join(self.home, f"{os.path.basename(runtime)}-{uuid.uuid4().hex[:6]}")
        os.mkdir(path)
        os.chown(path, self.uid, self.gid)
        res = self(runtime, "spec", "--rootless", cwd=path)
        assert res.returncode == 0, f"{runtime} spec --rootless: {res.stderr}"
        with open(os.path.join(path, "config.json")) as f:
            config = json.load(f)
        config["process"]["terminal"] = False
        config["process"]["args"] = ["sh", "-c", script]
        if edit is not None:
            edit(config)
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(config, f)
        make_rootfs(os.path.join(path, "rootfs"))
        for top, dirs, files in os.walk(path):
            for name in [*dirs, *files, ""]:
                os.lchown(os.path.join(top, name), self.uid, self.gid)
        return path

    def run(self, runtime: str, bundle: str, *flags: str) -> subprocess.CompletedProcess[str]:
        cid = f"ocirt-test-{uuid.uuid4().hex[:10]}"
        self.containers.append((runtime, cid))
        return self(runtime, "run", *flags, cid, cwd=bundle)

    def delete_containers(self) -> None:
        for runtime, cid in self.containers:
            self(runtime, "delete", "--force", cid)

    def remove(self) -> None:
        self.delete_containers()
        for pid in _pids_of(self.uid):  # processes the tests started as this user
            os.kill(pid, 9)
        deadline = time.monotonic() + 10
        while _pids_of(self.uid) and time.monotonic() < deadline:
            time.sleep(0.05)
        subprocess.run(["userdel", self.name], check=False)
        for name in os.listdir("/dev/shm"):  # podman's rootless lock file
            path = os.path.join("/dev/shm", name)
            if os.lstat(path).st_uid == self.uid:
                os.unlink(path)
        for path in ("/etc/subuid", "/etc/subgid"):
            _drop_lines(path, f"{self.name}:")
        shutil.rmtree(self.xdg, ignore_errors=True)
        revoke(self.grants)
        if self.made_run_user:
            shutil.rmtree("/run/user", ignore_errors=True)


_ACL = "system.posix_acl_access"


def grant_traverse(paths: list[str], uid: int) -> list[tuple[str, int]]:
    """The checkout may live under a private directory (/root): give the user, and only
    it, search permission on each such ancestor with a POSIX ACL, undone by ``revoke``."""
    grants: list[tuple[str, int]] = []
    dirs = {d for p in paths for d in _ancestors(p) | _ancestors(os.path.realpath(p))}
    try:
        for directory in sorted(dirs):
            mode = os.stat(directory).st_mode
            if mode & stat.S_IXOTH:
                continue
            assert _ACL not in os.listxattr(directory), f"{directory} has an ACL already: grant by hand"
            os.setxattr(directory, _ACL, _acl(mode, uid))
            grants.append((directory, stat.S_IMODE(mode)))
    except BaseException:
        revoke(grants)
        raise
    return grants


def revoke(grants: list[tuple[str, int]]) -> None:
    for directory, mode in grants:
        os.removexattr(directory, _ACL)
        os.chmod(directory, mode)  # the ACL's mask had replaced the group bits


def _ancestors(path: str) -> set[str]:
    out, path = set(), os.path.dirname(os.path.abspath(path))
    while path != "/":
        out.add(path)
        path = os.path.dirname(path)
    return out


def _acl(mode: int, uid: int) -> bytes:
    """posix_acl_xattr format: version 2, then (tag, perm, id) sorted by tag: the mode's
    owner, ``uid`` with search, the group, a mask letting search through, the others."""
    undefined = 0xFFFFFFFF
    group = (mode >> 3) & 7
    entries = [
        (0x01, (mode >> 6) & 7, undefined),
        (0x02, 1, uid),
        (0x04, group, undefined),
        (0x10, group | 1, undefined),
        (0x20, mode & 7, undefined),
    ]
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


def _id(name: str, flag: str) -> str:
    return subprocess.run(["id", flag, name], capture_output=True, text=True, check=True).stdout.strip()


def _free_subid_start() -> int:
    """Past every range /etc/subuid and /etc/subgid already hand out, and past the 100000
    range the other tests map."""
    end = 1_000_000
    for path in ("/etc/subuid", "/etc/subgid"):
        if os.path.exists(path):
            with open(path) as f:
                for line in f:
                    parts = line.strip().split(":")
                    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                        end = max(end, int(parts[1]) + int(parts[2]))
    return (end + 65535) // 65536 * 65536


def _drop_lines(path: str, prefix: str) -> None:
    with open(path) as f:
        lines = f.readlines()
    kept = [line for line in lines if not line.startswith(prefix)]
    if kept != lines:
        with open(path, "w") as f:
            f.writelines(kept)


def _pids_of(uid: int) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    pids.append(int(name))
            except FileNotFoundError:
                continue
    return pids


@pytest.fixture
def user(tmp_path: Any) -> Iterator[RootlessUser]:
    base = tempfile.mkdtemp(prefix="ocirt-test-rootless-", dir="/tmp")
    os.chmod(base, 0o755)
    made = None
    try:
        made = RootlessUser(base)
        res = made(OCIRT, "--version")
        assert res.returncode == 0, f"{OCIRT} is not runnable by an unprivileged user: {res.stderr}"
        yield made
    finally:
        if made is not None:
            made.remove()
        shutil.rmtree(base, ignore_errors=True)
        if made is not None:
            assert not _pids_of(made.uid), "processes of the rootless user survived"


SEES = (
    "id; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; "
    "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status; grep NoNewPrivs /proc/self/status; "
    "hostname; ls /sys/fs/cgroup; cat /proc/self/cgroup; ls /dev /dev/pts; "
    "touch /x 2>/dev/null || echo read-only root; echo pid $$"
)


def test_rootless_spec_runs_as_under_runc(user: RootlessUser) -> None:
    """``runc spec --rootless`` run by an unprivileged user, under runc 1.1.5 and under
    ocirt: the container sees the same ids, maps, capabilities, mounts and cgroups."""
    bundle = user.bundle("runc", SEES)
    theirs = user.run("runc", bundle)
    ours = user.run(OCIRT, bundle)
    assert theirs.returncode == 0, theirs.stderr
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout
    assert f"0 {user.uid} 1" in " ".join(ours.stdout.split())
    # state where runc keeps its own: $XDG_RUNTIME_DIR/<runtime>, 0700 and sticky
    for name in ("runc", "ocirt"):
        st = os.stat(os.path.join(user.xdg, name))
        assert (st.st_uid, oct(st.st_mode & 0o7777)) == (user.uid, "0o1700")


def test_ocirt_spec_rootless_runs_under_both(user: RootlessUser) -> None:
    """``ocirt spec --rootless`` has runc's shape (the user's ids mapped to root, no network
    namespace, /sys bound, no resources) and runs the same under runc 1.1.5 and ocirt."""
    bundle = user.bundle(OCIRT, SEES.replace("hostname; ", ""))
    with open(os.path.join(bundle, "config.json")) as f:
        config = json.load(f)
    linux = config["linux"]
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": user.uid, "size": 1}]
    assert linux["gidMappings"] == [{"containerID": 0, "hostID": user.gid, "size": 1}]
    assert "resources" not in linux and "network" not in [ns["type"] for ns in linux["namespaces"]]
    ours, theirs = user.run(OCIRT, bundle), user.run("runc", bundle)
    assert ours.returncode == 0, ours.stderr
    assert theirs.returncode == 0, theirs.stderr
    assert ours.stdout == theirs.stdout
    assert ours.stdout.startswith("uid=0(root) gid=0(root)\n")


def test_rootless_subordinate_ids_through_newuidmap(user: RootlessUser) -> None:
    """Root is the user, 1..65536 its /etc/subuid range, mapped by the setuid helpers."""
    maps = [
        {"containerID": 0, "hostID": user.uid, "size": 1},
        {"containerID": 1, "hostID": user.sub, "size": 65536},
    ]

    def edit(config: dict[str, Any]) -> None:
        config["linux"]["uidMappings"] = config["linux"]["gidMappings"] = maps
        config["root"]["readonly"] = False
        for kind in ("bounding", "effective", "permitted"):
            config["process"]["capabilities"][kind].append("CAP_CHOWN")

    script = "cat /proc/self/uid_map /proc/self/gid_map; touch /tmp/f; chown 1000:1001 /tmp/f"
    script += "; stat -c %u:%g /tmp/f"
    outputs = []
    for runtime in ("runc", OCIRT):
        bundle = user.bundle("runc", script, edit)
        res = user.run(runtime, bundle)
        assert res.returncode == 0, f"{runtime}: {res.stderr}"
        outputs.append(res.stdout)
        st = os.stat(os.path.join(bundle, "rootfs/tmp/f"))
        assert (st.st_uid, st.st_gid) == (user.sub + 999, user.sub + 1000)
    assert outputs[1] == outputs[0]
    assert outputs[1].split()[-1] == "1000:1001"


def test_rootless_limits_without_delegation_fail_cleanly(user: RootlessUser) -> None:
    """No cgroup is delegated to the user: limits cannot hold, so the create fails (runc
    1.1.5 too) with one line naming the field, and leaves no state behind."""

    def edit(config: dict[str, Any]) -> None:
        config["linux"]["resources"] = {"memory": {"limit": 64 << 20}}

    bundle = user.bundle("runc", "true", edit)
    ours, theirs = user.run(OCIRT, bundle), user.run("runc", bundle)
    assert theirs.returncode != 0 and "cannot set memory limit" in theirs.stderr
    assert ours.returncode == 1
    error = ours.stderr.splitlines()[-1]
    field = "ocirt: config.json: linux.resources.memory"
    expected = f"{field}: needs a cgroup delegated to uid {user.uid} when rootless (/sys/fs/cgroup/memory/"
    assert error.startswith(expected), ours.stderr
    assert error.endswith(" is not writable)")
    assert os.listdir(os.path.join(user.xdg, "ocirt")) == []


def test_rootless_lifecycle(user: RootlessUser) -> None:
    """run -d, state, list, ps, exec, kill, delete, all as the user; the init is the user's
    on the host, and nothing is left in its state directory."""
    bundle = user.bundle("runc", "exec sleep 600")
    cid = f"ocirt-test-{uuid.uuid4().hex[:10]}"
    user.containers.append((OCIRT, cid))
    assert user(OCIRT, "run", "-d", cid, cwd=bundle).returncode == 0
    state = json.loads(user(OCIRT, "state", cid).stdout)
    assert state["status"] == "running"
    assert os.stat(f"/proc/{state['pid']}").st_uid == user.uid
    assert user(OCIRT, "list", "-q").stdout.split() == [cid]
    assert json.loads(user(OCIRT, "ps", "--format", "json", cid).stdout) == [state["pid"]]
    assert user(OCIRT, "exec", cid, "id", "-u").stdout == "0\n"
    paused = user(OCIRT, "pause", cid)
    assert (paused.returncode, paused.stderr) == (
        1,
        f"ocirt: container {cid!r} has no cgroup to freeze (rootless, none delegated)\n",
    )
    assert user(OCIRT, "kill", cid, "KILL").returncode == 0
    deadline = time.monotonic() + 10
    while json.loads(user(OCIRT, "state", cid).stdout)["status"] != "stopped":
        assert time.monotonic() < deadline, "the container never stopped"
        time.sleep(0.05)
    assert user(OCIRT, "delete", cid).returncode == 0
    assert os.listdir(os.path.join(user.xdg, "ocirt")) == []


def test_rootless_flag(user: RootlessUser) -> None:
    """runc's ``--rootless true|false|auto``: false makes the user's run try the cgroup it
    cannot make, and fail on it, leaving nothing; a bad value is refused."""
    bundle = user.bundle("runc", "true")
    cid = f"ocirt-test-{uuid.uuid4().hex[:10]}"
    user.containers.append((OCIRT, cid))
    refused = user(OCIRT, "--rootless", "false", "run", cid, cwd=bundle)
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[-1].startswith("ocirt: creating cgroup /sys/fs/cgroup/")
    assert refused.stderr.endswith(": Permission denied\n")
    assert os.listdir(os.path.join(user.xdg, "ocirt")) == []
    bad = user(OCIRT, "--rootless", "maybe", "run", cid, cwd=bundle)
    assert (bad.returncode, bad.stderr) == (
        1,
        "ocirt: --rootless: invalid value 'maybe' (true, false or auto)\n",
    )
    assert user(OCIRT, "--rootless", "true", "run", cid, cwd=bundle).returncode == 0


def test_ridmap_reaches_submounts_idmap_does_not(rt: Runtime, open_dir: str) -> None:
    """An rbind's submount (a tmpfs here) takes the mapping only with ``ridmap``."""
    source = owners_source(open_dir)
    sub = os.path.join(source, "sub")
    os.mkdir(sub)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0777", "ocirt-test", sub], check=True)
    try:
        with open(os.path.join(sub, "user"), "w") as f:
            f.write("user")
        os.chown(os.path.join(sub, "user"), 1000, 1001)
        top = {"destination": "/top", "type": "bind", "source": source, "options": ["rbind", "idmap"]}
        rec = {**top, "destination": "/rec", "options": ["rbind", "ridmap"]}
        script = "stat -c '%n %u:%g' /top/user /top/sub/user /rec/user /rec/sub/user"
        bundle = idmap_bundle(os.path.join(open_dir, "b"), script, [top, rec])
        res = rt("run", "--bundle", bundle, rt.new_id())
    finally:
        subprocess.run(["umount", sub], check=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "/top/user 1000:1001",
        "/top/sub/user 65534:65534",
        "/rec/user 1000:1001",
        "/rec/sub/user 1000:1001",
    ]


@pytest.fixture
def delegated(user: RootlessUser) -> Iterator[str]:
    """A cgroup in every v1 hierarchy given to the user, as an admin delegates one (the
    name avoids the ``ocirt`` prefix other suites' session cleanups remove)."""
    assert not os.path.exists("/sys/fs/cgroup/cgroup.controllers"), "this test delegates v1 cgroups only"
    name = f"userns-deleg-{uuid.uuid4().hex[:8]}"
    made = []
    try:
        for hierarchy in sorted(os.listdir("/sys/fs/cgroup")):
            top = os.path.join("/sys/fs/cgroup", hierarchy)
            if os.path.islink(top) or not os.path.isdir(top) or hierarchy == "unified":
                continue
            path = os.path.join(top, name)
            os.mkdir(path)
            made.append(path)
            for entry in ["", *os.listdir(path)]:
                os.chown(os.path.join(path, entry), user.uid, user.gid)
        yield name
    finally:
        user.delete_containers()
        for path in made:
            for sub in os.listdir(path):  # what a runtime left, if the test failed early
                if os.path.isdir(os.path.join(path, sub)):
                    os.rmdir(os.path.join(path, sub))
            os.rmdir(path)


def test_rootless_in_a_delegated_cgroup(user: RootlessUser, delegated: str) -> None:
    """With a delegated cgroup the limits hold, and the container is placed as runc places
    it (runc 1.1.5, same bundle): every v1 hierarchy but the unified one, devices rules
    skipped; both remove their cgroup afterwards."""

    def edit(config: dict[str, Any]) -> None:
        config["linux"]["cgroupsPath"] = f"/{delegated}/c1"
        config["linux"]["resources"] = {"pids": {"limit": 10}}

    script = "cat /proc/self/cgroup; cat /sys/fs/cgroup/pids/pids.max"
    bundle = user.bundle("runc", script, edit)
    theirs, ours = user.run("runc", bundle), user.run(OCIRT, bundle)
    assert theirs.returncode == 0, theirs.stderr
    assert (ours.returncode, ours.stdout) == (0, theirs.stdout), ours.stderr
    assert f"pids:/{delegated}/c1\n" in ours.stdout and ours.stdout.endswith("\n10\n")
    assert not os.path.exists(f"/sys/fs/cgroup/pids/{delegated}/c1")


def test_rootless_podman_on_ocirt_as_on_runc(user: RootlessUser) -> None:
    """podman run by the user (its own user namespace from /etc/subuid, catatonit, conmon)
    with ``--runtime ocirt``: the container sees what it sees with ``--runtime runc``."""
    workdir = os.path.join(user.home, "image")
    os.mkdir(workdir)
    image = rootfs_tar(workdir)
    os.chmod(image, 0o644)
    podman = [
        "podman",
        *("--root", os.path.join(user.home, "storage"), "--runroot", os.path.join(user.xdg, "containers")),
        *("--storage-driver", "vfs", "--events-backend", "file", "--cgroup-manager", "cgroupfs"),
    ]
    imported = user(*podman, "import", image, "localhost/ocirt-rootless:it")
    assert imported.returncode == 0, imported.stderr
    seen = {}
    try:
        for runtime in ("runc", OCIRT):
            run = ["run", "--rm", "--network", "none", "--runtime", runtime, "localhost/ocirt-rootless:it"]
            res = user(*podman, *run, "sh", "-c", SEES.replace("hostname; ", ""))
            assert res.returncode == 0, f"{runtime}: {res.stderr}"
            seen[runtime] = res.stdout
    finally:
        user(*podman, "rm", "--all", "--force")
        user(*podman, "rmi", "--all", "--force")
    assert seen[OCIRT] == seen["runc"]
    assert f"0 {user.uid} 1 1 " in " ".join(seen[OCIRT].split())  # root, then the subuid range


def test_rootless_ids_outside_the_users_ranges(user: RootlessUser) -> None:
    """newuidmap refuses a range /etc/subuid does not give the user: one line naming the
    field with the helper's reason, as runc fails too, and nothing left behind."""
    outside = user.sub + 65536 * 4

    def edit(config: dict[str, Any]) -> None:
        config["linux"]["uidMappings"] = [
            {"containerID": 0, "hostID": user.uid, "size": 1},
            {"containerID": 1, "hostID": outside, "size": 1000},
        ]

    bundle = user.bundle("runc", "true", edit)
    ours, theirs = user.run(OCIRT, bundle), user.run("runc", bundle)
    assert theirs.returncode != 0
    assert ours.returncode == 1
    error = ours.stderr.splitlines()[-1]
    assert error.startswith("ocirt: config.json: linux.uidMappings: newuidmap failed (newuidmap: "), error
    assert error.endswith(" not allowed)"), error
    assert os.listdir(os.path.join(user.xdg, "ocirt")) == []

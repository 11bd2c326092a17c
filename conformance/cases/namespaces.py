"""config-linux.md Namespaces and User namespace mappings: every kind new, joined by path and
inherited, compared by the namespace inode the kernel shows in /proc/<pid>/ns."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from ocirt.conformance.harness import Context
from ocirt.conformance.model import MUST, SHOULD, Case, Fail, NotApplicable, add, expect
from ocirt.conformance.probe import probe, refused

CL = "config-linux.md"
# spec type -> file under /proc/<pid>/ns
KINDS = {
    "pid": "pid",
    "network": "net",
    "ipc": "ipc",
    "uts": "uts",
    "mount": "mnt",
    "user": "user",
    "cgroup": "cgroup",
    "time": "time",
}
MAPPING = [{"containerID": 0, "hostID": 100000, "size": 65536}]
# the first spec version with each kind; time namespaces came with 1.2.0
VERSION = {"time": "1.2.0"}
TIME_NOTE = {"time": " runc 1.1.5 has no time namespaces; crun 1.8 refuses ociVersion 1.2.0."}


def _missing(kind: str) -> str | None:
    if not os.path.exists(f"/proc/self/ns/{KINDS[kind]}"):
        return f"kernel without {kind} namespaces (/proc/self/ns/{KINDS[kind]} missing)"
    return None


def with_ns(cfg: dict[str, Any], kind: str, path: str | None = None) -> None:
    spaces = [n for n in cfg["linux"]["namespaces"] if n["type"] != kind]
    spaces.append({"type": kind, "path": path} if path else {"type": kind})
    cfg["linux"]["namespaces"] = spaces
    if kind == "user":
        cfg["linux"]["uidMappings"] = MAPPING
        cfg["linux"]["gidMappings"] = MAPPING


def _host(kind: str) -> str:
    return os.readlink(f"/proc/self/ns/{KINDS[kind]}")


def _new_case(kind: str) -> Callable[[Context], None]:
    def check(ctx: Context) -> None:
        if reason := _missing(kind):
            raise NotApplicable(reason)
        cfg = ctx.config(["readlink", f"/proc/self/ns/{KINDS[kind]}"], VERSION.get(kind, "1.0.2"))
        with_ns(cfg, kind)
        seen = ctx.output(cfg).strip()
        expect(f"{kind} namespace is new", seen != _host(kind) and seen.startswith(KINDS[kind]), True)

    check.__doc__ = (
        f"If path is not specified, the runtime MUST create a new {kind} namespace." + TIME_NOTE.get(kind, "")
    )
    return check


def _holder(ctx: Context, kind: str, version: str) -> int:
    """A process in a new namespace of ``kind``: a created container, or for a mount namespace
    a host process (a container's own mount namespace no longer shows the host's paths)."""
    if kind == "mount":
        proc = ctx.helper(["unshare", "--mount", "--propagation", "slave", "sleep", "300"])
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{proc.pid}/ns/mnt") == _host(kind):
            if time.monotonic() > deadline:
                raise Fail("unshare --mount", "no new mount namespace in 5 s", "one")
            time.sleep(0.01)
        return proc.pid
    cfg = ctx.config(["sleep", "300"], version)
    with_ns(cfg, kind)
    holder, _ = ctx.create(cfg)
    return ctx.pid(holder)


def _join_case(kind: str) -> Callable[[Context], None]:
    def check(ctx: Context) -> None:
        if reason := _missing(kind):
            raise NotApplicable(reason)
        version = VERSION.get(kind, "1.0.2")
        path = f"/proc/{_holder(ctx, kind, version)}/ns/{KINDS[kind]}"
        want = os.readlink(path)
        cfg = ctx.config(["readlink", f"/proc/self/ns/{KINDS[kind]}"], version)
        # a joined user namespace keeps its own mappings; the config repeats them, as runc wants
        with_ns(cfg, kind, path)
        expect(f"{kind} namespace joined by path", ctx.output(cfg).strip(), want)

    check.__doc__ = f"""With a path, the runtime MUST place the container process in that {kind}
    namespace (another container's; for mount, a host process's)."""
    check.__doc__ += TIME_NOTE.get(kind, "")
    if kind == "user":
        check.__doc__ += """ runc 1.1.5 wants the mappings repeated in the
    config, so the case gives them (the joined namespace's own)."""
    return check


for _kind in KINDS:
    add(Case(f"namespaces.new.{_kind}", CL, "Namespaces", MUST, _new_case(_kind)))
for _kind in KINDS:
    add(Case(f"namespaces.join.{_kind}", CL, "Namespaces", MUST, _join_case(_kind)))


def _inherit_case(kind: str) -> Callable[[Context], None]:
    def check(ctx: Context) -> None:
        cfg = ctx.config(["readlink", f"/proc/self/ns/{KINDS[kind]}"])
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != kind]
        if kind == "uts":
            del cfg["hostname"]
        expect(f"{kind} namespace", ctx.output(cfg).strip(), _host(kind))

    check.__doc__ = f"A {kind} namespace not listed MUST be the runtime's own (inherited)."
    return check


for _kind in ("network", "ipc", "uts", "cgroup"):
    add(Case(f"namespaces.inherit.{_kind}", CL, "Namespaces", MUST, _inherit_case(_kind)))


def _rootfs_view(ctx: Context, cfg: dict[str, Any]) -> str:
    """Runs ``cfg`` with a marker file in its rootfs; its output is the mount namespace it
    saw and the marker's text, which only a process rooted in the rootfs reads."""
    cfg["process"]["args"] = ["sh", "-c", "readlink /proc/self/ns/mnt; cat /marker"]
    cid, bundle = ctx.prepare(cfg)
    with open(os.path.join(bundle, "rootfs", "marker"), "w") as f:
        f.write("in the rootfs\n")
    res = ctx.cli("run", "--bundle", bundle, cid, out=ctx.path(cid))
    if not res.ok:
        raise Fail("container run", res.brief(), "exit 0")
    return res.out.strip()


def _inherit_mount(ctx: Context) -> None:
    cfg = ctx.config(["true"])
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "mount"]
    # runc refuses these without a mount namespace: they would act on the host's paths
    cfg["linux"]["maskedPaths"], cfg["linux"]["readonlyPaths"] = [], []
    expect("mount namespace, rootfs", _rootfs_view(ctx, cfg), f"{_host('mount')}\nin the rootfs")


_inherit_mount.__doc__ = """A mount namespace not listed MUST be the runtime's own (inherited): the
container still gets its root (runc and crun mount in the runtime's namespace and chroot)."""
add(Case("namespaces.inherit.mount", CL, "Namespaces", MUST, _inherit_mount))


def _join_mount_rootfs(ctx: Context) -> None:
    holder = _holder(ctx, "mount", "1.0.2")
    path = f"/proc/{holder}/ns/mnt"
    cfg = ctx.config(["true"])
    with_ns(cfg, "mount", path)
    expect("mount namespace, rootfs", _rootfs_view(ctx, cfg), f"{os.readlink(path)}\nin the rootfs")


_join_mount_rootfs.__doc__ = """A mount namespace joined by path still gets root.path as the
container's root (runc sets up the rootfs and pivots inside the joined namespace)."""
add(Case("namespaces.join.mount-rootfs", CL, "Namespaces", MUST, _join_mount_rootfs))


def _dup(cfg: dict[str, Any], ctx: Context) -> None:
    cfg["linux"]["namespaces"].append({"type": "network"})


def _wrong_type(cfg: dict[str, Any], ctx: Context) -> None:
    with_ns(cfg, "network", "/proc/self/ns/ipc")


def _not_ns(cfg: dict[str, Any], ctx: Context) -> None:
    with_ns(cfg, "network", "/etc/hostname")


refused(
    "namespaces.duplicate",
    CL,
    "Namespaces",
    _dup,
    doc="Duplicated namespaces with the same type MUST generate an error.",
)
refused(
    "namespaces.path-wrong-type",
    CL,
    "Namespaces",
    _wrong_type,
    doc="The runtime MUST generate an error if path is not a namespace of type type.",
)
refused(
    "namespaces.path-not-namespace",
    CL,
    "Namespaces",
    _not_ns,
    doc="A path that is no namespace at all cannot be joined: an error.",
)


def _user(cfg: dict[str, Any], ctx: Context) -> None:
    with_ns(cfg, "user")


def _user_split(cfg: dict[str, Any], ctx: Context) -> None:
    with_ns(cfg, "user")
    cfg["linux"]["uidMappings"] = [
        {"containerID": 0, "hostID": 200000, "size": 1000},
        {"containerID": 1000, "hostID": 300000, "size": 1},
    ]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 400000, "size": 2000}]


MAPS = "cat /proc/self/uid_map /proc/self/gid_map | tr -s ' '"
probe(
    "userns.uid-map",
    CL,
    "User namespace mappings",
    MAPS,
    "0 100000 65536\n 0 100000 65536",
    _user,
    doc="uidMappings and gidMappings become the user namespace's uid_map and gid_map.",
)
probe(
    "userns.multiple-ranges",
    CL,
    "User namespace mappings",
    MAPS,
    "0 200000 1000\n 1000 300000 1\n 0 400000 2000",
    _user_split,
    doc="Several mapping ranges are all written, in order.",
)
probe(
    "userns.root-inside",
    CL,
    "User namespace mappings",
    "id -u; touch /tmp/x && stat -c %u /tmp/x",
    "0\n0",
    _user,
    doc="Container uid 0 is mapped: the process is root in its namespace and owns what it makes.",
)
probe(
    "namespaces.pid.init",
    CL,
    "Namespaces",
    "set -- /proc/[0-9]*; echo $$ $*",
    "1 /proc/1",
    doc="In a new pid namespace the process is pid 1 and sees no other process.",
)
probe(
    "namespaces.network.lo-only",
    CL,
    "Namespaces",
    "ls /sys/class/net",
    "lo",
    doc="A new network namespace has its own stack: only a loopback device.",
)


def _cgroupns(cfg: dict[str, Any], ctx: Context) -> None:
    with_ns(cfg, "cgroup")


probe(
    "namespaces.cgroup.root",
    CL,
    "Namespaces",
    "cut -d: -f3 /proc/self/cgroup | sort -u",
    "/",
    _cgroupns,
    doc="In a new cgroup namespace the container's cgroup is the root of its view.",
)


def _no_chown(ctx: Context) -> None:
    cfg = ctx.config(["touch", "/tmp/made"])
    with_ns(cfg, "user")
    res = ctx.run(cfg)
    rootfs = os.path.join(ctx.bundle_of(ctx.ids[-1]), "rootfs")
    owners = {os.lstat(os.path.join(rootfs, p)).st_uid for p in ("bin", "bin/busybox", "etc/passwd")}
    expect("run", res.brief(), "exit 0")
    expect("owners of the rootfs files on the host", owners, {0})


_no_chown.__doc__ = (
    "The runtime SHOULD NOT modify the ownership of referenced filesystems to realize the mapping."
)
add(Case("userns.no-chown", CL, "User namespace mappings", SHOULD, _no_chown))

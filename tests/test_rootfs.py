"""The container's filesystem view, built for real in forked children.

Each test forks a child that unshares a mount namespace (and a user or cgroup namespace
where needed), runs ``setup_rootfs``/``finalize_rootfs`` on a busybox rootfs, looks around
from inside and sends what it saw back through a pipe. The mounts die with the child's
namespace; the fixture still checks that none of them reached the host.
"""

from __future__ import annotations

import ast
import os
import shutil
import signal
import stat
import tempfile
import traceback
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from ocirt.runtime import rootfs, syscalls
from ocirt.runtime.errors import OcirtError
from ocirt.specs.config import Config
from ocirt.testing.bundle import base_config, make_rootfs
from support import hostfacts

S = syscalls
CHILD_TIMEOUT = 60


def host_mounts_under(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if path in line]


@pytest.fixture
def bundle() -> Iterator[str]:
    """A bundle dir with a busybox rootfs; mounts found under it on the host are detached
    before removal (rmtree would otherwise walk into them) and fail the test."""
    path = tempfile.mkdtemp(prefix="ocirt-test-rootfs-")
    try:
        make_rootfs(os.path.join(path, "rootfs"))
        os.mkdir(os.path.join(path, "src"))
        with open(os.path.join(path, "src", "hello"), "w") as f:
            f.write("hello from the host\n")
        os.mkdir(os.path.join(path, "src", "sub"))
        yield path
    finally:
        leaked = host_mounts_under(path)
        for target in reversed(leaked):
            syscalls.umount2(target, S.MNT_DETACH)
        shutil.rmtree(path, ignore_errors=True)
        assert not leaked, f"mounts reached the host: {leaked}"


@pytest.fixture
def v1_pids_cgroup() -> Iterator[str]:
    """A v1 pids cgroup with a child cgroup ``marker``, to recognise it from inside."""
    path = f"/sys/fs/cgroup/pids/ocirt-test-{uuid.uuid4().hex[:8]}"
    os.mkdir(path)
    os.mkdir(os.path.join(path, "marker"))
    try:
        yield path
    finally:
        os.rmdir(os.path.join(path, "marker"))
        os.rmdir(path)


@pytest.fixture
def v2_cgroup() -> Iterator[str]:
    path = f"/sys/fs/cgroup/unified/ocirt-test-{uuid.uuid4().hex[:8]}"
    os.mkdir(path)
    os.mkdir(os.path.join(path, "marker"))
    try:
        yield path
    finally:
        os.rmdir(os.path.join(path, "marker"))
        os.rmdir(path)


def in_child(body: Callable[[], Any], flags: int = S.CLONE_NEWNS, userns: bool = False) -> Any:
    """Run ``body`` in a forked child in new namespaces and return its (repr-able) result.

    The child always leaves through ``os._exit``, so pytest never continues in it."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            out = _child_result(body, flags, userns)
            while out:
                out = out[os.write(w, out) :]
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    with os.fdopen(r, "rb") as f:
        chunks.append(f.read())
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child died"
    kind, value = ast.literal_eval(b"".join(chunks).decode())
    if kind == "error":
        pytest.fail(f"in the child:\n{value}")
    return value


def _child_result(body: Callable[[], Any], flags: int, userns: bool) -> bytes:
    signal.alarm(CHILD_TIMEOUT)
    try:
        if userns:
            _enter_userns(flags)
        else:
            syscalls.unshare(flags)
        return repr(("ok", body())).encode()
    except BaseException:
        return repr(("error", traceback.format_exc())).encode()


def _enter_userns(flags: int) -> None:
    """A user namespace where this root is root again: a process may map its own ids."""
    syscalls.unshare(S.CLONE_NEWUSER | flags)
    for name, text in (("setgroups", "deny"), ("uid_map", "0 0 1"), ("gid_map", "0 0 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)


PROC: dict[str, Any] = {"destination": "/proc", "type": "proc", "source": "proc"}
# a user namespace may mount proc only for a pid namespace it owns: tests bind the host's
PROC_BIND: dict[str, Any] = {
    "destination": "/proc",
    "type": "bind",
    "source": "/proc",
    "options": ["rbind"],
}


def config(mounts: list[dict[str, Any]], proc: bool = True, **linux: Any) -> dict[str, Any]:
    """A minimal config; /proc comes first so the child can read its mount table."""
    entries = [PROC, *mounts] if proc else mounts
    return {"ociVersion": "1.3.0", "root": {"path": "rootfs"}, "mounts": entries, "linux": linux}


def setup(
    raw: dict[str, Any],
    bundle: str,
    *,
    no_pivot: bool = False,
    cgroup_paths: dict[str, str] | None = None,
    cgroupns: bool = False,
    userns: bool = False,
) -> Config:
    cfg = Config(raw)
    rootfs.setup_rootfs(
        cfg,
        bundle,
        no_pivot=no_pivot,
        cgroup_paths=cgroup_paths or {},
        cgroupns=cgroupns,
        userns=userns,
    )
    return cfg


def mount_table() -> dict[str, dict[str, Any]]:
    """Mount point -> its mountinfo fields (the last mount of a point wins)."""
    with open("/proc/self/mountinfo") as f:
        lines = f.read().splitlines()
    table = {}
    for line in lines:
        head, _, tail = line.partition(" - ")
        fields, rest = head.split(), tail.split()
        table[fields[4]] = {
            "options": fields[5].split(","),
            "optional": fields[6:],
            "fstype": rest[0],
            "super": rest[2].split(","),
        }
    return table


def write_errno(path: str) -> int:
    """0 if ``path`` could be created and written, else the errno."""
    try:
        with open(path, "w") as f:
            f.write("x")
    except OSError as exc:
        return exc.errno or -1
    return 0


def node(path: str) -> tuple[str, int, int, int, int, int]:
    st = os.lstat(path)
    kind = "c" if stat.S_ISCHR(st.st_mode) else "p" if stat.S_ISFIFO(st.st_mode) else "?"
    rdev = st.st_rdev
    return kind, os.major(rdev), os.minor(rdev), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def test_default_bundle_view(bundle: str) -> None:
    raw = base_config(["sh"])
    raw["root"]["readonly"] = True
    raw["linux"]["readonlyPaths"].append("/ocirt-missing")
    raw["linux"]["maskedPaths"].append("/ocirt-missing")

    def body() -> dict[str, Any]:
        cfg = setup(raw, bundle)
        rootfs.finalize_rootfs(cfg)
        return {
            "cwd": os.getcwd(),
            "root": sorted(os.listdir("/")),
            "mounts": mount_table(),
            "null": node("/dev/null"),
            "tty": node("/dev/tty"),
            "urandom": node("/dev/urandom"),
            "links": {n: os.readlink(f"/dev/{n}") for n in ("ptmx", "fd", "stdin", "stderr")},
            "core": os.path.lexists("/dev/core"),
            "root_write": write_errno("/newfile"),
            "shm_write": write_errno("/dev/shm/file"),
            "keys": read("/proc/keys"),
            "firmware": os.listdir("/sys/firmware"),
            "firmware_write": write_errno("/sys/firmware/x"),
            "sysctl_write": write_errno("/proc/sys/kernel/hostname"),
            "proc_self": os.path.exists("/proc/self/status"),
        }

    seen = in_child(body)
    assert seen["cwd"] == "/"
    assert {"bin", "dev", "proc", "sys", "etc"} <= set(seen["root"])
    table = seen["mounts"]
    assert next(iter(table)) == "/"
    assert "ro" in table["/"]["options"]
    for point, fstype in (
        ("/proc", "proc"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
        ("/sys", "sysfs"),
        ("/sys/firmware", "tmpfs"),
        ("/proc/keys", "devtmpfs" if table["/proc/keys"]["fstype"] == "devtmpfs" else "tmpfs"),
    ):
        assert table[point]["fstype"] == fstype, point
    assert "ro" in table["/sys"]["options"] and "nosuid" in table["/sys"]["options"]
    assert "ro" in table["/proc/sys"]["options"]
    assert "size=65536k" in table["/dev"]["super"] and "mode=755" in table["/dev"]["super"]
    assert seen["null"] == ("c", 1, 3, 0o666, 0, 0)
    assert seen["tty"] == ("c", 5, 0, 0o666, 0, 0)
    assert seen["urandom"] == ("c", 1, 9, 0o666, 0, 0)
    assert seen["links"] == {
        "ptmx": "pts/ptmx",
        "fd": "/proc/self/fd",
        "stdin": "/proc/self/fd/0",
        "stderr": "/proc/self/fd/2",
    }
    assert seen["core"] == os.path.exists("/proc/kcore")
    assert seen["root_write"] == 30  # EROFS
    assert seen["shm_write"] == 0
    assert seen["keys"] == ""
    assert seen["firmware"] == []
    assert seen["firmware_write"] == 30
    assert seen["sysctl_write"] == 30
    assert seen["proc_self"]


def test_tmpfs_options_readonly_tmpfs_and_copyup(bundle: str) -> None:
    copy = os.path.join(bundle, "rootfs", "copy")
    os.makedirs(os.path.join(copy, "d"))
    with open(os.path.join(copy, "a"), "w") as f:
        f.write("from the image")
    os.symlink("a", os.path.join(copy, "l"))
    with open(os.path.join(copy, "d", "secret"), "w") as f:
        f.write("s")
    os.chmod(os.path.join(copy, "d", "secret"), 0o600)
    os.chown(os.path.join(copy, "d"), 1000, 1000)
    os.chmod(copy, 0o750)
    os.makedirs(os.path.join(bundle, "rootfs", "moded"), mode=0o755)
    mounts = [
        {
            "destination": "/t1",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["size=1m", "mode=0710", "uid=1000", "gid=1001", "nosuid", "nodev"],
        },
        {"destination": "/t2", "type": "tmpfs", "source": "tmpfs", "options": ["ro", "size=64k"]},
        {"destination": "/copy", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]},
        # podman's --mount type=tmpfs,tmpfs-mode=1770: the asked mode wins over the directory's
        {"destination": "/moded", "type": "tmpfs", "source": "tmpfs", "options": ["mode=1770", "tmpcopyup"]},
    ]

    def body() -> dict[str, Any]:
        setup(config(mounts), bundle)
        t1, vfs = os.stat("/t1"), os.statvfs("/t1")
        return {
            "mounts": mount_table(),
            "t1": (stat.S_IMODE(t1.st_mode), t1.st_uid, t1.st_gid, vfs.f_blocks * vfs.f_frsize),
            "t2_write": write_errno("/t2/x"),
            "copy": (read("/copy/a"), os.readlink("/copy/l"), read("/copy/d/secret")),
            "copy_meta": (
                stat.S_IMODE(os.stat("/copy/d/secret").st_mode),
                os.stat("/copy/d").st_uid,
            ),
            "copy_write": write_errno("/copy/new"),
            "modes": (stat.S_IMODE(os.stat("/copy").st_mode), stat.S_IMODE(os.stat("/moded").st_mode)),
        }

    seen = in_child(body)
    table = seen["mounts"]
    assert seen["t1"] == (0o710, 1000, 1001, 1024 * 1024)
    assert {"nosuid", "nodev"} <= set(table["/t1"]["options"])
    assert "ro" in table["/t2"]["options"]
    assert seen["t2_write"] == 30
    assert table["/copy"]["fstype"] == "tmpfs"
    assert seen["copy"] == ("from the image", "a", "s")
    assert seen["copy_meta"] == (0o600, 1000)
    assert seen["copy_write"] == 0
    assert not os.path.exists(os.path.join(copy, "new")), "the write went to the image"
    assert seen["modes"] == (0o750, 0o1770)


def test_bind_mounts_flags_recursion_and_propagation(bundle: str) -> None:
    src = os.path.join(bundle, "src")
    mounts = [
        {"destination": "/b1", "type": "bind", "source": src, "options": ["bind", "ro", "nosuid"]},
        {"destination": "/b2", "source": src, "options": ["rbind"]},
        {"destination": "/b3", "type": "none", "source": src, "options": ["rbind", "rro"]},
        {"destination": "/etc/hello", "type": "bind", "source": "src/hello", "options": ["bind"]},
        {"destination": "/b4", "type": "bind", "source": src, "options": ["rbind", "shared"]},
        {"destination": "/b5", "type": "bind", "source": src, "options": ["rbind", "unbindable"]},
        {
            "destination": "/proc/cpuinfo",
            "type": "bind",
            "source": "src/hello",
            "options": ["bind"],
        },
    ]

    def body() -> dict[str, Any]:
        syscalls.mount(None, "/", None, S.MS_SLAVE | S.MS_REC)
        syscalls.mount("tmpfs", os.path.join(src, "sub"), "tmpfs", 0)
        with open(os.path.join(src, "sub", "deep"), "w") as f:
            f.write("deep")
        setup(config(mounts), bundle)
        return {
            "mounts": mount_table(),
            "b1": read("/b1/hello"),
            "b1_write": write_errno("/b1/x"),
            "b1_deep": os.path.exists("/b1/sub/deep"),
            "b2_deep": os.path.exists("/b2/sub/deep"),
            "b3_write": write_errno("/b3/sub/x"),
            "file": (read("/etc/hello"), stat.S_ISREG(os.stat("/etc/hello").st_mode)),
            "cpuinfo": read("/proc/cpuinfo"),
        }

    seen = in_child(body)
    table = seen["mounts"]
    assert seen["b1"] == "hello from the host\n"
    assert {"ro", "nosuid"} <= set(table["/b1"]["options"])
    assert seen["b1_write"] == 30
    assert not seen["b1_deep"] and seen["b2_deep"]
    assert "/b2/sub" in table and "/b1/sub" not in table
    assert "ro" in table["/b3/sub"]["options"] and seen["b3_write"] == 30
    assert seen["file"] == ("hello from the host\n", True)
    assert seen["cpuinfo"] == "hello from the host\n"
    assert any(o.startswith("shared:") for o in table["/b4"]["optional"])
    assert "unbindable" in table["/b5"]["optional"]
    assert os.path.isfile(os.path.join(bundle, "rootfs", "etc", "hello"))


def test_symlinks_cannot_lead_out_of_the_rootfs(bundle: str) -> None:
    root = os.path.join(bundle, "rootfs")
    os.symlink("/etc", os.path.join(root, "evil"))
    os.symlink("../../../../../../../../var", os.path.join(root, "up"))
    os.symlink("/ocirt-test-nowhere/deeper", os.path.join(root, "dangling"))
    os.symlink("/usr/ocirt-test-marker", os.path.join(root, "evilfile"))
    os.symlink("/etc", os.path.join(root, "dev", "sneaky"))
    marker = "/usr/ocirt-test-marker"
    mounts: list[dict[str, Any]] = [
        {"destination": "/evil", "type": "tmpfs", "source": "tmpfs", "options": ["mode=0701"]},
        {"destination": "/up", "type": "bind", "source": "src", "options": ["bind"]},
        {"destination": "/dangling/x", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/evilfile", "type": "bind", "source": "src/hello", "options": ["bind"]},
    ]
    devices = [{"path": "/dev/sneaky/ocirt-null", "type": "c", "major": 1, "minor": 3}]

    def body() -> dict[str, Any]:
        setup(config(mounts, devices=devices), bundle)
        return {
            "mounts": list(mount_table()),
            "etc_mode": stat.S_IMODE(os.stat("/etc").st_mode),
            "var_hello": read("/var/hello"),
            "marker": read(marker),
            "null": node("/etc/ocirt-null"),
        }

    seen = in_child(body)
    assert {"/etc", "/var", "/ocirt-test-nowhere/deeper/x", marker} <= set(seen["mounts"])
    assert seen["etc_mode"] == 0o701
    assert seen["var_hello"] == "hello from the host\n"
    assert seen["marker"] == "hello from the host\n"
    assert seen["null"][:3] == ("c", 1, 3)
    assert not os.path.lexists(marker)
    assert not os.path.lexists("/ocirt-test-nowhere")
    assert not os.path.lexists("/etc/ocirt-null")
    assert os.path.isdir(os.path.join(root, "ocirt-test-nowhere", "deeper", "x"))
    assert os.path.isfile(os.path.join(root, "usr", "ocirt-test-marker"))


def test_linux_devices_replace_defaults_and_keep_owner_and_mode(bundle: str) -> None:
    mounts = [{"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]}]
    devices = [
        {
            "path": "/dev/mynull",
            "type": "c",
            "major": 1,
            "minor": 3,
            "fileMode": 0o640,
            "uid": 1000,
            "gid": 1001,
        },
        {"path": "/dev/sub/fifo", "type": "p", "fileMode": 0o600},
        {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600},
    ]

    def body() -> dict[str, Any]:
        setup(config(mounts, devices=devices), bundle)
        return {p: node(p) for p in ("/dev/mynull", "/dev/sub/fifo", "/dev/null", "/dev/zero")}

    seen = in_child(body)
    assert seen["/dev/mynull"] == ("c", 1, 3, 0o640, 1000, 1001)
    assert seen["/dev/sub/fifo"][0] == "p" and seen["/dev/sub/fifo"][3] == 0o600
    assert seen["/dev/null"] == ("c", 1, 3, 0o600, 0, 0)
    assert seen["/dev/zero"] == ("c", 1, 5, 0o666, 0, 0)


def test_a_dev_bind_mount_gets_no_devices(bundle: str) -> None:
    mounts = [{"destination": "/dev", "type": "bind", "source": "/dev", "options": ["rbind"]}]

    def body() -> dict[str, Any]:
        setup(config(mounts), bundle)
        return {"ptmx_is_link": os.path.islink("/dev/ptmx"), "null": node("/dev/null")[:3]}

    seen = in_child(body)
    assert seen == {"ptmx_is_link": os.path.islink("/dev/ptmx"), "null": ("c", 1, 3)}
    assert os.listdir(os.path.join(bundle, "rootfs", "dev")) == []


def test_user_namespace_binds_host_device_nodes(bundle: str) -> None:
    raw = config(
        [
            PROC_BIND,
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]},
            {"destination": "/data", "type": "bind", "source": "src", "options": ["rbind", "ro"]},
        ],
        devices=[{"path": "/dev/fifo", "type": "p"}],
        readonlyPaths=["/etc"],
        maskedPaths=["/etc/passwd"],
        proc=False,
    )
    raw["root"]["readonly"] = True

    def body() -> dict[str, Any]:
        cfg = setup(raw, bundle, userns=True)
        rootfs.finalize_rootfs(cfg)
        with open("/dev/null", "w") as f:
            f.write("gone")
        return {
            "mounts": mount_table(),
            "null": node("/dev/null")[:3],
            "zero": node("/dev/zero")[:3],
            "fifo": node("/dev/fifo")[0],
            "ptmx": os.readlink("/dev/ptmx"),
            "root_write": write_errno("/x"),
            "etc_write": write_errno("/etc/x"),
            "data_write": write_errno("/data/x"),
            "passwd": read("/etc/passwd"),
        }

    seen = in_child(body, userns=True)
    table = seen["mounts"]
    assert seen["null"] == ("c", 1, 3) and seen["zero"] == ("c", 1, 5)
    assert "/dev/null" in table and "/dev/tty" in table, "device nodes should be bind mounts"
    assert "/dev/fifo" not in table and seen["fifo"] == "p"
    assert seen["ptmx"] == "pts/ptmx"
    assert seen["root_write"] == seen["etc_write"] == seen["data_write"] == 30
    assert seen["passwd"] == ""


@pytest.mark.parametrize(("options", "outcome"), [(["bind", "ro"], "ok"), (["bind", "ro", "suid"], "error")])
def test_user_namespace_keeps_locked_flags_on_remount(bundle: str, options: list[str], outcome: str) -> None:
    """A mount copied into a user namespace keeps nosuid/nodev: a ``ro`` remount must repeat
    them, and a ``suid`` asking to drop one must fail."""
    locked = os.path.join(bundle, "src", "sub")
    mounts = [
        PROC_BIND,
        {"destination": "/locked", "type": "bind", "source": locked, "options": options},
    ]

    def body() -> Any:
        syscalls.mount(None, "/", None, S.MS_SLAVE | S.MS_REC)
        syscalls.mount("tmpfs", locked, "tmpfs", S.MS_NOSUID | S.MS_NODEV)
        _enter_userns(S.CLONE_NEWNS)
        try:
            setup(config(mounts, proc=False), bundle, userns=True)
        except OcirtError as exc:
            return str(exc)
        return mount_table()["/locked"]["options"]

    seen = in_child(body)
    if outcome == "ok":
        assert {"ro", "nosuid", "nodev"} <= set(seen)
    else:
        assert seen == (
            "mounts[1] (/locked): remount (the host locked flags the config clears): Operation not permitted"
        )


@hostfacts.V1_HYBRID
def test_cgroup_v1_binds_the_container_cgroups(bundle: str, v1_pids_cgroup: str) -> None:
    ro = ["nosuid", "noexec", "nodev", "ro"]
    mounts = [
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ro},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ro},
    ]

    def body() -> dict[str, Any]:
        setup(config(mounts), bundle, cgroup_paths={"pids": v1_pids_cgroup})
        return {
            "mounts": mount_table(),
            "list": sorted(os.listdir("/sys/fs/cgroup")),
            "marker": os.path.isdir("/sys/fs/cgroup/pids/marker"),
            "mkdir": write_errno("/sys/fs/cgroup/pids/marker/cgroup.procs"),
        }

    seen = in_child(body)
    table = seen["mounts"]
    assert seen["list"] == ["pids"]
    assert seen["marker"]
    assert seen["mkdir"] == 30
    assert table["/sys/fs/cgroup"]["fstype"] == "tmpfs" and "ro" in table["/sys/fs/cgroup"]["options"]
    assert table["/sys/fs/cgroup/pids"]["fstype"] == "cgroup"
    assert "ro" in table["/sys/fs/cgroup/pids"]["options"]


@hostfacts.V1_HYBRID
def test_cgroup_v1_with_cgroup_namespace_mounts_each_hierarchy(bundle: str, v1_pids_cgroup: str) -> None:
    mounts: list[dict[str, Any]] = [
        {"destination": "/sys", "type": "sysfs", "source": "sysfs"},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro"]},
    ]

    def body() -> dict[str, Any]:
        with open(os.path.join(v1_pids_cgroup, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
        syscalls.unshare(S.CLONE_NEWCGROUP)
        setup(config(mounts), bundle, cgroup_paths={"pids": v1_pids_cgroup}, cgroupns=True)
        return {
            "mounts": mount_table(),
            "list": sorted(os.listdir("/sys/fs/cgroup")),
            "marker": os.path.isdir("/sys/fs/cgroup/pids/marker"),
        }

    seen = in_child(body)
    assert {"cpu", "memory", "pids", "systemd"} <= set(seen["list"])
    assert "unified" not in seen["list"]
    assert seen["marker"]
    pids = seen["mounts"]["/sys/fs/cgroup/pids"]
    assert pids["fstype"] == "cgroup" and "ro" in pids["options"]
    assert "name=systemd" in seen["mounts"]["/sys/fs/cgroup/systemd"]["super"]


def test_cgroup2_binds_the_container_cgroup(bundle: str, v2_cgroup: str) -> None:
    mounts = [
        {"destination": "/sys", "type": "sysfs", "source": "sysfs"},
        {"destination": "/sys/fs/cgroup", "type": "cgroup2", "source": "cgroup2"},
    ]

    def body() -> dict[str, Any]:
        setup(config(mounts), bundle, cgroup_paths={"": v2_cgroup})
        return {
            "fstype": mount_table()["/sys/fs/cgroup"]["fstype"],
            "marker": os.path.isdir("/sys/fs/cgroup/marker"),
            "procs": os.path.exists("/sys/fs/cgroup/cgroup.procs"),
        }

    assert in_child(body) == {"fstype": "cgroup2", "marker": True, "procs": True}


def test_no_pivot_moves_the_rootfs_over_slash(bundle: str) -> None:
    def body() -> dict[str, Any]:
        setup(config([]), bundle, no_pivot=True)
        return {"root": sorted(os.listdir("/")), "busybox": os.path.isfile("/bin/busybox")}

    seen = in_child(body)
    assert {"bin", "etc", "dev"} <= set(seen["root"]) and seen["busybox"]


@pytest.mark.parametrize(("propagation", "tag"), [("private", None), ("unbindable", "unbindable")])
def test_rootfs_propagation_is_set_on_the_new_root(bundle: str, propagation: str, tag: str | None) -> None:
    def body() -> list[str]:
        setup(config([], rootfsPropagation=propagation), bundle)
        optional: list[str] = mount_table()["/"]["optional"]
        return optional

    optional = in_child(body)
    assert optional == ([tag] if tag else [])


def test_private_propagation_needs_pivot_root(bundle: str) -> None:
    def body() -> str:
        try:
            setup(config([], rootfsPropagation="rprivate"), bundle, no_pivot=True)
        except OcirtError as exc:
            return str(exc)
        return "no error"

    assert in_child(body) == ("config.json: linux.rootfsPropagation: rprivate is not safe without pivot_root")


@pytest.mark.parametrize(
    ("mount", "message"),
    [
        (
            {"destination": "/x", "type": "ocirtnosuchfs", "source": "none"},
            "mounts[0] (/x): mount ocirtnosuchfs: No such device",
        ),
        (
            {"destination": "/y", "type": "bind", "source": "missing", "options": ["bind"]},
            "mounts[0] (/y): bind source {bundle}/missing: No such file or directory",
        ),
        (
            {"destination": "/bin/sh/x", "type": "tmpfs", "source": "tmpfs"},
            "mounts[0] (/bin/sh/x): create directory /bin/sh/x in the rootfs: Not a directory",
        ),
        (
            {"destination": "/z", "type": "tmpfs", "source": "tmpfs", "options": ["size=oops"]},
            "mounts[0] (/z): mount tmpfs (size=oops): Invalid argument",
        ),
        (
            {"destination": "/bin/ls", "type": "proc", "source": "proc"},
            "mounts[0] (/bin/ls): proc must be mounted on an ordinary directory",
        ),
        (
            {"destination": "/proc/sys", "type": "tmpfs", "source": "tmpfs"},
            "mounts[0] (/proc/sys): cannot mount on /proc/sys: "
            "inside /proc only the files lxcfs emulates may be covered",
        ),
        (
            {"destination": "/proc", "type": "bind", "source": "src", "options": ["rbind"]},
            "mounts[0] (/proc): only a proc filesystem may be mounted on /proc",
        ),
        (
            {"destination": "/sneaky", "type": "tmpfs", "source": "tmpfs"},
            "mounts[0] (/sneaky): only a proc filesystem may be mounted on /proc",
        ),
        (
            {"destination": "/w", "source": "/tmp"},
            "config.json: mounts[0].type: is required unless options has bind or rbind",
        ),
    ],
)
def test_mount_errors_name_the_entry(bundle: str, mount: dict[str, Any], message: str) -> None:
    os.symlink("../proc", os.path.join(bundle, "rootfs", "sneaky"))

    def body() -> str:
        try:
            setup(config([mount], proc=False), bundle)
        except OcirtError as exc:
            return str(exc)
        return "no error"

    assert in_child(body) == message.format(bundle=bundle)

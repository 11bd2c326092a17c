"""config.md Root and Mounts, config-linux.md Default Filesystems, Rootfs Mount Propagation,
Masked Paths and Readonly Paths, runtime-linux.md File descriptors: what the container sees
of its own mount table (/proc/self/mountinfo) and files."""

from __future__ import annotations

import os
import subprocess
from typing import Any

from ocirt.conformance.harness import Context
from ocirt.conformance.model import MUST, SHOULD, Case, Fail, add, expect
from ocirt.conformance.probe import probe

CFG, CL, RL = "config.md", "config-linux.md", "runtime-linux.md"
# the mountinfo line of a mount point: optional fields (propagation) and per-mount options
MOUNTINFO = "awk '$5 == \"{point}\" {{print}}' /proc/self/mountinfo"


def _mount(*entries: dict[str, Any]) -> Any:
    def edit(cfg: dict[str, Any], ctx: Context) -> None:
        cfg["mounts"].extend(entries)

    return edit


def _host_dir(ctx: Context, name: str = "src") -> str:
    path = ctx.path(name)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "hello"), "w") as f:
        f.write("from the host\n")
    return path


def _bind(*options: str, dest: str = "/mnt") -> Any:
    def edit(cfg: dict[str, Any], ctx: Context) -> None:
        cfg["mounts"].append(
            {"destination": dest, "type": "bind", "source": _host_dir(ctx), "options": list(options)}
        )

    return edit


def _readonly_root(cfg: dict[str, Any], ctx: Context) -> None:
    cfg["root"]["readonly"] = True


def _readonly_with_tmpfs(cfg: dict[str, Any], ctx: Context) -> None:
    _readonly_root(cfg, ctx)
    cfg["mounts"].append({"destination": "/tmp/t", "type": "tmpfs", "source": "tmpfs", "options": []})


probe(
    "root.readonly",
    CFG,
    "Root",
    "touch /x 2>/dev/null && echo writable || echo readonly",
    "readonly",
    _readonly_root,
    doc="root.readonly true: the root filesystem MUST be read-only inside the container.",
)
probe(
    "root.writable",
    CFG,
    "Root",
    "touch /x && echo writable",
    "writable",
    doc="root.readonly false (the default): the root filesystem is writable.",
)
probe(
    "root.readonly-keeps-mounts",
    CFG,
    "Root",
    "touch /dev/shm/x /tmp/t/x && echo ok",
    "ok",
    _readonly_with_tmpfs,
    doc="A read-only root does not make the mounts on it read-only.",
)
probe(
    "root.is-rootfs",
    CFG,
    "Root",
    "head -1 /etc/passwd",
    "root:x:0:0:root:/root:/bin/sh",
    lambda cfg, ctx: None,
    doc="root.path: the container's / is the bundle's rootfs.",
)
probe(
    "mounts.bind",
    CFG,
    "Mounts",
    "cat /mnt/hello",
    "from the host",
    _bind("rbind"),
    doc="A bind mount shows the host directory at its destination.",
)
probe(
    "mounts.bind-ro",
    CFG,
    "Mounts",
    "cat /mnt/hello; touch /mnt/x 2>/dev/null || echo refused",
    "from the host\nrefused",
    _bind("rbind", "ro"),
    doc="The ro option makes the bind mount read-only.",
)
probe(
    "mounts.tmpfs-options",
    CFG,
    "Mounts",
    MOUNTINFO.format(point="/scratch") + " | cut -d' ' -f6",
    "ro,nosuid,nodev,noexec,relatime",
    _mount(
        {
            "destination": "/scratch",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "noexec", "ro"],
        }
    ),
    doc="Mount options reach the kernel: nosuid, nodev, noexec and ro on the mount.",
)
probe(
    "mounts.tmpfs-data",
    CFG,
    "Mounts",
    "stat -c %a /scratch; grep ' /scratch ' /proc/mounts | grep -o size=[0-9a-z]*",
    "750\nsize=1024k",
    _mount(
        {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["mode=750", "size=1m"]}
    ),
    doc="Filesystem data options (tmpfs mode and size) are passed to mount.",
)
probe(
    "mounts.order",
    CFG,
    "Mounts",
    "grep -c ' /a/b ' /proc/self/mountinfo; cat /a/b/hello",
    "1\nfrom the host",
    lambda cfg, ctx: cfg["mounts"].extend(
        [
            {"destination": "/a", "type": "tmpfs", "source": "tmpfs", "options": []},
            {"destination": "/a/b", "type": "bind", "source": _host_dir(ctx), "options": ["rbind"]},
        ]
    ),
    doc="The runtime MUST mount entries in the listed order: /a/b, listed after /a, is on top of it.",
)
probe(
    "mounts.destination-created",
    CFG,
    "Mounts",
    "cat /new/deep/dir/hello",
    "from the host",
    _bind("rbind", dest="/new/deep/dir"),
    level=SHOULD,
    doc="A destination missing in the rootfs is created (every runc-compatible runtime does).",
)
probe(
    "mounts.file-bind",
    CFG,
    "Mounts",
    "cat /etc/injected",
    "from the host",
    lambda cfg, ctx: cfg["mounts"].append(
        {
            "destination": "/etc/injected",
            "type": "bind",
            "source": os.path.join(_host_dir(ctx), "hello"),
            "options": ["bind"],
        }
    ),
    doc="A file can be bind-mounted onto a file path.",
)


def _shared_bind(option: str) -> Any:
    """A bind of a directory inside a shared mount, so there is a peer group to join or follow."""
    bind = _bind("rbind", option)

    def edit(cfg: dict[str, Any], ctx: Context) -> None:
        ctx.make_shared()
        bind(cfg, ctx)

    return edit


_LINE = MOUNTINFO.format(point="/mnt")
for _opt, _test in (
    ("rshared", f"{_LINE} | grep -q shared:"),
    ("rslave", f"{_LINE} | grep -q master: && ! {_LINE} | grep -q shared:"),
    ("rprivate", f"! {_LINE} | grep -q -e master: -e shared:"),
):
    probe(
        f"mounts.propagation.{_opt}",
        CFG,
        "Mounts",
        f"{_test} && echo yes || {_LINE}",
        "yes",
        _shared_bind(_opt),
        doc=f"The {_opt} mount option sets the propagation of a bind mount from a shared source.",
    )


def _propagation(value: str) -> Any:
    def edit(cfg: dict[str, Any], ctx: Context) -> None:
        cfg["linux"]["rootfsPropagation"] = value

    return edit


for _prop, _want in (("shared", "shared:"), ("unbindable", "unbindable")):
    probe(
        f"rootfs-propagation.{_prop}",
        CL,
        "Rootfs Mount Propagation",
        MOUNTINFO.format(point="/") + " | cut -d' ' -f7- | cut -d- -f1 | grep -o -e shared: -e master: "
        "-e unbindable | tr -d '\\n'; echo",
        _want,
        _propagation(_prop),
        doc=f"rootfsPropagation {_prop}: the root mount's propagation type."
        + {"shared": " runc 1.1.5 leaves the root private.", "unbindable": " runc 1.1.5 fails to set it up."}[
            _prop
        ],
    )


def _host_event(prop: str, want: str) -> Any:
    def check(ctx: Context) -> None:
        cfg = ctx.config(["sh", "-c", "cat /mnt/probe/flag 2>/dev/null || echo absent"])
        cfg["linux"]["rootfsPropagation"] = prop
        ctx.make_shared()
        cid, bundle = ctx.prepare(cfg)
        point = os.path.join(bundle, "rootfs", "mnt", "probe")
        os.makedirs(point)
        res = ctx.cli("create", "--bundle", bundle, cid, out=ctx.path(cid))
        expect("create", res.brief(), "exit 0")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", point], check=True)
        with open(os.path.join(point, "flag"), "w") as f:
            f.write("seen\n")
        expect("start", ctx.cli("start", cid).brief(), "exit 0")
        ctx.wait_status(cid, "stopped")
        expect("host mount made after create, seen in the container", ctx.container_output(cid).strip(), want)

    check.__doc__ = f"""rootfsPropagation {prop}: a mount made on the host under the rootfs (in
    a shared mount) after create {"reaches" if want == "seen" else "does not reach"} the container.
    runc 1.1.5 and crun 1.8 do not pass such a mount on to a slave root."""
    return check


add(Case("rootfs-propagation.slave", CL, "Rootfs Mount Propagation", MUST, _host_event("slave", "seen")))
add(
    Case("rootfs-propagation.private", CL, "Rootfs Mount Propagation", MUST, _host_event("private", "absent"))
)


def _run_prepared(ctx: Context, cfg: dict[str, Any], prepare: Any) -> str:
    """Stdout of a container run after ``prepare(rootfs)`` changed its fresh rootfs."""
    cid, bundle = ctx.prepare(cfg)
    prepare(os.path.join(bundle, "rootfs"))
    res = ctx.cli("run", "--bundle", bundle, cid, out=ctx.path(cid))
    if not res.ok:
        raise Fail("container run", res.brief(), "exit 0")
    return res.out.strip()


def _dangling(ctx: Context) -> None:
    cfg = ctx.config(["sh", "-c", "cat /abs/hello /rel/hello; ls -d /inside/made /up/made"])
    src = _host_dir(ctx)
    cfg["mounts"] += [
        {"destination": "/abs", "type": "bind", "source": src, "options": ["bind"]},
        {"destination": "/rel", "type": "bind", "source": src, "options": ["bind"]},
    ]

    def links(rootfs: str) -> None:
        os.symlink("/inside/made", os.path.join(rootfs, "abs"))
        os.symlink("../../../../../../up/made", os.path.join(rootfs, "rel"))

    out = _run_prepared(ctx, cfg, links)
    expect("container output", out, "from the host\nfrom the host\n/inside/made\n/up/made")
    expect("made on the host outside the rootfs", os.path.lexists("/up/made"), False)


_dangling.__doc__ = """A mount destination that is a dangling symlink is mounted where the link
points, resolved inside the rootfs (a target above the root stays in it), as runc does."""
add(Case("mounts.dangling-symlink", CFG, "Mounts", MUST, _dangling))


def _tmpfs_mode(ctx: Context) -> None:
    cfg = ctx.config(["stat", "-c", "%a", "/data", "/fresh"])
    cfg["mounts"] += [
        {"destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]},
        {"destination": "/fresh", "type": "tmpfs", "source": "tmpfs"},
    ]

    def directory(rootfs: str) -> None:
        os.mkdir(os.path.join(rootfs, "data"))
        os.chmod(os.path.join(rootfs, "data"), 0o1750)

    expect("modes of the tmpfs mounts", _run_prepared(ctx, cfg, directory).split(), ["1750", "1777"])


_tmpfs_mode.__doc__ = """A tmpfs mounted without a mode option keeps the mode of the directory it
covers (runc and crun); over a directory the runtime creates, tmpfs's own 1777."""
add(Case("mounts.tmpfs-keeps-mode", CFG, "Mounts", SHOULD, _tmpfs_mode))

probe(
    "default-filesystems",
    CL,
    "Default Filesystems",
    "for p in /proc /sys /dev/pts /dev/shm; do "
    "awk -v p=$p '$5 == p {print p, $(NF-2)}' /proc/self/mountinfo; done",
    "/proc proc\n/sys sysfs\n/dev/pts devpts\n/dev/shm tmpfs",
    level=SHOULD,
    doc="proc, sysfs, devpts and shm SHOULD be available (the config lists them; the runtime mounts them).",
)


def _without_proc(cfg: dict[str, Any], ctx: Context) -> None:
    cfg["mounts"] = [m for m in cfg["mounts"] if m["destination"] != "/proc"]


probe(
    "default-filesystems.no-proc",
    CL,
    "Default Filesystems",
    "ls -A /proc | wc -l; echo ran",
    "0\nran",
    _without_proc,
    doc="""The default filesystems are the config's to list, not the runtime's to need: a
    config that mounts no /proc MUST still run, its /proc left as the image has it. runc
    1.1.5 fails: it opens /proc/self/fd inside the container to close its descriptors.""",
)
probe(
    "masked-paths.file",
    CL,
    "Masked Paths",
    "cat /proc/keys | wc -c; cat /proc/timer_list | wc -c",
    "0\n0",
    needs=lambda: None if os.path.exists("/proc/timer_list") else "no /proc/timer_list on this kernel",
    doc="maskedPaths: a masked file cannot be read (it reads as empty).",
)
probe(
    "masked-paths.directory",
    CL,
    "Masked Paths",
    "ls -A /sys/firmware | wc -l; touch /sys/firmware/x 2>/dev/null || echo ro",
    "0\nro",
    doc="maskedPaths: a masked directory shows nothing and takes nothing.",
)
probe(
    "masked-paths.missing",
    CL,
    "Masked Paths",
    "echo started",
    "started",
    lambda cfg, ctx: cfg["linux"]["maskedPaths"].append("/no/such/path"),
    doc="A masked path that does not exist is skipped, not an error.",
    level=SHOULD,
)
probe(
    "readonly-paths",
    CL,
    "Readonly Paths",
    "echo 1 > /proc/sys/kernel/domainname 2>/dev/null || echo ro; cat /proc/sys/kernel/ostype",
    "ro\nLinux",
    doc="readonlyPaths: the path is readable but read-only inside the container.",
)
probe(
    "readonly-paths.missing",
    CL,
    "Readonly Paths",
    "echo started",
    "started",
    lambda cfg, ctx: cfg["linux"]["readonlyPaths"].append("/no/such/path"),
    level=SHOULD,
    doc="A read-only path that does not exist is skipped, not an error.",
)
probe(
    "dev-symlinks",
    RL,
    "Dev symbolic links",
    "for l in fd stdin stdout stderr; do echo $l $(readlink /dev/$l); done",
    "fd /proc/self/fd\nstdin /proc/self/fd/0\nstdout /proc/self/fd/1\nstderr /proc/self/fd/2",
    doc="/dev/fd, /dev/stdin, /dev/stdout and /dev/stderr MUST be these symlinks.",
)


def _descriptors(ctx: Context) -> None:
    cid = ctx.running()
    pid = ctx.pid(cid)
    # read from the host: a shell listing its own fds would see its pipes and directory handles
    expect(
        "descriptors of the container process",
        sorted(os.listdir(f"/proc/{pid}/fd"), key=int),
        ["0", "1", "2"],
    )


_descriptors.__doc__ = "By default only stdin, stdout and stderr are kept open for the application."
add(Case("file-descriptors", RL, "File descriptors", MUST, _descriptors))

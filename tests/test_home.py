"""``HOME`` for a process whose env lacks it: the uid's home in the container's own
``/etc/passwd``, else ``/``, as runc sets it (compared with runc itself)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from conftest import Runtime
from support.runc import runc_run

PASSWD = "root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000::/home/u:/bin/sh\nnohome:x:1001:1001:::/bin/sh\n"


def _bundle(rt: Runtime, uid: int, env: list[str] | None = None, args: list[str] | None = None) -> str:
    def edit(c: dict[str, Any]) -> None:
        c["process"]["user"] = {"uid": uid, "gid": uid}
        if env is not None:
            c["process"]["env"] = env

    bundle = rt.bundle(args or ["sh", "-c", 'echo "$HOME"'], edit)
    with open(os.path.join(bundle, "rootfs/etc/passwd"), "w") as f:
        f.write(PASSWD)
    return bundle


@pytest.mark.parametrize(
    ("uid", "env"),
    [(0, None), (1000, None), (1001, None), (4242, None), (1000, ["PATH=/bin", "HOME=/mine"])],
    ids=["root", "listed", "empty-home", "unlisted", "given"],
)
def test_home_as_runc_sets_it(rt: Runtime, uid: int, env: list[str] | None) -> None:
    bundle = _bundle(rt, uid, env)
    res = rt("run", "--bundle", bundle, rt.new_id())
    assert res.returncode == 0, res.stderr
    assert res.stdout == runc_run(bundle)
    want = {0: "/root", 1000: "/home/u", 1001: ""}.get(uid, "/") if env is None else "/mine"
    assert res.stdout.strip() == want


def test_exec_gets_home_of_its_user(rt: Runtime) -> None:
    bundle = _bundle(rt, 0, args=["sleep", "1000"])
    cid = rt.new_id()
    assert rt("run", "-d", "--bundle", bundle, cid, input="").returncode == 0
    outs = [
        rt("exec", *flags, cid, "sh", "-c", 'echo "$HOME"') for flags in ([], ["-u", "1000"], ["-u", "7"])
    ]
    assert [o.stdout.strip() for o in outs] == ["/root", "/home/u", "/"], [o.stderr for o in outs]


def test_passwd_link_out_of_the_rootfs_is_not_followed(rt: Runtime) -> None:
    """Without a pid namespace, /proc/<pid>/root of a host process leads to the host's root;
    a rootfs whose /etc/passwd links there must not give the container a host file."""
    marker = os.path.join(rt.workdir, "host-passwd")
    with open(marker, "w") as f:
        f.write("root:x:0:0:root:/escaped:/bin/sh\n")

    def edit(c: dict[str, Any]) -> None:
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "pid"]

    bundle = rt.bundle(["sh", "-c", 'cat /etc/passwd >/dev/null && echo "$HOME"'], edit)
    passwd = os.path.join(bundle, "rootfs/etc/passwd")
    os.unlink(passwd)
    os.symlink(f"/proc/{os.getpid()}/root{marker}", passwd)
    res = rt("run", "--bundle", bundle, rt.new_id())
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "/", "HOME came from a file outside the rootfs"

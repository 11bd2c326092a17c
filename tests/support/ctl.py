"""A manager root for container tests: images pulled from a local registry, ``ocirtctl`` run
as a real subprocess, and the leak check each test ends with.

    with manager(tmp) as m:          # registry up, images pushed and pulled, registry down
        m("run", "--rm", m.httpd, "true")
        m.remove_all(); assert not m.leaks()
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ocirt.manager import db
from ocirt.manager.containers import layout, store
from ocirt.manager.images import service as images
from ocirt.manager.network import links, settings
from ocirt.manager.network.settings import NetSettings

from support import images as test_images
from support import registry
from support.nethost import cleanup, leftovers, net_root, pids_mentioning

OCIRTCTL = os.path.join(os.path.dirname(sys.executable), "ocirtctl")


class Manager:
    def __init__(self, root: str, httpd: str, data: str) -> None:
        self.root = root
        self.httpd = httpd  # busybox whose command is httpd on port 80 (/var/www/index.html)
        self.data = data  # busybox with VOLUME /data holding hello.txt
        self.seen: set[str] = set()
        self.cfg = settings.load(root)  # kept: loading it once the root is gone would make it anew

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 120, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [OCIRTCTL, "--root", self.root, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            stdin=subprocess.DEVNULL if input is None else None,
        )
        if check:
            assert done.returncode == 0, f"ocirtctl {' '.join(args)}: {done.returncode}: {done.stderr}"
        self.seen |= set(self.ids())
        return done

    def ids(self) -> list[str]:
        if not os.path.exists(os.path.join(self.root, db.DB_NAME)):
            return []  # reset: opening the database would make the root again
        return [c.id for c in store.all_containers(db.connect(self.root))]

    def inspect(self, ref: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self("inspect", ref).stdout)[0]
        return doc

    def remove_all(self) -> None:
        """``rm -f -v`` of everything, in four processes at once (the 20-container test)."""
        ids = self.ids()
        procs = [
            subprocess.Popen(
                [OCIRTCTL, "--root", self.root, "rm", "-f", "-v", *ids[i::4]],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for i in range(min(4, len(ids)))
        ]
        for proc in procs:
            proc.wait(timeout=300)

    def leaks(self) -> list[str]:
        """Anything a removed container left: record, shim dir, mount, cgroup, netns, veth."""
        found = [f"container {cid}" for cid in self.ids()]
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f]
        cfg = self.cfg
        for cid in self.seen:
            found += [
                f"shim dir of {cid[:12]}" for p in [layout.shim_base(self.root, cid)] if os.path.exists(p)
            ]
            found += [f"mount {m}" for m in mounts if cid in m]
            found += [f"cgroup {d}" for d in _cgroups(cid)]
            if os.path.exists(os.path.join(cfg.netns_dir, cid)):
                found.append(f"netns {cid[:12]}")
        found += [f"veth {name}" for name in links.names_with_prefix(cfg.prefix + "v")]
        return found


@contextmanager
def checked(mgr: Manager, tidy: Callable[[], object] = lambda: None) -> Iterator[Manager]:
    """One test's use of a module's manager: afterwards every container is removed, ``tidy``
    removes what the test module makes besides (networks, volumes), and nothing may be left."""
    try:
        yield mgr
    finally:
        mgr.remove_all()
        tidy()
        left = mgr.leaks()
        assert not left, f"left behind: {left}"


def _cgroups(cid: str) -> list[str]:
    out = []
    for top in os.listdir("/sys/fs/cgroup"):
        base = os.path.join("/sys/fs/cgroup", top)
        if os.path.isdir(base) and not os.path.islink(base):
            for dirpath, dirnames, _ in os.walk(base):
                out += [os.path.join(dirpath, d) for d in dirnames if cid in d]
    return out


def data_image(layout_dir: str, tag: str = "data") -> None:
    """The seed's data-packed volume container: content baked under a VOLUME."""
    layer = test_images.busybox_layer()
    layer.dir("data").file("data/hello.txt", b"packed in the image\n")
    config = {"Cmd": ["sh"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Volumes": {"/data": {}}}
    test_images.write_layout(layout_dir, [layer.bytes()], tag=tag, config=config)


@contextmanager
def manager(tmp: str) -> Iterator[Manager]:
    """A root with the test images in its store; at the end, everything removed and checked."""
    root = net_root(tmp)
    with open(settings.load(root).resolv_conf, "w") as f:
        f.write("nameserver 127.0.0.1\n")  # no search domain: short names go to the network's DNS only
    with registry.running(os.path.join(tmp, "registry")) as reg:
        oci = os.path.join(tmp, "layout")
        test_images.httpd_image(oci, "httpd")
        data_image(oci, "data")
        refs = {}
        for tag in ("httpd", "data"):
            test_images.push(oci, tag, reg.ref(f"test/{tag}:1"), reg)
            refs[tag] = reg.ref(f"test/{tag}:1")
            images.pull(root, refs[tag], tls_verify=False, quiet=True)
    m = Manager(root, refs["httpd"], refs["data"])
    try:
        yield m
    finally:
        m.remove_all()
        left = m.leaks() + reset(root, m.cfg)
        assert not left, f"left behind: {left}"


def reset(root: str, cfg: NetSettings) -> list[str]:
    """``ocirtctl system reset``, as a user ends with a root; then what it left on the host
    (anything is removed anyway, so that one failure does not spill into other tests)."""
    db.close_all()
    done = subprocess.run(
        [OCIRTCTL, "--root", root, "system", "reset", "--force"], capture_output=True, text=True, timeout=300
    )
    deadline = time.monotonic() + 10  # an exit command of an earlier rm may still be ending
    while pids_mentioning(os.path.abspath(root)) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [f"system reset: {line}" for line in done.stderr.splitlines()] + leftovers(cfg, root)
    if not os.path.exists(root):
        return left
    left.append(f"root {root}")  # the reset failed: undo what it did not (never on a root it
    try:  # removed: loading its settings would make a new root with the host's default names)
        cleanup(root)
    finally:
        shutil.rmtree(os.path.dirname(layout.shim_base(root, "any")), ignore_errors=True)
        _unmount_snapshots(root)
        shutil.rmtree(root, ignore_errors=True)
    return left


def _unmount_snapshots(root: str) -> None:
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if root in line]
    for m in reversed(mounts):
        subprocess.run(["umount", "-l", m], capture_output=True)

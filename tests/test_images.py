"""Images end to end against a real registry (Debian's docker-registry on 127.0.0.1) and
the tools people already use: skopeo, podman and umoci. Test images are built here from
busybox-static; nothing comes from the network."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Runtime
from ocirt.manager import db
from ocirt.manager.errors import ManagerError
from ocirt.manager.images import bundle, reference, service, snapshots, store
from support import images, registry

OCIRTCTL = os.path.join(os.path.dirname(sys.executable), "ocirtctl")


class Ctl:
    """``ocirtctl`` with a private ``--root`` and credentials file."""

    def __init__(self, root: str, docker_config: str) -> None:
        self.root = root
        self.env = {**os.environ, "DOCKER_CONFIG": docker_config}

    def __call__(
        self, *args: str, ok: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            [OCIRTCTL, "--root", self.root, *args],
            capture_output=True,
            text=True,
            env=self.env,
            input=stdin,
            timeout=300,
        )
        if ok:
            assert res.returncode == 0, f"ocirtctl {' '.join(args)}: {res.stderr}"
        return res

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [OCIRTCTL, "--root", self.root, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )


def _mounts_under(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(path)]


@pytest.fixture
def ctl(tmp_path: Any) -> Iterator[Ctl]:
    root = str(tmp_path / "root")
    c = Ctl(root, str(tmp_path / "docker-config"))
    try:
        yield c
    finally:
        db.close_all()
        if os.path.exists(os.path.join(root, db.DB_NAME)):
            conn = db.connect(root)
            keys = [r[0] for r in conn.execute("SELECT key FROM snapshots WHERE kind='active'")]
            for key in keys:
                snapshots.remove(root, key)
            db.close_all()
        left = _mounts_under(root)
        shutil.rmtree(root, ignore_errors=True)
        assert not left, f"mounts left behind: {left}"


@pytest.fixture(scope="module")
def reg(tmp_path_factory: Any) -> Iterator[registry.Registry]:
    with registry.running(str(tmp_path_factory.mktemp("registry"))) as r:
        yield r


@pytest.fixture(scope="module")
def auth_reg(tmp_path_factory: Any) -> Iterator[registry.Registry]:
    with registry.running(str(tmp_path_factory.mktemp("registry-auth")), auth=("tester", "s3cret")) as r:
        yield r


@pytest.fixture(scope="module")
def busybox(tmp_path_factory: Any, reg: registry.Registry) -> tuple[str, images.Image]:
    """busybox with a user ``app``, pushed by skopeo as ``test/busybox:v1``."""
    layout = str(tmp_path_factory.mktemp("layout-busybox"))
    layer = images.busybox_layer()
    layer.file("hello", b"hello from an image\n")
    config = {
        "Cmd": ["sh", "-c", "cat /hello; id"],
        "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "GREETING=hi"],
    }
    img = images.write_layout(layout, [layer.bytes()], tag="v1", config=config)
    ref = reg.ref("test/busybox:v1")
    images.push(layout, "v1", ref)
    return ref, img


def _tree(top: str) -> dict[str, tuple[Any, ...]]:
    """Every entry under ``top``: type, mode, owner, size, content hash, link target, device
    number, user xattrs, and which paths share an inode (hardlinks)."""
    out: dict[str, tuple[Any, ...]] = {}
    inodes: dict[tuple[int, int], list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, top)
            st = os.lstat(path)
            kind = stat.S_IFMT(st.st_mode)
            size = st.st_size if kind in (stat.S_IFREG, stat.S_IFLNK) else 0
            digest = ""
            if kind == stat.S_IFREG:
                with open(path, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                if st.st_nlink > 1:
                    inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
            target = os.readlink(path) if kind == stat.S_IFLNK else ""
            rdev = st.st_rdev if kind in (stat.S_IFCHR, stat.S_IFBLK) else 0
            names = [] if kind == stat.S_IFLNK else os.listxattr(path, follow_symlinks=False)
            xattrs = tuple(sorted((n, os.getxattr(path, n)) for n in names if n.startswith("user.")))
            out[rel] = (
                kind,
                stat.S_IMODE(st.st_mode),
                st.st_uid,
                st.st_gid,
                size,
                digest,
                target,
                rdev,
                xattrs,
            )
    for group in inodes.values():
        for rel in group:
            out[rel] = (*out[rel], tuple(sorted(group)))
    return out


# --- interoperability -------------------------------------------------------------------


def test_ocirtctl_push_then_skopeo_and_podman_pull_same_digest(
    ctl: Ctl, auth_reg: registry.Registry, tmp_path: Any
) -> None:
    rootfs = tmp_path / "rootfs.tar"
    rootfs.write_bytes(images.busybox_layer().bytes())
    ctl("import", "-c", 'CMD ["sh"]', "-c", "ENV A=b", str(rootfs), "local/busybox:v1")
    ref = auth_reg.ref("pushed/busybox:v1")
    denied = ctl("push", "local/busybox:v1", ref, "--tls-verify=false", ok=False)
    assert denied.returncode != 0 and "authentication required" in denied.stderr
    assert "Traceback" not in denied.stderr
    bad = ctl("login", "-u", "tester", "-p", "wrong", "--tls-verify=false", auth_reg.host, ok=False)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    ctl("login", "-u", "tester", "--password-stdin", "--tls-verify=false", auth_reg.host, stdin="s3cret\n")
    with open(tmp_path / "docker-config" / "config.json") as f:
        assert auth_reg.host in json.load(f)["auths"]
    out = ctl("push", "--chunk-size", "262144", "local/busybox:v1", ref, "--tls-verify=false")
    digest = out.stdout.split("Digest: ")[1].split()[0]
    creds = f"--creds={auth_reg.user}:{auth_reg.password}"
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", creds, f"docker://{ref}"],
        capture_output=True,
        check=True,
    ).stdout
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest
    oci_dir = tmp_path / "skopeo-oci"
    copy = ["skopeo", "copy", "--quiet", "--preserve-digests", "--src-tls-verify=false", f"--src-{creds[2:]}"]
    subprocess.run([*copy, f"docker://{ref}", f"oci:{oci_dir}:v1"], check=True, capture_output=True)
    with open(oci_dir / "index.json") as f:
        assert json.load(f)["manifests"][0]["digest"] == digest
    assert _podman_pull_digest(tmp_path, ref, auth_reg) == digest
    image_id = ctl("images", "-q", "--no-trunc").stdout.strip()
    ctl("rmi", "-f", image_id)
    ctl("pull", "-q", "--tls-verify=false", ref)  # Basic auth from the stored credentials
    assert ctl("images", "-q", "--no-trunc").stdout.strip() == image_id
    ctl("logout", auth_reg.host)
    ctl("rmi", ref)
    again = ctl("pull", "--tls-verify=false", ref, ok=False)
    assert "authentication required" in again.stderr


def _podman_pull_digest(tmp_path: Any, ref: str, reg: registry.Registry) -> str:
    """podman in an isolated setup: its own storage, runroot and configuration files."""
    base = tmp_path / "podman"
    runroot = tempfile.mkdtemp(prefix="ocirt-podman-", dir="/run")  # podman wants it short
    (base / "conf").mkdir(parents=True)
    (base / "auth.json").write_text("{}")
    (base / "conf" / "registries.conf").write_text("unqualified-search-registries = []\n")
    (base / "conf" / "containers.conf").write_text(
        '[engine]\nevents_logger = "file"\ncgroup_manager = "cgroupfs"\n'
    )
    (base / "conf" / "storage.conf").write_text(
        f'[storage]\ndriver = "vfs"\nrunroot = "{runroot}"\ngraphroot = "{base}/root"\n'
    )
    env = {
        **os.environ,
        "CONTAINERS_REGISTRIES_CONF": str(base / "conf" / "registries.conf"),
        "CONTAINERS_CONF": str(base / "conf" / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(base / "conf" / "storage.conf"),
        "REGISTRY_AUTH_FILE": str(base / "auth.json"),
    }
    podman = [
        "podman",
        "--root",
        str(base / "root"),
        "--runroot",
        runroot,
        "--storage-driver",
        "vfs",
    ]
    try:
        creds = [f"--creds={reg.user}:{reg.password}"] if reg.user else []
        pulled = subprocess.run(
            [*podman, "pull", "-q", "--tls-verify=false", *creds, ref],
            env=env,
            capture_output=True,
            text=True,
        )
        assert pulled.returncode == 0, pulled.stderr
        out = subprocess.run(
            [*podman, "image", "inspect", "--format", "{{.Digest}}", ref],
            env=env,
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()
    finally:
        left = _mounts_under(str(base))
        for m in reversed(left):
            subprocess.run(["umount", "-l", m], check=False)
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(runroot, ignore_errors=True)


def test_skopeo_push_then_ocirtctl_pull_and_run(
    ctl: Ctl, busybox: tuple[str, images.Image], rt: Runtime, tmp_path: Any
) -> None:
    ref, img = busybox
    out = ctl("pull", "--tls-verify=false", ref)
    assert img.config_digest in out.stdout
    listed = json.loads(ctl("images", "--format", "json").stdout)
    assert listed[0]["Id"] == img.config_digest and listed[0]["Digest"] == img.manifest_digest
    assert listed[0]["RepoTags"] == [ref]
    rec = service.get(ctl.root, ref)
    rootfs = snapshots.prepare(ctl.root, rec, "run-test")
    try:
        defaults = bundle.process_defaults(service.config(ctl.root, rec))
        spec = bundle.runtime_config(defaults, rootfs, user="app")
        path = tmp_path / "bundle"
        path.mkdir()
        (path / "config.json").write_text(json.dumps(spec))
        res = rt("run", "--bundle", str(path), rt.new_id())
        assert res.returncode == 0, res.stderr
        assert res.stdout.splitlines() == [
            "hello from an image",
            "uid=1000(app) gid=1000(app) groups=50(staff)",
        ]
        used = ctl("rmi", ref, ok=False)
        assert used.returncode != 0 and "in use" in used.stderr
    finally:
        snapshots.remove(ctl.root, "run-test")
    assert not os.path.exists(rootfs)
    ctl("rmi", ref)
    assert ctl("images", "-q").stdout == ""
    db.close_all()
    assert store.all_blobs(ctl.root) == []


def test_docker_schema2_image(ctl: Ctl, reg: registry.Registry, tmp_path: Any) -> None:
    layout = str(tmp_path / "layout")
    images.write_layout(layout, [images.busybox_layer().bytes()], tag="d")
    ref = reg.ref("test/docker-schema2:d")
    images.push(layout, "d", ref, docker=True)
    inspect = ["skopeo", "inspect", "--raw", "--tls-verify=false"]
    raw = subprocess.run([*inspect, f"docker://{ref}"], capture_output=True, check=True).stdout
    pushed = json.loads(raw)
    assert pushed["mediaType"] == images.DOCKER_MANIFEST
    ctl("pull", "-q", "--tls-verify=false", ref)
    doc = json.loads(ctl("image", "inspect", ref).stdout)[0]  # docker's shape: no manifest in it
    rec = service.get(ctl.root, ref)
    assert rec.media_type == images.DOCKER_MANIFEST
    assert rec.manifest_digest == images.sha256(raw) and doc["Id"] == pushed["config"]["digest"]
    again = reg.ref("test/docker-schema2-copy:d")
    digest = ctl("push", "-q", "--tls-verify=false", ref, again).stdout.strip()
    assert digest == images.sha256(raw)
    copied = subprocess.run([*inspect, f"docker://{again}"], capture_output=True, check=True).stdout
    assert copied == raw


def test_index_picks_the_platform(ctl: Ctl, reg: registry.Registry, tmp_path: Any) -> None:
    layout = str(tmp_path / "layout")
    made = {}
    for arch, variant in (("amd64", None), ("arm64", "v8"), ("s390x", None)):
        layer = images.Layer().file("arch", arch.encode()).bytes()
        made[arch] = images.write_layout(
            layout, [layer], tag=None, arch=arch, variant=variant, config={"Cmd": ["x"]}
        )
    index_digest = images.write_index(layout, list(made.values()), "multi")
    ref = reg.ref("test/multi:v1")
    images.push(layout, "multi", ref)
    ctl("pull", "-q", "--tls-verify=false", ref)
    host = json.loads(ctl("image", "inspect", ref).stdout)[0]
    assert service.get(ctl.root, ref).manifest_digest == made["amd64"].manifest_digest
    assert host["Architecture"] == "amd64"
    assert host["RepoDigests"] == [f"{reg.host}/test/multi@{index_digest}"]
    ctl("pull", "-q", "--tls-verify=false", "--platform", "linux/arm64", ref)
    arm = json.loads(ctl("image", "inspect", ref).stdout)[0]
    assert service.get(ctl.root, ref).manifest_digest == made["arm64"].manifest_digest
    assert arm["Variant"] == "v8"
    rec = service.get(ctl.root, arm["Id"])
    rootfs = snapshots.prepare(ctl.root, rec, "arch")
    try:
        with open(os.path.join(rootfs, "arch")) as f:
            assert f.read() == "arm64"
    finally:
        snapshots.remove(ctl.root, "arch")
    missing = ctl("pull", "--tls-verify=false", "--platform", "linux/riscv64", ref, ok=False)
    assert "no manifest for platform linux/riscv64" in missing.stderr


def test_zstd_and_uncompressed_layers(ctl: Ctl, reg: registry.Registry, tmp_path: Any) -> None:
    layout = str(tmp_path / "layout")
    base = images.write_layout(layout, [images.busybox_layer().bytes()], tag="z", compression="zstd")
    ref = reg.ref("test/zstd:v1")
    images.push(layout, "z", ref)
    plain = images.write_layout(
        layout, [images.Layer().file("f", b"x" * 1000).bytes()], tag="n", compression="none"
    )
    images.push(layout, "n", reg.ref("test/plain:v1"))
    ctl("pull", "-q", "--tls-verify=false", ref)
    ctl("pull", "-q", "--tls-verify=false", reg.ref("test/plain:v1"))
    ids = set(ctl("images", "-q", "--no-trunc").stdout.split())
    assert ids == {base.config_digest, plain.config_digest}


# --- unpacking --------------------------------------------------------------------------


def _layered_image(layout: str) -> images.Image:
    """Three layers exercising every rule of the layer format."""
    first = images.busybox_layer()
    first.dir("data").file("data/gone", b"deleted later").file("data/kept", b"kept")
    first.dir("opq").file("opq/old1", b"1").dir("opq/sub").file("opq/sub/old2", b"2")
    first.dir("home").dir("home/app", 0o750, 1000, 1000)
    first.file("home/app/secret", b"uid 1000", 0o640, 1000, 1000)
    first.file("shared", b"linked from above", 0o600)
    first.dir("tree").file("tree/a", b"a").dir("tree/b").file("tree/b/c", b"c")
    first.file("setuid", b"#!/bin/sh\n", 0o4755)
    first.fifo("pipe", 0o640)
    second = images.Layer()
    second.whiteout("data/gone")
    second.opaque("opq")
    second.file("opq/new", b"new in layer 2")
    second.file("original", b"hardlinked", 0o644, 1000, 50)
    second.hardlink("hardlink", "original")
    second.symlink("home/app/link", "../../etc/passwd", 1000, 1000)
    second.symlink("dangling", "/nowhere")
    second.file("tree/b/c", b"c changed", 0o600)
    second.whiteout("tree/a")
    second.file("xattr", b"x", xattrs={"user.comment": "kept"})
    third = images.Layer()
    third.dir("data", 0o700)  # directory metadata changes without its content
    third.file("data/added", b"third")
    third.whiteout("tree")  # a whole directory goes
    third.file("tree", b"now a file")
    third.hardlink("hardlink-lower", "shared")  # a hardlink to a file of a lower layer
    return images.write_layout(layout, [first.bytes(), second.bytes(), third.bytes()], tag="layers")


def test_unpack_matches_umoci(ctl: Ctl, reg: registry.Registry, tmp_path: Any) -> None:
    layout = str(tmp_path / "layout")
    img = _layered_image(layout)
    images.push(layout, "layers", reg.ref("test/layers:v1"))
    ctl("pull", "-q", "--tls-verify=false", reg.ref("test/layers:v1"))
    umoci = tmp_path / "umoci"
    subprocess.run(
        ["umoci", "unpack", "--image", f"{layout}:layers", str(umoci)], check=True, capture_output=True
    )
    rec = service.get(ctl.root, img.config_digest)
    assert len(rec.layers) == 3
    rootfs = snapshots.prepare(ctl.root, rec, "compare")
    try:
        ours, theirs = _tree(rootfs), _tree(str(umoci / "rootfs"))
    finally:
        snapshots.remove(ctl.root, "compare")
    assert "data/gone" not in ours and "opq/old1" not in ours and "opq/sub" not in ours
    assert ours["hardlink"][-1] == ("hardlink", "original")
    assert ours["home/app/secret"][2:4] == (1000, 1000)
    assert ours["tree"][0] == stat.S_IFREG
    missing = sorted(set(theirs) - set(ours))
    extra = sorted(set(ours) - set(theirs))
    assert not missing and not extra, f"only umoci: {missing}; only ocirt: {extra}"
    diffs = {p: (ours[p], theirs[p]) for p in ours if ours[p] != theirs[p]}
    assert not diffs, f"entries differ (ocirt, umoci): {diffs}"
    assert ours["xattr"][8] == (("user.comment", b"kept"),)


def _archive_layout(layout: str, out: str) -> str:
    with tarfile.open(out, "w") as tar:
        for name in os.listdir(layout):
            tar.add(os.path.join(layout, name), arcname=name)
    return out


def _evil(kind: str, outside: str) -> images.Layer:
    """A layer that would write ``outside/pwned`` (or link the victim) if obeyed."""
    up = "../" * 12 + outside.lstrip("/")
    layer = images.Layer()
    if kind == "traversal":
        return layer.file(f"{up}/pwned", b"x")
    if kind == "absolute":
        return layer.file(f"{outside}/pwned", b"x")
    if kind == "symlink":
        return layer.symlink("evil", outside).file("evil/pwned", b"x")
    if kind == "relative-symlink":
        return layer.dir("a").symlink("a/up", up).file("a/up/pwned", b"x")
    if kind == "hardlink":
        return layer.hardlink("pwned", f"{up}/victim")
    return layer.symlink("v", outside).hardlink("pwned", "v/victim")


@pytest.mark.parametrize(
    "kind", ["traversal", "absolute", "symlink", "relative-symlink", "hardlink", "hardlink-through-symlink"]
)
def test_malicious_layers_are_refused(ctl: Ctl, tmp_path: Any, kind: str) -> None:
    outside = str(tmp_path / "outside")
    os.mkdir(outside)
    with open(os.path.join(outside, "victim"), "w") as f:
        f.write("untouched")
    layout = str(tmp_path / "layout")
    images.write_layout(layout, [_evil(kind, outside).bytes()], tag="evil")
    archive = _archive_layout(layout, str(tmp_path / "evil.tar"))
    res = ctl("load", "-i", archive, ok=False)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert res.stderr.startswith("ocirtctl: layer sha256:") and res.stderr.count("\n") == 1, res.stderr
    assert os.listdir(outside) == ["victim"]
    with open(os.path.join(outside, "victim")) as f:
        assert f.read() == "untouched"
    assert ctl("images", "-q").stdout == ""
    db.close_all()
    snaps = os.path.join(ctl.root, "images", "snapshots")
    assert not os.path.exists(snaps) or os.listdir(snaps) == []
    assert os.stat(os.path.join(outside, "victim")).st_nlink == 1


def test_malicious_import_is_refused(ctl: Ctl, tmp_path: Any) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    tarball = tmp_path / "evil.tar"
    tarball.write_bytes(images.Layer().symlink("etc", str(outside)).file("etc/passwd", b"pwned").bytes())
    res = ctl("import", str(tarball), "evil:v1", ok=False)
    assert res.returncode != 0 and "refusing to extract" in res.stderr
    assert list(outside.iterdir()) == []
    assert ctl("images", "-q").stdout == ""


# --- transfers --------------------------------------------------------------------------


class CuttingProxy:
    """A TCP proxy to the registry that, once, cuts the connection after ``cut_after``
    bytes of a blob answer, and records every Range header it forwards."""

    def __init__(self, upstream: str, blob: str, cut_after: int) -> None:
        host, port = upstream.split(":")
        self.upstream = (host, int(port))
        self.blob, self.cut_after = blob, cut_after
        self.ranges: list[str] = []
        self.cuts = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self._threads: list[threading.Thread] = []
        self._stop = False
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(client,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.upstream)
        state = {"cut": -1}

        def down() -> None:
            while True:
                try:
                    data = upstream.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                if state["cut"] >= 0:
                    room = self.cut_after - state["cut"]
                    if len(data) >= room:
                        client.sendall(data[:room])
                        client.shutdown(socket.SHUT_RDWR)
                        client.close()
                        upstream.close()
                        return
                    state["cut"] += len(data)
                client.sendall(data)
            client.close()

        t = threading.Thread(target=down, daemon=True)
        t.start()
        try:
            while data := client.recv(65536):
                text = data.decode("latin-1")
                if f"/blobs/{self.blob}" in text and text.startswith("GET"):
                    ranged = [h for h in text.split("\r\n") if h.lower().startswith("range:")]
                    self.ranges.extend(ranged)
                    if not ranged and self.cuts == 0:
                        self.cuts += 1
                        state["cut"] = 0
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            try:
                upstream.shutdown(socket.SHUT_RDWR)  # wakes the other direction's recv
            except OSError:
                pass
            t.join(timeout=10)
            upstream.close()

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        for t in self._threads:
            t.join(timeout=10)


def test_interrupted_pull_resumes_with_range(
    ctl: Ctl, reg: registry.Registry, busybox: tuple[str, images.Image]
) -> None:
    _, img = busybox
    layer = img.layer_digests[0]
    proxy = CuttingProxy(reg.host, layer, cut_after=300_000)
    try:
        ctl("pull", "--tls-verify=false", f"{proxy.host}/test/busybox:v1")
    finally:
        proxy.close()
    assert proxy.cuts == 1
    assert len(proxy.ranges) == 1 and proxy.ranges[0].lower().startswith("range: bytes=")
    start = int(proxy.ranges[0].split("=")[1].rstrip("-"))
    assert 0 < start <= 300_000
    assert ctl("images", "-q", "--no-trunc").stdout.split() == [img.config_digest]
    assert os.listdir(os.path.join(ctl.root, "images", "ingest")) == []


def test_partial_download_is_kept_and_resumed_by_the_next_pull(
    ctl: Ctl, reg: registry.Registry, busybox: tuple[str, images.Image]
) -> None:
    _, img = busybox
    layer = img.layer_digests[0]
    ingest = os.path.join(ctl.root, "images", "ingest")
    os.makedirs(ingest)
    with open(reg.blob_file(layer), "rb") as f:
        head = f.read(100_000)
    with open(os.path.join(ingest, layer[7:]), "wb") as f:
        f.write(head)  # what a killed pull leaves
    proxy = CuttingProxy(reg.host, layer, cut_after=1 << 40)
    try:
        ctl("pull", "-q", "--tls-verify=false", f"{proxy.host}/test/busybox:v1")
    finally:
        proxy.close()
    assert [r.lower() for r in proxy.ranges] == ["range: bytes=100000-"]
    assert os.listdir(ingest) == []


def test_corrupted_blob_is_refused(ctl: Ctl, reg: registry.Registry, tmp_path: Any) -> None:
    layout = str(tmp_path / "layout")
    layer = images.Layer().file("data", os.urandom(50_000)).bytes()
    img = images.write_layout(layout, [layer], tag="c")
    ref = reg.ref("test/corrupt:v1")
    images.push(layout, "c", ref)
    path = reg.blob_file(img.layer_digests[0])
    with open(path, "r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    res = ctl("pull", "--tls-verify=false", ref, ok=False)
    assert res.returncode != 0
    assert f"blob {img.layer_digests[0]}: digest mismatch" in res.stderr and "Traceback" not in res.stderr
    assert ctl("images", "-q").stdout == ""
    db.close_all()
    assert img.layer_digests[0] not in store.all_blobs(ctl.root)
    assert os.listdir(os.path.join(ctl.root, "images", "ingest")) == []


def test_corrupted_store_blob_is_refused_on_read(ctl: Ctl, busybox: tuple[str, images.Image]) -> None:
    ref, img = busybox
    ctl("pull", "-q", "--tls-verify=false", ref)
    path = store.blob_path(ctl.root, img.config_digest)
    os.chmod(path, 0o644)
    with open(path, "ab") as f:
        f.write(b" ")
    res = ctl("image", "inspect", ref, ok=False)
    assert f"blob {img.config_digest} is corrupted" in res.stderr


def test_concurrent_pulls_end_with_one_copy(ctl: Ctl, reg: registry.Registry, tmp_path: Any) -> None:
    layout = str(tmp_path / "layout")
    layers = [images.busybox_layer().bytes()] + [
        images.Layer().file(f"f{i}", os.urandom(200_000)).bytes() for i in range(4)
    ]
    img = images.write_layout(layout, layers, tag="cc")
    ref = reg.ref("test/concurrent:v1")
    images.push(layout, "cc", ref)
    procs = [ctl.popen("pull", "-q", "--tls-verify=false", ref) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert ctl("images", "-q", "--no-trunc").stdout.split() == [img.config_digest]
    db.close_all()
    blobs = set(store.all_blobs(ctl.root))
    expected = {img.config_digest, img.manifest_digest, *img.layer_digests}
    assert blobs == expected
    conn = db.connect(ctl.root)
    assert conn.execute("SELECT COUNT(*) FROM snapshots WHERE kind='committed'").fetchone()[0] == len(layers)
    assert sorted(os.listdir(os.path.join(ctl.root, "images", "snapshots"))) == [str(i) for i in range(1, 6)]


# --- archives and commands ----------------------------------------------------------------


def test_save_load_round_trip(ctl: Ctl, busybox: tuple[str, images.Image], tmp_path: Any) -> None:
    ref, img = busybox
    ctl("pull", "-q", "--tls-verify=false", ref)
    ctl("tag", ref, "saved/busybox:one")
    oci = str(tmp_path / "oci.tar")
    docker = str(tmp_path / "docker.tar")
    ctl("save", "--format", "oci-archive", "-o", oci, "saved/busybox:one")
    ctl("save", "-o", docker, "saved/busybox:one")
    ctl("rmi", "-f", img.config_digest)
    assert ctl("images", "-q").stdout == ""
    out = ctl("load", "-i", oci).stdout
    assert "Loaded image: saved/busybox:one" in out
    doc = json.loads(ctl("image", "inspect", "saved/busybox:one").stdout)[0]
    assert doc["Id"] == img.config_digest
    assert service.get(ctl.root, "saved/busybox:one").manifest_digest == img.manifest_digest
    ctl("rmi", "saved/busybox:one")
    with open(docker, "rb") as f:
        loaded = subprocess.run(
            [OCIRTCTL, "--root", ctl.root, "load"], stdin=f, capture_output=True, env=ctl.env
        )
    assert loaded.returncode == 0, loaded.stderr
    doc = json.loads(ctl("image", "inspect", "saved/busybox:one").stdout)[0]
    assert doc["Id"] == img.config_digest and doc["RootFS"]["Layers"] == img.diff_ids
    # other tools read both archives
    for transport, path in (("oci-archive", oci), ("docker-archive", docker)):
        raw = subprocess.run(
            ["skopeo", "inspect", "--config", "--raw", f"{transport}:{path}"], capture_output=True, check=True
        ).stdout
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == img.config_digest


def test_image_commands(ctl: Ctl, busybox: tuple[str, images.Image]) -> None:
    ref, img = busybox
    ctl("pull", "-q", "--tls-verify=false", ref)
    ctl("tag", ref, "other:v2")
    table = ctl("images", "--digests").stdout.splitlines()
    assert table[0].split() == ["REPOSITORY", "TAG", "DIGEST", "IMAGE", "ID", "CREATED", "SIZE"]
    assert any(line.startswith("other ") and img.config_digest[7:19] in line for line in table)
    assert any(img.manifest_digest in line for line in table)
    assert ctl("images", "-q").stdout.split() == [img.config_digest[7:19]]
    hist = ctl("history", "--format", "json", ref).stdout
    assert json.loads(hist)[0]["CreatedBy"] == "layer 0"
    fmt = ctl("image", "inspect", "-f", "{{.Config.Env}}", "other:v2").stdout
    assert "GREETING=hi" in fmt
    ambiguous = ctl("rmi", img.config_digest[7:19], ok=False)
    assert "several names" in ambiguous.stderr
    assert ctl("rmi", "other:v2").stdout.strip() == "Untagged: docker.io/library/other:v2"
    assert ctl("image", "prune").stdout.strip().endswith("0")
    ctl("image", "prune", "-a")
    assert ctl("images", "-q").stdout == ""
    db.close_all()
    stray = store.put(ctl.root, b"nobody refers to me")
    assert ctl("system", "gc").stdout.strip() == "Deleted 1 blobs and 0 snapshots"
    assert not store.has(ctl.root, stray)
    for bad, needle in (
        (("pull", "BusyBox"), "must be lowercase"),
        (("pull", "--platform", "linux", "x"), "--platform"),
        (("rmi", "nothing:here"), "no such image"),
        (("tag", "nothing", "x"), "no such image"),
        (("import", "/nonexistent.tar"), "no such file"),
        (("pull", "--tls-verify=false", "127.0.0.1:1/x:y"), "registry 127.0.0.1:1"),
    ):
        res = ctl(*bad, ok=False)
        assert res.returncode != 0 and needle in res.stderr, (bad, res.stderr)
        assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr


def test_resolve_user_stays_in_the_rootfs(tmp_path: Any) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/:/bin/sh\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\nstaff:x:50:app\nwww:x:33:app,other\n")
    assert bundle.resolve_user(str(rootfs), "app") == (1000, 1001, [50, 33])
    assert bundle.resolve_user(str(rootfs), "app:www") == (1000, 33, [])
    assert bundle.resolve_user(str(rootfs), "4242:7") == (4242, 7, [])
    assert bundle.resolve_user(str(rootfs), "") == (0, 0, [])
    with pytest.raises(Exception, match="no such user"):
        bundle.resolve_user(str(rootfs), "ghost")
    host = tmp_path / "host-passwd"
    host.write_text("ghost:x:7:7::/:/bin/sh\n")
    evil = tmp_path / "evil"
    (evil / "etc").mkdir(parents=True)
    os.symlink(str(host), evil / "etc" / "passwd")  # absolute: the image's own /tmp/...
    with pytest.raises(Exception, match="no such user"):
        bundle.resolve_user(str(evil), "ghost")
    os.unlink(evil / "etc" / "passwd")
    os.symlink("../" * 20 + str(host).lstrip("/"), evil / "etc" / "passwd")
    with pytest.raises(Exception, match="no such user"):
        bundle.resolve_user(str(evil), "ghost")


def test_bearer_tokens_over_https(ctl: Ctl, tmp_path: Any) -> None:
    with registry.running(str(tmp_path / "registry"), token=("tester", "s3cret"), tls=True) as reg:
        assert reg.tokens is not None
        layout = str(tmp_path / "layout")
        img = images.write_layout(layout, [images.busybox_layer().bytes()], tag="t")
        ref = reg.ref("private/busybox:t")
        images.push(layout, "t", ref, reg)
        # loopback is an insecure registry by default, as docker's: the self-signed
        # certificate is not checked, so the refusal is the registry's own 401
        unverified = ctl("pull", ref, ok=False)
        assert "401" in unverified.stderr and unverified.stderr.count("\n") == 1
        anonymous = ctl("pull", "--tls-verify=false", ref, ok=False)
        assert "401" in anonymous.stderr and "Traceback" not in anonymous.stderr
        ctl("login", "-u", "tester", "-p", "s3cret", "--tls-verify=false", reg.host)
        reg.tokens.requests.clear()
        ctl("pull", "-q", "--tls-verify=false", ref)
        asked = [(r.scopes, r.user) for r in reg.tokens.requests]
        # one token for the pull scope, cached for the manifest, config and layer requests
        assert asked == [(["repository:private/busybox:pull"], "tester")]
        assert ctl("images", "-q", "--no-trunc").stdout.split() == [img.config_digest]
        reg.tokens.requests.clear()
        out = ctl("push", "--tls-verify=false", ref, reg.ref("copy/busybox:t"))
        assert "mounted from" in out.stderr
        scopes = sorted(s for r in reg.tokens.requests for s in r.scopes)
        assert "repository:copy/busybox:pull,push" in scopes and "repository:private/busybox:pull" in scopes


def test_references_follow_docker() -> None:
    digest = "sha256:" + "a" * 64
    cases = {
        "busybox": ("docker.io", "library/busybox", "latest", None, "busybox:latest"),
        "me/app:1.0": ("docker.io", "me/app", "1.0", None, "me/app:1.0"),
        "localhost/app": ("localhost", "app", "latest", None, "localhost/app:latest"),
        f"127.0.0.1:5000/a/b@{digest}": (
            "127.0.0.1:5000",
            "a/b",
            None,
            digest,
            f"127.0.0.1:5000/a/b@{digest}",
        ),
        "index.docker.io/library/alpine:3": ("docker.io", "library/alpine", "3", None, "alpine:3"),
        "ghcr.io/o/r:t": ("ghcr.io", "o/r", "t", None, "ghcr.io/o/r:t"),
    }
    for text, (domain, path, tag, dig, familiar) in cases.items():
        ref = reference.parse(text)
        assert (ref.domain, ref.path, ref.tag, ref.digest, ref.familiar) == (domain, path, tag, dig, familiar)
    for bad in ("", "Busybox", "a//b", "a:b:c", "busybox@sha256:123", "x:" + "t" * 129, " busybox"):
        with pytest.raises(ManagerError):
            reference.parse(bad)


def test_each_command_loads_only_its_group(tmp_path: Any) -> None:
    """``ocirtctl`` imports one command group per call: its table must name every command
    a group registers, and a global option before the command must not hide it."""
    import argparse
    import importlib

    from ocirt.manager import cli

    for group in cli.GROUPS:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(f"ocirt.manager.commands.{group}").register(sub)
        assert {name: cli.COMMANDS.get(name) for name in sub.choices} == dict.fromkeys(sub.choices, group)
    assert cli.groups_for(["--root", "/x", "--debug", "--runtime=r", "run", "img"]) == ("containers",)
    assert cli.groups_for(["--help"]) == cli.GROUPS
    assert cli.groups_for(["nosuch"]) == cli.GROUPS
    done = subprocess.run(
        [OCIRTCTL, "--root", str(tmp_path), "nosuch"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 1 and "'nosuch' is not an ocirtctl command" in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    done = subprocess.run([OCIRTCTL, "--root", str(tmp_path), "volume"], capture_output=True, text=True)
    assert done.returncode == 2 and "pull" in done.stderr  # the help lists every group's commands


def test_loopback_registry_is_insecure_by_default(tmp_path: Any, busybox: tuple[str, images.Image]) -> None:
    """docker treats 127.0.0.0/8 as an insecure registry: a plain-HTTP one on loopback pulls
    with no --tls-verify=false; other hosts keep TLS verified."""
    from ocirt.manager.images.registry.client import insecure_by_default

    ref, _ = busybox
    root = str(tmp_path / "root")
    done = subprocess.run(
        [OCIRTCTL, "--root", root, "pull", ref], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    listed = subprocess.run([OCIRTCTL, "--root", root, "images", "--format", "{{.Repository}}:{{.Tag}}"],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert ref in listed.stdout.split()
    assert [
        insecure_by_default(h) for h in ("127.0.0.1:5000", "127.1.2.3", "[::1]:5000", "localhost:5000")
    ] == [True] * 4
    assert not any(
        insecure_by_default(h) for h in ("10.0.0.1:5000", "registry.example:443", "[2001:db8::1]:5000")
    )

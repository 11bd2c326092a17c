"""``make bench`` (images): pull and unpack from a local registry, ocirtctl against podman
and skopeo, as MB/s of compressed image and ratios of median wall time.

Two images are built from local data and pushed with skopeo to a private docker-registry on
127.0.0.1: one ~200 MB single-layer image and one of 10 layers. ``ocirtctl pull`` (fetch,
verify, unpack into overlayfs snapshots) is timed against ``podman pull`` (same work, its
overlay storage, isolated configuration) and ``skopeo copy`` to an OCI directory (fetch
and verify only). Each round starts from empty storage. Then one ocirtctl pull runs in
process with its phases timed, to show where the time goes.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from support import images, registry

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
OCIRTCTL = os.path.join(os.path.dirname(sys.executable), "ocirtctl")


def _payload(size: int, seed: int) -> bytes:
    """Half random, half repetitive text: compresses about 2:1 like typical image content."""
    rnd = random.Random(seed)
    words = [
        bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz ") for _ in range(rnd.randint(3, 12)))
        for _ in range(500)
    ]
    text = b" ".join(rnd.choice(words) for _ in range(size // 16))[: size // 2]
    return rnd.randbytes(size - len(text)) + text


def _layer(total: int, files: int, seed: int) -> bytes:
    layer = images.Layer().dir("data")
    each = total // files
    for i in range(files):
        layer.file(f"data/f{seed}-{i}", _payload(each, seed * 1000 + i))
    return layer.bytes()


def build(workdir: str, reg: registry.Registry) -> dict[str, tuple[str, int]]:
    """The two images, pushed; name -> (reference, compressed bytes)."""
    out = {}
    layout = os.path.join(workdir, "layout")
    single = images.write_layout(layout, [_layer(200 << 20, 200, 1)], tag="single")
    multi = images.write_layout(layout, [_layer(10 << 20, 20, 10 + i) for i in range(10)], tag="multi")
    for tag, img in (("single", single), ("multi", multi)):
        ref = reg.ref(f"bench/{tag}:v1")
        images.push(layout, tag, ref)
        size = sum(os.path.getsize(os.path.join(layout, "blobs/sha256", d[7:])) for d in img.layer_digests)
        out[f"{tag} ({len(img.layer_digests)} layer{'s' if len(img.layer_digests) > 1 else ''})"] = (
            ref,
            size,
        )
    return out


def _unmount_under(path: str) -> None:
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if line.split()[4].startswith(path)]
    for m in reversed(mounts):
        subprocess.run(["umount", "-l", m], check=False)


def ocirtctl(ref: str, workdir: str) -> Callable[[], None]:
    def run() -> None:
        root = tempfile.mkdtemp(dir=workdir, prefix="ocirt-")
        try:
            subprocess.run(
                [OCIRTCTL, "--root", root, "pull", "-q", "--tls-verify=false", ref],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        finally:
            shutil.rmtree(root)

    return run


def podman(ref: str, workdir: str) -> Callable[[], None]:
    def run() -> None:
        base = tempfile.mkdtemp(dir=workdir, prefix="podman-")
        runroot = tempfile.mkdtemp(dir="/run", prefix="ocirt-bench-")
        conf = os.path.join(base, "containers.conf")
        with open(conf, "w") as f:
            f.write('[engine]\nevents_logger = "file"\ncgroup_manager = "cgroupfs"\n')
        with open(os.path.join(base, "registries.conf"), "w") as f:
            f.write("unqualified-search-registries = []\n")
        with open(os.path.join(base, "storage.conf"), "w") as f:
            f.write(f'[storage]\ndriver = "overlay"\nrunroot = "{runroot}"\ngraphroot = "{base}/root"\n')
        env = {
            **os.environ,
            "CONTAINERS_CONF": conf,
            "CONTAINERS_REGISTRIES_CONF": os.path.join(base, "registries.conf"),
            "CONTAINERS_STORAGE_CONF": os.path.join(base, "storage.conf"),
        }
        cmd = [
            "podman",
            "--root",
            f"{base}/root",
            "--runroot",
            runroot,
            "pull",
            "-q",
            "--tls-verify=false",
            ref,
        ]
        try:
            subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        finally:
            _unmount_under(base)
            _unmount_under(runroot)
            shutil.rmtree(base, ignore_errors=True)
            shutil.rmtree(runroot, ignore_errors=True)

    return run


def skopeo(ref: str, workdir: str) -> Callable[[], None]:
    def run() -> None:
        dest = tempfile.mkdtemp(dir=workdir, prefix="skopeo-")
        try:
            cmd = ["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}", f"oci:{dest}:x"]
            subprocess.run(cmd, check=True)
        finally:
            shutil.rmtree(dest)

    return run


def median_time(fn: Callable[[], None]) -> float:
    times = []
    for _ in range(ROUNDS):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def phases(ref: str, workdir: str) -> dict[str, float]:
    """One in-process pull with the download and unpack phases timed (unpack overlaps the
    download of later layers, so the phases add up to more than the wall time)."""
    from ocirt.manager import db
    from ocirt.manager.images import pull, snapshots
    from ocirt.manager.images.registry import client

    spent = {"download (per-layer sum)": 0.0, "unpack (verify+decompress+extract)": 0.0}
    orig_fetch, orig_unpack = client.Client.fetch_blob, snapshots.unpack_layer

    def fetch(self: client.Client, *a: object, **k: object) -> None:
        t = time.perf_counter()
        orig_fetch(self, *a, **k)  # type: ignore[arg-type]
        spent["download (per-layer sum)"] += time.perf_counter() - t

    def unpack(*a: object, **k: object) -> None:
        t = time.perf_counter()
        orig_unpack(*a, **k)  # type: ignore[arg-type]
        spent["unpack (verify+decompress+extract)"] += time.perf_counter() - t

    client.Client.fetch_blob = fetch  # type: ignore[method-assign]
    snapshots.unpack_layer = unpack
    root = tempfile.mkdtemp(dir=workdir, prefix="phases-")
    try:
        t = time.perf_counter()
        pull.pull(root, ref, tls_verify=False, quiet=True)
        spent["wall"] = time.perf_counter() - t
    finally:
        client.Client.fetch_blob = orig_fetch  # type: ignore[method-assign]
        snapshots.unpack_layer = orig_unpack
        db.close_all()
        shutil.rmtree(root)
    return spent


def main() -> None:
    workdir = tempfile.mkdtemp(prefix="ocirt-bench-images-", dir="/var/tmp")
    try:
        with registry.running(os.path.join(workdir, "registry")) as reg:
            print("building and pushing the bench images ...", flush=True)
            built = build(workdir, reg)
            tools = {"ocirtctl pull": ocirtctl, "podman pull": podman, "skopeo copy (no unpack)": skopeo}
            print(
                f"\nmedian of {ROUNDS} rounds, MB/s of compressed layers; ratio = tool time / ocirtctl time"
            )
            for name, (ref, size) in built.items():
                print(f"\n{name}: {size / 1e6:.0f} MB compressed")
                base = 0.0
                for tool, make in tools.items():
                    secs = median_time(make(ref, workdir))
                    base = base or secs
                    print(
                        f"  {tool:<26} {secs:7.2f} s  {size / 1e6 / secs:7.1f} MB/s  ratio {secs / base:5.2f}"
                    )
                print("  where ocirtctl's time goes:")
                for phase, secs in phases(ref, workdir).items():
                    print(f"    {phase:<36} {secs:6.2f} s")
    finally:
        _unmount_under(workdir)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

"""``make bench`` (containers): ``ocirtctl run`` against ``podman run`` on this machine.

Workloads, each from images pulled from a local registry into private roots:
``run --rm IMAGE true`` with ``--network none`` and with the default bridge, for ocirtctl
(ocirt under ocirt-shim) and podman with crun and with runc (isolated podman root, runroot
and config, cgroupfs); the time to start 20 detached containers one after another; and
the memory each running container costs on the host: the PSS of its monitor process
(ocirt-shim, or podman's conmon), from ``/proc/<pid>/smaps_rollup``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from support import images as test_images
from support import registry

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "8"))
MANY = 20
OCIRTCTL = os.path.join(os.path.dirname(sys.executable), "ocirtctl")
PODMAN_LIMITS = ["--ulimit", "nofile=1024:4096", "--ulimit", "nproc=4096:4096"]  # no CAP_SYS_RESOURCE here


def run(argv: list[str], env: dict[str, str] | None = None) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise SystemExit(f"bench: {' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def median_time(action: Callable[[], object]) -> float:
    action()  # warm caches, build the default network
    samples = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def pss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


class Ocirtctl:
    def __init__(self, work: str, ref: str) -> None:
        from ocirt.manager.images import service
        from ocirt.manager.network import settings

        self.root = os.path.join(work, "ocirt-root")
        tag = os.urandom(3).hex()
        settings.configure(
            self.root, prefix=f"ob{tag[:5]}", nft_table=f"ocirt_b{tag}", run_dir=f"/run/ocirt/b-{tag}"
        )
        service.pull(self.root, ref, tls_verify=False, quiet=True)
        self.ref = ref

    def __call__(self, *args: str) -> str:
        return run([OCIRTCTL, "--root", self.root, *args])

    def monitors(self, ids: list[str]) -> list[int]:
        import json

        docs = json.loads(self("inspect", *ids))
        shims = []
        for doc in docs:
            with open(f"/proc/{doc['State']['Pid']}/stat") as f:
                shims.append(int(f.read().rpartition(")")[2].split()[1]))
        return shims

    def close(self) -> None:
        from ocirt.manager.network import service

        ids = self("ps", "-aq").split()
        if ids:
            self("rm", "-f", *ids)
        service.teardown_root(self.root)


class Podman:
    def __init__(self, work: str, ref: str, runtime: str) -> None:
        self.base = tempfile.mkdtemp(dir=work, prefix=f"podman-{runtime}-")
        self.runroot = tempfile.mkdtemp(dir="/run", prefix="ocirt-bench-")
        conf = os.path.join(self.base, "containers.conf")
        with open(conf, "w") as f:
            f.write(f'[engine]\nevents_logger = "file"\ncgroup_manager = "cgroupfs"\nruntime = "{runtime}"\n')
        with open(os.path.join(self.base, "storage.conf"), "w") as f:
            f.write(
                f'[storage]\ndriver = "overlay"\nrunroot = "{self.runroot}"\ngraphroot = "{self.base}/root"\n'
            )
        with open(os.path.join(self.base, "registries.conf"), "w") as f:
            f.write("unqualified-search-registries = []\n")
        self.env = {
            **os.environ,
            "CONTAINERS_CONF": conf,
            "CONTAINERS_STORAGE_CONF": os.path.join(self.base, "storage.conf"),
            "CONTAINERS_REGISTRIES_CONF": os.path.join(self.base, "registries.conf"),
        }
        self.ref = ref
        self("pull", "-q", "--tls-verify=false", ref)

    def __call__(self, *args: str) -> str:
        return run(["podman", "--root", f"{self.base}/root", "--runroot", self.runroot, *args], self.env)

    def monitors(self, ids: list[str]) -> list[int]:
        return [int(self("inspect", "--format", "{{.State.ConmonPid}}", cid).strip()) for cid in ids]

    def close(self) -> None:
        try:
            self("rm", "-af", "-t", "0")
            self("system", "reset", "-f")
        except SystemExit:
            pass
        for path in (self.base, self.runroot):
            with open("/proc/self/mountinfo") as f:
                mounts = [line.split()[4] for line in f if path in line]
            for m in reversed(mounts):
                subprocess.run(["umount", "-l", m], capture_output=True)
            shutil.rmtree(path, ignore_errors=True)


def start_many(tool: Ocirtctl | Podman, extra: list[str]) -> tuple[float, int]:
    """Seconds to start ``MANY`` detached containers in a row, and mean monitor PSS (KiB)."""
    start = time.perf_counter()
    ids = [
        tool("run", "-d", *extra, "--network", "none", tool.ref, "sleep", "600").strip() for _ in range(MANY)
    ]
    took = time.perf_counter() - start
    pss = statistics.mean(pss_kib(pid) for pid in tool.monitors(ids))
    tool("rm", "-f", *([*(["-t", "0"] if isinstance(tool, Podman) else []), *ids]))
    return took, int(pss)


@contextmanager
def image() -> Iterator[str]:
    with (
        tempfile.TemporaryDirectory(prefix="ocirt-bench-") as work,
        registry.running(os.path.join(work, "reg")) as reg,
    ):
        test_images.httpd_image(os.path.join(work, "layout"), "httpd")
        test_images.push(os.path.join(work, "layout"), "httpd", reg.ref("bench/httpd:1"), reg)
        yield reg.ref("bench/httpd:1")


def main() -> None:
    from lifecycle import hugetlb_v1  # bench/ is the script's directory

    with hugetlb_v1() as why:
        if why:
            raise SystemExit(f"bench: podman+crun needs the hugetlb v1 hierarchy: {why}")
        work = tempfile.mkdtemp(prefix="ocirt-bench-mgr-")
        tools: dict[str, Ocirtctl | Podman] = {}
        try:
            with image() as ref:
                tools["ocirtctl"] = Ocirtctl(work, ref)
                tools["podman+crun"] = Podman(work, ref, "crun")
                tools["podman+runc"] = Podman(work, ref, "runc")
            report(tools)
        finally:
            for tool in tools.values():
                tool.close()
            shutil.rmtree(work, ignore_errors=True)


def run_rm(tool: Ocirtctl | Podman, network: str) -> Callable[[], object]:
    extra = PODMAN_LIMITS if isinstance(tool, Podman) else []
    return lambda: tool("run", "--rm", *extra, "--network", network, tool.ref, "true")


def report(tools: dict[str, Ocirtctl | Podman]) -> None:
    """Each peer's time with ocirtctl's as a ratio of it (x1.40: ocirtctl takes 40% longer)."""
    print(f"containers: run --rm IMAGE true, median of {ROUNDS} (lower is better)")
    for network in ("none", "bridge"):
        ours = 0.0
        for name, tool in tools.items():
            t = median_time(run_rm(tool, network))
            ours = ours or t
            ratio = "" if t == ours else f"   ocirtctl x{ours / t:.2f}"
            print(f"  --network {network:<6} {name:<12} {t * 1000:8.1f} ms{ratio}")
    print(f"containers: {MANY} x run -d (sleep), one after another; monitor PSS per running container")
    first: tuple[float, int] | None = None
    for name, tool in tools.items():
        took, pss = start_many(tool, PODMAN_LIMITS if isinstance(tool, Podman) else [])
        first = first or (took, pss)
        ratio = (
            ""
            if first == (took, pss)
            else f"   ocirtctl x{first[0] / took:.2f} time, x{first[1] / pss:.2f} PSS"
        )
        print(
            f"  {name:<12} {took:6.2f} s ({took / MANY * 1000:.0f} ms each)"
            f"   monitor PSS {pss / 1024:.2f} MiB{ratio}"
        )


if __name__ == "__main__":
    main()

"""``make bench``: the per-container monitor, ocirt-shim against conmon (Debian's package).

For each monitor, N ``sleep`` containers are started one after another on the same busybox
rootfs. Printed per monitor: the median time from "start the monitor" to "container pid
known" (for conmon, which only creates, plus the ``runc start`` podman then runs), the mean
RSS and PSS of one monitor process (``/proc/<pid>/smaps_rollup``), and the PSS each extra
container adds: (total after N - total after 1) / (N - 1), the zygote included. PSS splits
a page shared by k processes into k parts, so it is the honest per-container cost.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable

from ocirt.shim.client import ShimOptions, launch
from ocirt.testing.bundle import base_config, make_rootfs, write_config

N = int(os.environ.get("BENCH_SHIMS", "8"))
OCIRT = os.path.join(os.path.dirname(sys.executable), "ocirt")
RUNC = shutil.which("runc") or "/usr/sbin/runc"
CONMON = shutil.which("conmon") or "/usr/bin/conmon"
KiB = 1024


def memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in KiB."""
    values = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss"):
                values[key] = int(rest.split()[0])
    return values["Rss"], values["Pss"]


class Bench:
    def __init__(self, work: str) -> None:
        self.work = work
        self.rootfs = make_rootfs(os.path.join(work, "rootfs"))
        self.root = os.path.join(work, "runtime-root")
        self.cleanups: list[Callable[[], None]] = []

    def bundle(self, cid: str) -> str:
        path = os.path.join(self.work, cid, "bundle")
        os.makedirs(path)
        config = base_config(["sleep", "1000"])
        config["root"]["path"] = self.rootfs
        write_config(path, config)
        return path

    def ocirt_shim(self, runtime: str) -> Callable[[], tuple[int, float]]:
        def start() -> tuple[int, float]:
            cid = f"bench-shim-{uuid.uuid4().hex[:8]}"
            opts = ShimOptions(
                id=cid,
                bundle=self.bundle(cid),
                state_dir=os.path.join(self.work, cid, "shim"),
                runtime=runtime,
                runtime_root=self.root,
                log_path=os.path.join(self.work, cid, "ctr.log"),
                delete_on_exit=True,
            )
            t0 = time.perf_counter()
            handle = launch(opts)
            elapsed = time.perf_counter() - t0
            self.cleanups.append(lambda: self._stop(runtime, cid))
            return handle.shim_pid, elapsed

        return start

    def conmon(self) -> tuple[int, float]:
        """As podman drives it: sync pipe on fd 3, then ``runc start`` once the pid is known."""
        cid = f"bench-conmon-{uuid.uuid4().hex[:8]}"
        base = os.path.join(self.work, cid)
        bundle = self.bundle(cid)
        for d in ("exits", "sockets"):
            os.makedirs(os.path.join(base, d))
        argv = [CONMON, "--api-version", "1", "-c", cid, "-u", cid, "-n", cid, "-r", RUNC, "-b", bundle]
        argv += ["-p", os.path.join(base, "ctr.pid"), "-P", os.path.join(base, "conmon.pid")]
        argv += ["-l", f"k8s-file:{os.path.join(base, 'ctr.log')}", "--exit-dir", os.path.join(base, "exits")]
        argv += ["--socket-dir-path", os.path.join(base, "sockets"), "--log-level", "error"]
        argv += ["--runtime-arg", "--root", "--runtime-arg", self.root]
        r, w = os.pipe()
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            pass_fds=(w,),
            env={**os.environ, "_OCI_SYNCPIPE": str(w)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(w)
        with os.fdopen(r) as sync:
            first = sync.readline()
        if '"data"' not in first or int(first.split(":")[1].strip(" }\n")) <= 0:
            raise SystemExit(f"bench: conmon failed: {first.strip()!r}")
        subprocess.run([RUNC, "--root", self.root, "start", cid], check=True)
        elapsed = time.perf_counter() - t0
        proc.wait()
        with open(os.path.join(base, "conmon.pid")) as f:
            pid = int(f.read())
        self.cleanups.append(lambda: self._stop(RUNC, cid))
        return pid, elapsed

    def bare(self, runtime: str) -> float:
        """``create`` + ``start`` with no monitor: the floor under both monitors' times."""
        cid = f"bench-bare-{uuid.uuid4().hex[:8]}"
        bundle = self.bundle(cid)
        t0 = time.perf_counter()
        with tempfile.TemporaryFile() as out:
            subprocess.run(
                [runtime, "--root", self.root, "create", "--bundle", bundle, cid],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                check=True,
            )
        subprocess.run([runtime, "--root", self.root, "start", cid], check=True)
        elapsed = time.perf_counter() - t0
        subprocess.run([runtime, "--root", self.root, "delete", "--force", cid], check=True)
        return elapsed

    def _stop(self, runtime: str, cid: str) -> None:
        subprocess.run([runtime, "--root", self.root, "kill", cid, "KILL"], capture_output=True)

    def finish(self, pids: list[int]) -> None:
        for cleanup in self.cleanups:
            cleanup()
        self.cleanups.clear()
        deadline = time.monotonic() + 20
        while any(os.path.exists(f"/proc/{p}") for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        for runtime in (OCIRT, RUNC):
            out = subprocess.run([runtime, "--root", self.root, "list", "-q"], capture_output=True, text=True)
            for cid in out.stdout.split():
                subprocess.run([runtime, "--root", self.root, "delete", "--force", cid], capture_output=True)


class Monitor:
    """One kind of monitor: its launcher, the processes that share its cost, its numbers."""

    def __init__(
        self, name: str, start: Callable[[], tuple[int, float]], extra: Callable[[], list[int]]
    ) -> None:
        self.name = name
        self.start = start
        self.extra = extra
        self.pids: list[int] = []
        self.times: list[float] = []
        self.total_1 = 0

    def one(self) -> None:
        pid, elapsed = self.start()
        self.pids.append(pid)
        self.times.append(elapsed)
        if len(self.pids) == 1:
            self.total_1 = sum(memory(p)[1] for p in self.pids + self.extra())

    def report(self) -> tuple[float, float]:
        mems = [memory(p) for p in self.pids]
        total_n = sum(m[1] for m in mems) + sum(memory(p)[1] for p in self.extra())
        per_extra = (total_n - self.total_1) / (len(self.pids) - 1) / KiB
        rss = statistics.mean(m[0] for m in mems) / KiB
        pss = statistics.mean(m[1] for m in mems) / KiB
        median = statistics.median(self.times) * 1000
        print(f"{self.name:<30} {median:8.1f} ms {rss:8.2f} MiB {pss:8.2f} MiB {per_extra:10.2f} MiB")
        return median, per_extra


def run_interleaved(monitors: list[Monitor], bench: Bench) -> list[tuple[float, float]]:
    """Round-robin, so a busy moment on a shared machine hits every monitor alike."""
    try:
        for _ in range(N):
            for m in monitors:
                m.one()
        return [m.report() for m in monitors]
    finally:
        bench.finish([p for m in monitors for p in m.pids])


def zygote_pids(path: str) -> Callable[[], list[int]]:
    def pids() -> list[int]:
        try:
            with open(path + ".pid") as f:
                return [int(f.read())]
        except FileNotFoundError:
            return []

    return pids


def main() -> None:
    if N < 2:
        raise SystemExit("bench: BENCH_SHIMS must be at least 2")
    for tool in (RUNC, CONMON):
        if not os.access(tool, os.X_OK):
            raise SystemExit(f"bench: {tool} is missing (make install adds it)")
    work = tempfile.mkdtemp(prefix="ocirt-bench-shim-")
    zygote = os.path.join(work, "zygote.sock")
    saved = os.environ.get("OCIRT_SHIM_ZYGOTE")
    try:
        bench = Bench(work)
        print(f"per-container monitors, {N} sleep containers each")
        print(f"{'monitor + runtime':<30} {'to pid':>11} {'RSS/shim':>12} {'PSS/shim':>12} {'PSS/extra':>14}")
        os.environ["OCIRT_SHIM_ZYGOTE"] = zygote
        zygote_mode = [
            Monitor("ocirt-shim (zygote) + ocirt", bench.ocirt_shim(OCIRT), zygote_pids(zygote)),
            Monitor("ocirt-shim (zygote) + runc", bench.ocirt_shim(RUNC), zygote_pids(zygote)),
            Monitor("conmon + runc", bench.conmon, list),
        ]
        (ours, ours_pss), _, (conmon, conmon_pss) = run_interleaved(zygote_mode, bench)
        os.environ["OCIRT_SHIM_ZYGOTE"] = "none"
        run_interleaved([Monitor("ocirt-shim (direct) + ocirt", bench.ocirt_shim(OCIRT), list)], bench)
        floors: dict[str, list[float]] = {OCIRT: [], RUNC: []}
        for _ in range(N):
            for rt, samples in floors.items():
                samples.append(bench.bare(rt))
        for rt, samples in floors.items():
            label = f"no monitor: {os.path.basename(rt)} create+start"
            print(f"{label:<30} {statistics.median(samples) * 1000:8.1f} ms")
        ratios = f"time to pid x{ours / conmon:.2f}, PSS/extra x{ours_pss / conmon_pss:.1f}"
        print(f"ocirt-shim+ocirt / conmon+runc: {ratios}")
        print("PSS/extra: what one more container adds, shared pages (and the zygote) included")
    finally:
        for pid in zygote_pids(zygote)():
            os.kill(pid, signal.SIGTERM)
        if saved is None:
            os.environ.pop("OCIRT_SHIM_ZYGOTE", None)
        else:
            os.environ["OCIRT_SHIM_ZYGOTE"] = saved
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""``make bench``: ocirt against runc and crun on this machine, as ratios of median wall time.

Three workloads, each on the same busybox bundles for every runtime: ``run`` of /bin/true,
``create`` + ``start`` + ``delete`` (the calls a manager makes), and ``exec`` of /bin/true
into a running ``sleep`` container. Then one ``ocirt run`` is profiled, to show where the
time goes.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable

from ocirt.testing.bundle import base_config, make_bundle

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "30"))
OCIRT = os.path.join(os.path.dirname(sys.executable), "ocirt")


def ensure_hugetlb_v1() -> None:
    """crun 1.8 refuses a hybrid host whose hugetlb controller sits in the v2 hierarchy."""
    target = "/sys/fs/cgroup/hugetlb"
    if os.path.ismount(target):
        return
    os.makedirs(target, exist_ok=True)
    subprocess.run(["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", target], check=True)


def runtimes() -> dict[str, str]:
    found = {"ocirt": OCIRT}
    for name in ("runc", "crun"):
        path = shutil.which(name)
        if path is None:
            raise SystemExit(f"bench: {name} is not installed (make install adds it)")
        found[name] = path
    return found


def call(argv: list[str]) -> None:
    """No pipes: a created container holds the caller's stdio until it exits."""
    with tempfile.TemporaryFile() as err:
        res = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        if res.returncode != 0:
            err.seek(0)
            raise SystemExit(f"bench: {' '.join(argv)} failed: {err.read().decode().strip()}")


def timed(action: Callable[[str], None]) -> list[float]:
    samples = []
    for _ in range(ROUNDS):
        cid = f"bench-{uuid.uuid4().hex[:8]}"
        start = time.perf_counter()
        action(cid)
        samples.append(time.perf_counter() - start)
    return samples


def measure(binary: str, root: str, bundle: str, sleeper: str) -> dict[str, float]:
    base = [binary, "--root", root]

    def run(cid: str) -> None:
        call([*base, "run", "--bundle", bundle, cid])

    def lifecycle(cid: str) -> None:
        call([*base, "create", "--bundle", bundle, cid])
        call([*base, "start", cid])
        call([*base, "delete", "--force", cid])

    target = f"bench-sleeper-{uuid.uuid4().hex[:6]}"

    def exec_true(_cid: str) -> None:
        call([*base, "exec", target, "/bin/true"])

    run("warmup-" + uuid.uuid4().hex[:6])
    results = {
        "run /bin/true": statistics.median(timed(run)) * 1000,
        "create+start+delete": statistics.median(timed(lifecycle)) * 1000,
    }
    call([*base, "run", "--detach", "--bundle", sleeper, target])
    try:
        exec_true(target)
        results["exec /bin/true"] = statistics.median(timed(exec_true)) * 1000
    finally:
        call([*base, "delete", "--force", target])
    return results


def profile_one_run(root: str, bundle: str) -> str:
    """The parent's profile; the children's setup shows as the time spent waiting in recv.

    ``cli.main``, not the launcher's ``entry``, which leaves with ``os._exit`` before
    cProfile could print."""
    script = (
        "import cProfile, sys; from ocirt.runtime.cli import main; "
        "cProfile.run('main(sys.argv[1:])', sort='cumulative')"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, "--root", root, "run", "--bundle", bundle, "profiled"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return "\n".join(out.splitlines()[:40])


def main() -> int:
    ensure_hugetlb_v1()
    found = runtimes()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "compileall",
            "-q",
            os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        ],
        capture_output=True,
    )
    with tempfile.TemporaryDirectory(prefix="ocirt-bench-") as tmp:
        config = base_config(["/bin/true"])
        config["ociVersion"] = "1.0.2"  # crun 1.8 accepts up to 1.1.x
        bundle = make_bundle(os.path.join(tmp, "bundle"), ["/bin/true"], config)
        sleeping = {**config, "process": {**config["process"], "args": ["sleep", "1000000"]}}
        sleeper = make_bundle(os.path.join(tmp, "sleeper"), ["sleep", "1000000"], sleeping)
        results = {}
        for name, binary in found.items():
            root = os.path.join(tmp, f"root-{name}")
            results[name] = measure(binary, root, bundle, sleeper)
        print(f"median wall time over {ROUNDS} rounds, ms ({os.cpu_count()} cores)")
        print(f"{'workload':<22}{'ocirt':>9}{'runc':>9}{'crun':>9}{'ocirt/runc':>12}{'ocirt/crun':>12}")
        for workload in results["ocirt"]:
            o, r, c = (results[n][workload] for n in ("ocirt", "runc", "crun"))
            print(f"{workload:<22}{o:>9.1f}{r:>9.1f}{c:>9.1f}{o / r:>12.2f}{o / c:>12.2f}")
        print("\nprofile of one `ocirt run` (parent process, cumulative):")
        print(profile_one_run(os.path.join(tmp, "root-ocirt"), bundle))
    return 0


if __name__ == "__main__":
    sys.exit(main())

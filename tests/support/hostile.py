"""Hostile configs from a seed, and the worker that drives them through ``ocirt``.

The generator mutates a small but wide valid config (hooks, rlimits, devices, resources,
seccomp, annotations...) at random places: wrong types, extreme integers, NaN, huge
strings, NUL, lone surrogates, control characters, nesting deeper than any parser's stack,
deleted keys, unknown keys, and whole-document damage (truncated, not UTF-8, not an
object). The same seed always yields the same configs.

The worker (``python hostile.py ROOT BUNDLE MARKER SEED FIRST COUNT EVERY``) runs as a
child subreaper, so every process a case leaves behind becomes its child and is seen. It
forks ``ocirt.runtime.cli.main`` from a warm interpreter for most cases, a fresh ``ocirt``
process for every ``EVERY``-th, then ``delete --force`` (skipped after a refusal that left
no state directory, except in the fresh cases); it prints one JSON line per problem and a
last line of counts.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from typing import Any

DEEP = '"@@deep@@"'  # replaced in the JSON text by nesting deeper than a recursive parser goes
CALL_TIMEOUT = 30.0

_EXTREME_INTS = [
    -1, 0, 1, 2**12, 2**20, 2**31 - 1, 2**31, 2**32 - 2, 2**32 - 1, 2**32, 2**53 + 1,
    2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**31), -(2**63), -(2**63) - 1, -(2**64), 10**100,
]  # fmt: skip
_ODD_NUMBERS = [1.5, -0.0, 1e308, -1e308, float("nan"), float("inf"), float("-inf")]
_HOSTILE_TEXT = [
    "", " ", "\0", "a\0b", "\ud800", "x\udfff", "\n", "ocirt: forged line\n", "\x1b[2J\x1b[H", "\r",
    "\t", "\u2028", "\x7f", "\x85", "é", "\U0001f642", "%s%n%x", "${HOME}", "$(id)", "..", "../..",
    "/", "//", ".", "./", "-", "--help", "*", "a=b", "=", "1e9999",
]  # fmt: skip
_STRUCTURES: list[Any] = [None, True, False, [], {}, [None], [[[]]], {"": None}, {"\0": 1}, ["\ud800"], [1]]


def _huge_text(rng: random.Random) -> str:
    size = rng.choice([256, 4097, 70_000, 300_000])
    kind = rng.randrange(4)
    if kind == 0:
        return "a" * size
    if kind == 1:
        return "/" + "/".join(["d" * 255] * (size // 256 + 1))
    if kind == 2:
        return "".join(rng.choice("\0\n\x1b\ud800aé/") for _ in range(min(size, 5000)))
    return "\n" * size


def hostile_value(rng: random.Random) -> Any:
    pick = rng.randrange(10)
    if pick < 3:
        return rng.choice(_EXTREME_INTS)
    if pick < 4:
        return rng.choice(_ODD_NUMBERS)
    if pick < 6:
        return rng.choice(_HOSTILE_TEXT)
    if pick < 7:
        return _huge_text(rng)
    if pick < 8:
        return rng.choice(_STRUCTURES)
    if pick < 9:
        return [rng.choice(_HOSTILE_TEXT) for _ in range(rng.choice([2, 1000]))]
    return {rng.choice(_HOSTILE_TEXT) + str(i): hostile_value(rng) for i in range(3)}


def base_config(cid: str) -> dict[str, Any]:
    """Valid, and touching most of the spec, so that mutations reach most of the parsers.

    Nothing in it can reach the host: its sysctls are absent, hooks run ``/bin/true``, and
    its cgroup is named after the case.
    """
    from ocirt.testing.bundle import base_config as busybox_config

    cfg = busybox_config(["true"])
    cfg["process"].update(
        rlimits=[{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        capabilities={k: ["CAP_CHOWN", "CAP_KILL"] for k in ("bounding", "effective", "permitted")},
        oomScoreAdj=0,
    )
    cfg["process"]["user"].update(additionalGids=[1, 2], umask=0o22)
    cfg["annotations"] = {"org.example.key": "value"}
    cfg["hooks"] = {
        kind: [{"path": "/bin/true", "args": ["true", "x"], "env": ["A=b"], "timeout": 5}]
        for kind in ("prestart", "createRuntime", "poststop")
    }
    cfg["mounts"].append({"destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]})
    cfg["linux"].update(
        devices=[{"path": "/dev/fuzz", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666}],
        resources={
            "memory": {"limit": 256 << 20},
            "pids": {"limit": 64},
            "cpu": {"shares": 512},
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 3},
            ],
        },
        cgroupsPath=cid,
        seccomp={
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
        },
    )
    return cfg


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _paths(item, (*path, i))
    return found


def _mutate_at(cfg: dict[str, Any], path: tuple[Any, ...], rng: random.Random, cid: str) -> None:
    parent: Any = cfg
    for step in path[:-1]:
        parent = parent[step]
    key = path[-1]
    old = parent[key]
    op = rng.randrange(10)
    if op == 0 and isinstance(parent, dict):
        del parent[key]
        return
    if op == 1 and isinstance(old, dict):
        old[rng.choice(_HOSTILE_TEXT) or "unknown"] = hostile_value(rng)
        return
    if op == 2 and isinstance(old, str):
        new: Any = old + rng.choice(["\0", "\ud800", "\n", "\x1b[31m", "\u2028"]) + old
    elif op in (4, 5) and isinstance(old, (str, int)) and not isinstance(old, bool):
        new = _well_typed(old, rng)
    elif op == 3:
        new = "@@deep@@"
    else:
        new = hostile_value(rng)
    parent[key] = _confine(path, new, cid)


def _well_typed(old: str | int, rng: random.Random) -> str | int:
    """Hostile but of the right type and encodable, so that it passes the document check
    and reaches the stages after it (mounts, cgroup files, hooks, the kernel)."""
    if isinstance(old, int):
        return rng.choice([v for v in _EXTREME_INTS if -(2**63) <= v < 2**64])
    printable = [t for t in _HOSTILE_TEXT if "\0" not in t and "\ud800" not in t and "\udfff" not in t]
    pick = rng.randrange(3)
    if pick == 0:
        return rng.choice(printable)
    if pick == 1:
        return old + rng.choice(printable) + old
    return old + rng.choice(["x", "\n", "é", "/"]) * rng.choice([100, 5000, 70_000])


def _confine(path: tuple[Any, ...], value: Any, cid: str) -> Any:
    """Keep a mutation from reaching the host through the fields that name host places: the
    rootfs must stay inside the bundle (mount points are made in it), the cgroup must be one
    directory named after the case (so that one left behind is found, and no parent made
    on the way can be mistaken for one), propagation must not become shared, and hooks (run
    on the host) must not name a real program."""
    field = ".".join(str(p) for p in path)
    if not isinstance(value, str):
        return value
    if field == "root.path" and (value.startswith("/") or ".." in value):
        return "rootfs" + value.replace("..", "").replace("/", "")
    if field == "linux.cgroupsPath":
        return f"{cid}-{value}".replace("/", "_")
    if field == "linux.rootfsPropagation" and "shared" in value:
        return "x"
    if field.startswith("hooks.") and field.endswith(".path"):
        return "/nonexistent/" + value
    return value


def _keep_mount_namespace(cfg: dict[str, Any]) -> None:
    """Without one, a container's mounts are made in the host's mount namespace (as runc
    does): the cases must not put mounts on this host, so whatever a mutation did to
    ``linux`` and its namespaces, a well-typed list still holds the mount namespace."""
    if cfg.get("linux") is None:
        cfg["linux"] = {}
    linux = cfg["linux"]
    if isinstance(linux, dict):
        if linux.get("namespaces") is None:
            linux["namespaces"] = []
        spaces = linux["namespaces"]
        if isinstance(spaces, list) and not any(
            isinstance(n, dict) and n.get("type") == "mount" for n in spaces
        ):
            spaces.append({"type": "mount"})


def hostile_config(rng: random.Random, cid: str) -> tuple[str, bytes]:
    """A label saying what was done, and the config.json bytes."""
    cfg = base_config(cid)
    damage = rng.randrange(40)
    if damage == 0:
        text = json.dumps(cfg)
        return "truncated", text[: rng.randrange(len(text))].encode()
    if damage == 1:
        return "top-level value", json.dumps(hostile_value(rng)).encode()
    if damage == 2:
        return "deep top", ("[" * 100_000 + "]" * 100_000).encode()
    if damage == 3:
        return "not utf-8", json.dumps(cfg).encode()[:50] + b"\xff\xfe\xc0" + json.dumps(cfg).encode()[50:]
    labels = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        path = rng.choice(_paths(cfg)[1:])
        _mutate_at(cfg, path, rng, cid)
        labels.append(".".join(str(p) for p in path))
    _keep_mount_namespace(cfg)
    ascii_only = rng.random() < 0.8
    text = json.dumps(cfg, ensure_ascii=ascii_only)
    if DEEP in text:
        depth = rng.choice([1000, 100_000])
        text = text.replace(DEEP, "[" * depth + "]" * depth, 1)
    return ",".join(labels), text.encode(errors="surrogatepass")


# --- the worker ---------------------------------------------------------------------------


def _call(argv: list[str], fresh: bool) -> tuple[int | None, str]:
    """Exit status (None on a hang, killed) and the combined output of one ``ocirt`` call."""
    with tempfile.TemporaryFile() as out:
        if fresh:
            ocirt = os.path.join(os.path.dirname(sys.executable), "ocirt")
            proc = subprocess.Popen([ocirt, *argv], stdin=subprocess.DEVNULL, stdout=out, stderr=out)
            try:
                status: int | None = proc.wait(CALL_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                status = None
        else:
            status = _forked_main(argv, out.fileno())
        out.seek(0)
        return status, out.read().decode(errors="backslashreplace")


def _forked_main(argv: list[str], out: int) -> int | None:
    pid = os.fork()
    if pid == 0:
        status = 70
        try:
            os.dup2(out, 1)
            os.dup2(out, 2)
            from ocirt.runtime import cli

            status = cli.main(argv)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
    deadline = time.monotonic() + CALL_TIMEOUT
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.001)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return None


def judge(status: int | None, output: str) -> str | None:
    """runc's contract: exit 0, or exit 1 with exactly one ``ocirt: `` line (warnings aside)."""
    if status is None:
        return "hang"
    if "Traceback" in output or "internal error" in output:
        return "traceback or internal error"
    lines = [line for line in output.splitlines() if "level=warning" not in line]
    if status == 0:
        return None if not lines else "output on success"
    if status != 1:
        return f"exit status {status}"
    if len(lines) != 1 or not lines[0].startswith("ocirt: "):
        return f"{len(lines)} lines, not one ocirt: line"
    return None


def _orphans() -> list[int]:
    """Children the subreaper inherited and that are still alive after reaping zombies."""
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break
    found = []
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/children") as f:
            found += [int(p) for p in f.read().split()]
    return found


def leftover_processes() -> list[int]:
    deadline = time.monotonic() + 2
    while (left := _orphans()) and time.monotonic() < deadline:
        time.sleep(0.01)
    for pid in left:
        os.kill(pid, 9)
    return left


def cgroups_named(cid: str) -> list[str]:
    """Cgroup directories on the host named ``cid`` or ``cid-...`` (the hostile variants)."""
    found = []
    for top in os.listdir("/sys/fs/cgroup"):
        base = os.path.join("/sys/fs/cgroup", top)
        if os.path.isdir(base) and not os.path.islink(base):
            for dirpath, dirnames, _ in os.walk(base):
                found += [f"{dirpath}/{d}" for d in dirnames if d == cid or d.startswith(cid + "-")]
    return found


def mounts_under(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if path in line]


def scrub(cgroups: list[str], mounts: list[str]) -> None:
    """Undo what a failing case left (after reporting it): the host stays clean either way."""
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
    for path in sorted(cgroups, key=len, reverse=True):
        deadline = time.monotonic() + 2  # killed members take a moment to leave
        while True:
            try:
                os.rmdir(path)
                break
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)


def run_worker(root: str, bundle: str, marker: str, seed: int, first: int, count: int, every: int) -> None:
    from ocirt.runtime import syscalls

    syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)
    counts = {"cases": 0, "created": 0, "refused": 0, "fresh": 0}
    for index in range(first, first + count):
        cid = f"{marker}-{index}"
        label, data = hostile_config(random.Random(f"{seed}-{index}"), cid)
        with open(os.path.join(bundle, "config.json"), "wb") as f:
            f.write(data)
        fresh = index % every == 0
        problems = []
        status, output = _call(["--root", root, "create", "--bundle", bundle, cid], fresh)
        if verdict := judge(status, output):
            problems.append(f"create: {verdict}")
        d_status: int | None = 0
        d_output = ""
        if status != 1 or fresh or os.path.exists(os.path.join(root, cid)):
            d_status, d_output = _call(["--root", root, "delete", "--force", cid], fresh)
        if d_status != 0 or judge(d_status, d_output):
            problems.append(f"delete --force: {judge(d_status, d_output) or 'failed'}")
        if os.path.exists(os.path.join(root, cid)):
            problems.append("state directory left")
        if left := leftover_processes():
            problems.append(f"processes left: {left}")
        if left_cgroups := cgroups_named(cid):
            problems.append(f"cgroups left: {left_cgroups[:3]}")
        if left_mounts := mounts_under(bundle):
            problems.append(f"mounts left: {left_mounts[:3]}")
        scrub(left_cgroups, left_mounts)
        counts["cases"] += 1
        counts["fresh"] += fresh
        counts["created" if status == 0 else "refused"] += 1
        if problems:
            report = {"index": index, "mutated": label[:300], "problems": problems}
            report |= {"create": output[-600:], "delete": d_output[-600:]}
            print(json.dumps(report), flush=True)
    print(json.dumps({"counts": counts}), flush=True)


if __name__ == "__main__":
    root_arg, bundle_arg, marker_arg = sys.argv[1:4]
    run_worker(root_arg, bundle_arg, marker_arg, *(int(a) for a in sys.argv[4:8]))

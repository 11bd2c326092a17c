"""``ocirtctl events`` against docker's: one scripted container session in a private
dockerd 20.10 (ocirt as its runtime) and in an ocirtctl root, then both ``events --since
--until --filter container=... --format '{{json .}}'`` compared: the same actions in the
same order, the same message keys, the same attribute names, and the same exit codes and
signals; ids and times differ by nature and are compared by type."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from integration.test_docker import IMAGE, TRAP_LOOP
from integration.test_docker_shapes import Pair, pair  # noqa: F401 - the shared fixture


def session_events(run: Any, since: float, name: str) -> list[dict[str, Any]]:
    run("create", "--name", name, "--network", "none", "-l", "team=a", IMAGE, "sh", "-c", TRAP_LOOP).ok()
    run("start", name).ok()
    run("stop", name).ok()
    run("start", name).ok()
    run("kill", name).ok()
    run("wait", name)
    run("rm", name).ok()
    window = ("--since", f"{since:.3f}", "--until", f"{time.time() + 0.5:.3f}")
    out = run("events", *window, "--filter", f"container={name}", "--format", "{{json .}}").ok().stdout
    return [json.loads(line) for line in out.splitlines()]


def test_a_container_session_emits_dockers_events(pair: Pair) -> None:  # noqa: F811
    t0 = time.time()
    theirs = session_events(pair.docker, t0, "evd")
    ours = session_events(pair.ocirtctl, t0, "evd")
    assert [e["Action"] for e in ours] == [e["Action"] for e in theirs]
    assert [e["Action"] for e in theirs] == [
        "create",
        "start",
        "kill",
        "die",
        "stop",
        "start",
        "kill",
        "die",
        "destroy",
    ]
    for mine, docker in zip(ours, theirs, strict=True):
        assert list(mine) == list(docker)
        assert set(mine["Actor"]["Attributes"]) == set(docker["Actor"]["Attributes"]), mine["Action"]
        for key in ("exitCode", "signal", "name", "team"):
            assert mine["Actor"]["Attributes"].get(key) == docker["Actor"]["Attributes"].get(key)
        assert (mine["Type"], mine["scope"], mine["status"]) == (
            docker["Type"],
            docker["scope"],
            docker["status"],
        )
        assert type(mine["time"]) is type(docker["time"]) is int
        assert type(mine["timeNano"]) is type(docker["timeNano"]) is int


def object_events(run: Any, since: float) -> list[dict[str, Any]]:
    run("network", "create", "evdnet").ok()
    run("network", "rm", "evdnet").ok()
    run("volume", "create", "evdvol").ok()
    run("volume", "rm", "evdvol").ok()
    run("tag", IMAGE, "evdtag:1").ok()
    run("rmi", "evdtag:1").ok()
    window = ("--since", f"{since:.3f}", "--until", f"{time.time() + 0.5:.3f}")
    out = run("events", *window, "--format", "{{json .}}").ok().stdout
    return [json.loads(line) for line in out.splitlines()]


def test_network_volume_and_image_events_match_dockers(pair: Pair) -> None:  # noqa: F811
    t0 = time.time()
    theirs, ours = object_events(pair.docker, t0), object_events(pair.ocirtctl, t0)

    def shape(e: dict[str, Any]) -> tuple[Any, ...]:
        attrs = e["Actor"]["Attributes"]
        named = attrs.get("name") if e["Type"] != "image" or e["Action"] == "tag" else "<id>"
        return e["Type"], e["Action"], sorted(attrs), named, list(e)

    assert [shape(e) for e in ours] == [shape(e) for e in theirs]


def exec_events(run: Any, since: float) -> list[dict[str, Any]]:
    run("run", "-d", "--name", "evx", "--network", "none", IMAGE, "sh", "-c", TRAP_LOOP).ok()
    assert run("exec", "evx", "sh", "-c", "exit 4").returncode == 4
    run("rm", "-f", "evx").ok()
    window = ("--since", f"{since:.3f}", "--until", f"{time.time() + 0.5:.3f}")
    out = run("events", *window, "-f", "container=evx", "--format", "{{json .}}").ok().stdout
    return [json.loads(line) for line in out.splitlines()]


def test_exec_and_rm_f_events_match_dockers(pair: Pair) -> None:  # noqa: F811
    t0 = time.time()
    theirs, ours = exec_events(pair.docker, t0), exec_events(pair.ocirtctl, t0)

    def shape(e: dict[str, Any]) -> tuple[Any, ...]:
        attrs = e["Actor"]["Attributes"]
        return e["Action"], sorted(attrs), attrs.get("exitCode"), attrs.get("signal")

    assert [shape(e) for e in ours] == [shape(e) for e in theirs]


def healthy(run: Any, name: str) -> dict[str, Any]:
    flags = ["--health-cmd", "echo ok", "--health-interval", "300ms", "--health-retries", "1"]
    run("run", "-d", "--name", name, "--network", "none", *flags, IMAGE, "sh", "-c", TRAP_LOOP).ok()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        doc: dict[str, Any] = json.loads(run("inspect", name).ok().stdout)[0]
        if doc["State"].get("Health", {}).get("Status") == "healthy":
            return doc
        time.sleep(0.2)
    raise AssertionError(f"{name} never became healthy")


def test_health_matches_dockers(pair: Pair) -> None:  # noqa: F811
    t0 = time.time()
    theirs, ours = (
        healthy(pair.docker, "evh")["State"]["Health"],
        healthy(pair.ocirtctl, "evh")["State"]["Health"],
    )
    assert list(ours) == list(theirs) and ours["FailingStreak"] == theirs["FailingStreak"] == 0
    assert [list(e) for e in ours["Log"][:1]] == [list(e) for e in theirs["Log"][:1]]
    assert (ours["Log"][0]["ExitCode"], ours["Log"][0]["Output"]) == (0, "ok\n") == (
        theirs["Log"][0]["ExitCode"], theirs["Log"][0]["Output"])  # fmt: skip
    window = ("--since", f"{t0:.3f}", "--until", f"{time.time():.3f}", "-f", "event=health_status")
    for run in (pair.docker, pair.ocirtctl):
        out = run("events", *window, "-f", "container=evh", "--format", "{{.Action}}").ok().stdout
        assert out == "health_status: healthy\n"
        run("rm", "-f", "evh").ok()


def archive_events(run: Any, since: float, tmp: str) -> list[dict[str, Any]]:
    out = os.path.join(tmp, "saved.tar")
    run("save", "-o", out, IMAGE).ok()
    run("load", "-i", out).ok()
    window = ("--since", f"{since:.3f}", "--until", f"{time.time() + 0.5:.3f}")
    found = run("events", *window, "-f", "type=image", "--format", "{{json .}}").ok().stdout
    return [json.loads(line) for line in found.splitlines()]


def test_save_and_load_events_match_dockers(pair: Pair, tmp_path: Any) -> None:  # noqa: F811
    t0 = time.time()
    theirs = archive_events(pair.docker, t0, str(tmp_path))
    ours = archive_events(pair.ocirtctl, t0, str(tmp_path))

    def shape(e: dict[str, Any]) -> tuple[Any, ...]:
        attrs = e["Actor"]["Attributes"]
        return e["Action"], sorted(attrs), attrs.get("name") == e["Actor"]["ID"], list(e)

    assert [shape(e) for e in ours] == [shape(e) for e in theirs]


def volume_events(run: Any, since: float) -> list[dict[str, Any]]:
    run("volume", "create", "evv").ok()
    mounts = ["-v", "evv:/data", "-v", "/data2", "-v", "evv:/ro:ro"]
    run("run", "-d", "--name", "evvc", *mounts, "--network", "none", IMAGE, "sh", "-c", TRAP_LOOP).ok()
    run("stop", "evvc").ok()
    run("rm", "-v", "evvc").ok()
    run("volume", "rm", "evv").ok()
    window = ("--since", f"{since:.3f}", "--until", f"{time.time() + 0.5:.3f}")
    out = run("events", *window, "-f", "type=volume", "--format", "{{json .}}").ok().stdout
    return [json.loads(line) for line in out.splitlines()]


def test_volume_events_of_a_container_match_dockers(pair: Pair) -> None:  # noqa: F811
    t0 = time.time()
    theirs, ours = volume_events(pair.docker, t0), volume_events(pair.ocirtctl, t0)

    def shape(e: dict[str, Any]) -> tuple[Any, ...]:
        attrs = dict(e["Actor"]["Attributes"])
        named = e["Actor"]["ID"] if e["Actor"]["ID"] == "evv" else "<anonymous>"
        attrs.pop("container", None)
        return e["Action"], named, attrs

    assert sorted(map(str, (shape(e) for e in ours))) == sorted(map(str, (shape(e) for e in theirs)))
    assert [e["Action"] for e in ours] == [e["Action"] for e in theirs]


def test_a_foreground_run_attaches_before_it_starts(pair: Pair) -> None:  # noqa: F811
    t0 = time.time()
    for run in (pair.docker, pair.ocirtctl):
        run("run", "--name", "eva", "--network", "none", IMAGE, "true").ok()
        run("rm", "eva").ok()
    window = ("--since", f"{t0:.3f}", "--until", f"{time.time() + 0.5:.3f}", "-f", "container=eva")
    theirs, ours = (
        run("events", *window, "--format", "{{.Action}}").ok().stdout for run in (pair.docker, pair.ocirtctl)
    )
    assert ours == theirs == "create\nattach\nstart\ndie\ndestroy\n"

"""``ocirtctl events``: real lifecycles of containers, images, networks and volumes recorded
and read back in docker's shapes (Engine API v1.41 ``events.Message``), with the action
names and attributes docker's documentation lists (create, start, kill with ``signal``, die
with ``exitCode``, stop, destroy, tag, untag, delete, pull, network create/connect/
disconnect/destroy, volume create/destroy), docker's filters, time arguments and follow."""

from __future__ import annotations

import calendar
import json
import re
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from ocirt.manager.errors import ManagerError
from ocirt.manager.timeargs import go_duration_ns, timestamp_ns
from support import registry
from support.ctl import OCIRTCTL, Manager, checked, manager


@pytest.fixture(scope="module")
def mgr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Manager]:
    with manager(str(tmp_path_factory.mktemp("events"))) as m:
        yield m


@pytest.fixture
def ctl(mgr: Manager) -> Iterator[Manager]:
    with checked(mgr) as m:
        yield m


def recorded(ctl: Manager, since: float, *flags: str) -> list[dict[str, Any]]:
    """The events from ``since`` to now, as docker's JSON messages."""
    until = f"{time.time():.9f}"
    out = ctl("events", "--since", f"{since:.9f}", "--until", until, "--format", "{{json .}}", *flags).stdout
    return [json.loads(line) for line in out.splitlines()]


def test_container_lifecycle(ctl: Manager) -> None:
    t0 = time.time()
    trap = "trap 'exit 3' TERM; while :; do sleep 0.1; done"
    cid = ctl(
        "create", "--name", "ev1", "--label", "team=blue", "--network", "none", ctl.httpd, "sh", "-c", trap
    ).stdout.strip()
    ctl("start", "ev1")
    ctl("stop", "-t", "20", "ev1")
    ctl("start", "ev1")
    ctl("kill", "ev1")
    ctl("wait", "ev1")
    ctl("rm", "ev1")
    evs = recorded(ctl, t0, "--filter", "container=ev1")
    assert [
        (e["Action"], e["Actor"]["Attributes"].get("signal") or e["Actor"]["Attributes"].get("exitCode"))
        for e in evs
    ] == [
        ("create", None),
        ("start", None),
        ("kill", "15"),
        ("die", "3"),
        ("stop", None),
        ("start", None),
        ("kill", "9"),
        ("die", "137"),
        ("destroy", None),
    ]
    for e in evs:
        assert list(e) == ["status", "id", "from", "Type", "Action", "Actor", "scope", "time", "timeNano"]
        assert (e["status"], e["id"], e["from"], e["Type"], e["scope"]) == (
            e["Action"],
            cid,
            ctl.httpd,
            "container",
            "local",
        )
        assert e["Actor"]["ID"] == cid
        attrs = e["Actor"]["Attributes"]
        assert (attrs["image"], attrs["name"], attrs["team"]) == (ctl.httpd, "ev1", "blue")
        assert e["time"] == e["timeNano"] // 10**9 and t0 * 1e9 <= e["timeNano"] <= time.time_ns()
    assert [e["timeNano"] for e in evs] == sorted(e["timeNano"] for e in evs)


def test_plain_lines_are_docker_cli_lines(ctl: Manager) -> None:
    t0 = time.time()
    cid = ctl(
        "create", "--name", "ev2", "--label", "b=2", "--network", "none", ctl.httpd, "true"
    ).stdout.strip()
    ctl("rm", "ev2")
    out = ctl(
        "events", "--since", f"{t0:.9f}", "--until", f"{time.time():.9f}", "-f", "container=" + cid[:12]
    ).stdout
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(Z|[+-]\d\d:\d\d)"
    attrs = re.escape(f"(b=2, image={ctl.httpd}, name=ev2)")
    lines = out.splitlines()
    assert len(lines) == 2, out
    for line, action in zip(lines, ("create", "destroy"), strict=True):
        assert re.fullmatch(f"{stamp} container {action} {cid} {attrs}", line), line


def test_image_network_volume_actions(ctl: Manager) -> None:
    pulled = recorded(ctl, 0, "--filter", "type=image", "--filter", "event=pull")
    assert [e["Actor"]["ID"] for e in pulled] == [ctl.httpd, ctl.data]  # the fixture's pulls
    assert pulled[0]["Actor"]["Attributes"] == {"name": ctl.httpd.rpartition(":")[0]}
    assert "from" not in pulled[0] and pulled[0]["status"] == "pull"
    t0 = time.time()
    image_id = ctl("image", "inspect", "--format", "{{.Id}}", ctl.httpd).stdout.strip()
    ctl("tag", ctl.httpd, "evtag:v1")
    ctl("rmi", "evtag:v1")
    net = ctl("network", "create", "evnet").stdout.strip()
    ctl("network", "rm", "evnet")
    ctl("volume", "create", "evvol")
    ctl("volume", "rm", "evvol")
    evs = recorded(ctl, t0)
    shapes = [(e["Type"], e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"]) for e in evs]
    assert shapes == [
        ("image", "tag", image_id, {"name": "evtag:v1"}),
        ("image", "untag", image_id, {"name": image_id}),
        ("network", "create", net, {"name": "evnet", "type": "bridge"}),
        ("network", "destroy", net, {"name": "evnet", "type": "bridge"}),
        ("volume", "create", "evvol", {"driver": "local"}),
        ("volume", "destroy", "evvol", {"driver": "local"}),
    ]
    for e in evs[2:]:  # docker fills the deprecated status/id/from for containers and images only
        assert list(e) == ["Type", "Action", "Actor", "scope", "time", "timeNano"]
    assert [e["Action"] for e in recorded(ctl, t0, "-f", "network=evnet", "-f", "volume=evvol")] == []
    assert [e["Type"] for e in recorded(ctl, t0, "-f", "event=create")] == ["network", "volume"]
    assert [e["Action"] for e in recorded(ctl, t0, "-f", "volume=evvol")] == ["create", "destroy"]
    assert [e["Action"] for e in recorded(ctl, t0, "-f", "image=evtag")] == ["tag"]
    assert [e["Actor"]["ID"] for e in recorded(ctl, t0, "-f", "label=driver=local")] == ["evvol", "evvol"]


def test_container_on_network_connects_and_disconnects(ctl: Manager) -> None:
    t0 = time.time()
    net = ctl("network", "create", "evnet2").stdout.strip()
    cid = ctl("run", "-d", "--name", "ev3", "--network", "evnet2", ctl.httpd, "sleep", "60").stdout.strip()
    ctl("rm", "-f", "ev3")
    ctl("network", "rm", "evnet2")
    evs = recorded(ctl, t0, "-f", "network=evnet2")
    assert [(e["Action"], e["Actor"]["Attributes"].get("container")) for e in evs] == [
        ("create", None),
        ("connect", cid),
        ("disconnect", cid),
        ("destroy", None),
    ]
    assert {e["Actor"]["ID"] for e in evs} == {net}
    # rm -f kills (signal 9) and destroys, with no stop event, as docker's
    assert [e["Action"] for e in recorded(ctl, t0, "-f", "container=ev3")] == [
        "create",
        "start",
        "kill",
        "die",
        "destroy",
    ]


def events_process(ctl: Manager, *flags: str) -> subprocess.Popen[str]:
    fmt = '{{.Action}} {{.Actor.ID}} {{index .Actor.Attributes "driver"}}'
    args = [OCIRTCTL, "--root", ctl.root, "events", "-f", "type=volume", "--format", fmt, *flags]
    return subprocess.Popen(args, stdout=subprocess.PIPE, text=True)


def test_follows_new_events_live(ctl: Manager) -> None:
    with events_process(ctl) as proc:
        assert proc.stdout is not None
        try:
            time.sleep(1.5)  # without --since or --until only events after its start are shown
            ctl("volume", "create", "evlive")
            ctl("volume", "rm", "evlive")
            assert proc.stdout.readline() == "create evlive local\n"
            assert proc.stdout.readline() == "destroy evlive local\n"
        finally:
            proc.terminate()


def test_since_and_future_until_replay_then_follow_then_end(ctl: Manager) -> None:
    t0 = time.time()
    ctl("volume", "create", "evfollow")
    until = time.time() + 6
    with events_process(ctl, "--since", f"{t0:.9f}", "--until", f"{until:.3f}") as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "create evfollow local\n"
        ctl("volume", "rm", "evfollow")
        assert proc.stdout.readline() == "destroy evfollow local\n"
        assert proc.wait(timeout=20) == 0
        assert time.time() >= until


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--filter", "colour=red"], "ocirtctl: --filter: invalid filter 'colour'\n"),
        (["--filter", "type"], "ocirtctl: --filter 'type': bad format of filter (expected name=value)\n"),
        (
            ["--since", "yesterday"],
            "ocirtctl: --since: invalid time 'yesterday' (RFC 3339, unix seconds or a duration such as"
            " 10m)\n",
        ),
        (["--until", "0", "--format", "{{.Nope"], None),
    ],
)
def test_bad_arguments_are_one_line(ctl: Manager, flags: list[str], message: str | None) -> None:
    done = ctl("events", *flags, check=False)
    assert done.returncode != 0 and len(done.stderr.splitlines()) == 1, done.stderr
    if message is not None:
        assert (done.returncode, done.stderr) == (125, message)


def test_time_arguments_as_docker_reads_them() -> None:
    now = 1_700_000_000 * 10**9
    assert timestamp_ns("10m", "--since", now) == now - 600 * 10**9
    assert timestamp_ns("1h30m", "--since", now) == now - 5400 * 10**9
    assert timestamp_ns("1.5s", "--since", now) == now - 1_500_000_000
    assert timestamp_ns("300ms", "--since", now) == now - 300_000_000
    assert timestamp_ns("1136073600", "--since", now) == 1136073600 * 10**9
    assert timestamp_ns("1136073600.000000001", "--since", now) == 1136073600 * 10**9 + 1
    expected = calendar.timegm((2006, 1, 2, 15, 4, 5, 0, 0, 0)) * 10**9
    assert timestamp_ns("2006-01-02T15:04:05Z", "--since", now) == expected
    assert timestamp_ns("2006-01-02T15:04:05.5Z", "--since", now) == expected + 500_000_000
    assert timestamp_ns("2006-01-02T16:04:05+01:00", "--since", now) == expected
    assert go_duration_ns("-2h") == -7200 * 10**9 and go_duration_ns("2006") is None
    with pytest.raises(ManagerError, match="--until: invalid time '10 minutes'"):
        timestamp_ns("10 minutes", "--until", now)


def test_exec_events(ctl: Manager) -> None:
    t0 = time.time()
    cid = ctl("run", "-d", "--name", "ev5", "--network", "none", ctl.httpd, "sleep", "60").stdout.strip()
    assert ctl("exec", "ev5", "sh", "-c", "exit 4", check=False).returncode == 4
    evs = recorded(ctl, t0, "-f", "container=ev5")
    ctl("rm", "-f", "ev5")
    execs = [e for e in evs if e["Action"].startswith("exec_")]
    assert [e["Action"] for e in execs] == [
        "exec_create: sh -c exit 4",
        "exec_start: sh -c exit 4",
        "exec_die",
    ]
    assert len({e["Actor"]["Attributes"]["execID"] for e in execs}) == 1
    assert execs[2]["Actor"]["Attributes"]["exitCode"] == "4" and all(e["id"] == cid for e in execs)
    # docker matches exec_create/exec_start/health_status by prefix, the rest exactly
    assert len(recorded(ctl, t0, "-f", "container=ev5", "-f", "event=exec_create")) == 1
    assert len(recorded(ctl, t0, "-f", "container=ev5", "-f", "event=exec_die")) == 1


def test_push_save_and_import_events(ctl: Manager, tmp_path: Any) -> None:
    t0 = time.time()
    image_id = ctl("image", "inspect", "--format", "{{.Id}}", ctl.httpd).stdout.strip()
    with registry.running(str(tmp_path / "registry")) as reg:
        dest = reg.ref("events/pushed:2")
        ctl("push", "-q", "--tls-verify=false", ctl.httpd, dest)
    saved = str(tmp_path / "saved.tar")
    ctl("save", "-o", saved, ctl.httpd)
    imported = ctl("import", saved, "evimport:1").stdout.strip()
    ctl("rmi", "evimport:1")
    evs = [
        (e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"])
        for e in recorded(ctl, t0, "-f", "type=image")
    ]
    assert evs[:3] == [
        ("push", dest, {"name": dest.rpartition(":")[0]}),
        ("save", image_id, {"name": image_id}),
        ("import", imported, {"name": imported}),
    ]

"""Healthchecks: a real container whose health command flips (a file the test creates and
removes through ``exec``) goes starting → healthy → unhealthy under docker's rules
(``--health-retries`` failures in a row), ``State.Health`` keeps the streak and the last
five results as docker's (Start, End, ExitCode, Output), ``health_status`` events come on
each change, a check past its timeout counts as exit code -1, and bad flags are one line."""

from __future__ import annotations

import os
import re
import tarfile
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support import images as test_images
from support.ctl import Manager, checked, manager


@pytest.fixture(scope="module")
def mgr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Manager]:
    with manager(str(tmp_path_factory.mktemp("health"))) as m:
        yield m


@pytest.fixture
def ctl(mgr: Manager) -> Iterator[Manager]:
    with checked(mgr) as m:
        yield m


def health(ctl: Manager, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = ctl.inspect(name)["State"]["Health"]
    return doc


def ps_status(ctl: Manager, name: str) -> str:
    return ctl("ps", "-a", "-f", f"name={name}", "--format", "{{.Status}}").stdout.strip()


def wait_status(ctl: Manager, name: str, status: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = health(ctl, name)
        if doc["Status"] == status:
            return doc
        time.sleep(0.2)
    raise AssertionError(f"{name} never became {status}: {health(ctl, name)}")


def test_a_flipping_check(ctl: Manager) -> None:
    t0 = time.time()
    check = "test -f /tmp/ok && echo fine || { echo missing; exit 1; }"
    timing = ["--health-interval", "300ms", "--health-retries", "2", "--health-start-period", "60s"]
    ctl(
        "run",
        "-d",
        "--name",
        "hc1",
        "--network",
        "none",
        "--health-cmd",
        check,
        *timing,
        ctl.httpd,
        "sleep",
        "120",
    )
    time.sleep(1)  # failures in the start period, before any success, do not count
    doc = health(ctl, "hc1")
    assert doc["Status"] == "starting" and doc["FailingStreak"] == 0 and doc["Log"][-1]["ExitCode"] == 1
    assert ps_status(ctl, "hc1").endswith(" (health: starting)")  # docker's STATUS column
    ctl("exec", "hc1", "touch", "/tmp/ok")
    doc = wait_status(ctl, "hc1", "healthy")
    assert (
        doc["FailingStreak"] == 0 and doc["Log"][-1]["ExitCode"] == 0 and doc["Log"][-1]["Output"] == "fine\n"
    )
    assert re.fullmatch(r"Up .* \(healthy\)", ps_status(ctl, "hc1"))
    ctl("exec", "hc1", "rm", "/tmp/ok")
    doc = wait_status(ctl, "hc1", "unhealthy")
    assert doc["FailingStreak"] >= 2 and doc["Log"][-1] | {"Start": "", "End": ""} == {
        "Start": "", "End": "", "ExitCode": 1, "Output": "missing\n"}  # fmt: skip
    assert ps_status(ctl, "hc1").endswith(" (unhealthy)")
    time.sleep(2)
    doc = health(ctl, "hc1")
    assert len(doc["Log"]) == 5 and all(e["Start"] <= e["End"] for e in doc["Log"])
    events = ctl("events", "--since", f"{t0:.3f}", "--until", f"{time.time():.3f}", "-f", "container=hc1",
                 "-f", "event=health_status", "--format", "{{.Action}}").stdout.split("\n")  # fmt: skip
    assert events[:-1] == ["health_status: healthy", "health_status: unhealthy"]
    ctl("stop", "-t", "1", "hc1")
    stopped = health(ctl, "hc1")  # docker's: unhealthy once stopped, the results kept
    assert stopped["Status"] == "unhealthy" and len(stopped["Log"]) == 5
    ctl("rm", "-f", "hc1")


def test_a_check_past_its_timeout_fails_with_minus_one(ctl: Manager) -> None:
    timing = ["--health-interval", "200ms", "--health-timeout", "300ms", "--health-retries", "1"]
    ctl(
        "run",
        "-d",
        "--name",
        "hc2",
        "--network",
        "none",
        "--health-cmd",
        "sleep 5",
        *timing,
        ctl.httpd,
        "sleep",
        "120",
    )
    doc = wait_status(ctl, "hc2", "unhealthy")
    assert doc["Log"][-1]["ExitCode"] == -1 and "exceeded timeout" in doc["Log"][-1]["Output"]
    ctl("rm", "-f", "hc2")


def test_no_healthcheck_has_no_health(ctl: Manager) -> None:
    ctl("create", "--name", "hc3", "--network", "none", "--no-healthcheck", ctl.httpd, "true")
    assert "Health" not in ctl.inspect("hc3")["State"]
    ctl("rm", "hc3")


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--health-interval", "soon"], "--health-interval: invalid duration 'soon'"),
        (["--health-timeout", "10us"], "--health-timeout: cannot be less than 1ms"),
        (["--health-retries", "x"], "--health-retries"),
        (["--no-healthcheck", "--health-cmd", "true"], "--no-healthcheck conflicts with --health-* options"),
    ],
)
def test_bad_health_flags_are_one_line(ctl: Manager, flags: list[str], words: str) -> None:
    done = ctl("create", *flags, ctl.httpd, check=False)
    assert done.returncode == 125 and words in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr
    assert ctl.ids() == []


@pytest.fixture(scope="module")
def checked_image(mgr: Manager, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An image whose config carries docker's ``Healthcheck`` (as ``HEALTHCHECK`` writes it)."""
    layout = str(tmp_path_factory.mktemp("hcimage"))
    check = {"Test": ["CMD-SHELL", "echo image"], "Interval": 300_000_000, "Retries": 1}
    config = {"Cmd": ["sleep", "120"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Healthcheck": check}
    test_images.write_layout(layout, [test_images.busybox_layer().bytes()], tag="hc", config=config)
    archive = layout + ".tar"
    with tarfile.open(archive, "w") as tar:
        for entry in sorted(os.listdir(layout)):
            tar.add(os.path.join(layout, entry), arcname=entry)
    loaded = mgr("load", "--input", archive).stdout
    return loaded.strip().rpartition(" ")[2]


def test_the_image_healthcheck_runs_and_flags_override_it(ctl: Manager, checked_image: str) -> None:
    ctl("run", "-d", "--name", "hc4", "--network", "none", checked_image)
    doc = wait_status(ctl, "hc4", "healthy")
    assert doc["Log"][-1]["Output"] == "image\n"
    assert ctl.inspect("hc4")["Config"]["Healthcheck"] == {
        "Test": ["CMD-SHELL", "echo image"], "Interval": 300_000_000, "Retries": 1}  # fmt: skip
    ctl("run", "-d", "--name", "hc5", "--network", "none", "--health-cmd", "echo flag", checked_image)
    assert wait_status(ctl, "hc5", "healthy")["Log"][-1]["Output"] == "flag\n"  # the image's interval kept
    ctl("create", "--name", "hc6", "--network", "none", "--no-healthcheck", checked_image)
    assert "Health" not in ctl.inspect("hc6")["State"]
    # docker's merge fills the fields the flags left zero from the image's, Test NONE too
    assert ctl.inspect("hc6")["Config"]["Healthcheck"] == {
        "Test": ["NONE"],
        "Interval": 300_000_000,
        "Retries": 1,
    }
    ctl("rm", "-f", "hc4", "hc5", "hc6")

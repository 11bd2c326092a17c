"""Bad input to ``ocirtctl``: one line naming the flag, exit 125 (docker's and podman's code
for the tool's own failure), no traceback, nothing made; and the one boundary that turns
anything unexpected into one line too.

The image named is on a loopback port nothing listens on: every case must be refused while
its flags are read, before an image is looked for."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

OCIRTCTL = os.path.join(os.path.dirname(sys.executable), "ocirtctl")
IMAGE = "127.0.0.1:9/none:1"

CREATE_CASES = [
    (["-m", "inf"], "--memory"),
    (["-m", "nan"], "--memory"),
    (["-m", "1e30"], "--memory"),  # beyond the spec's int64
    (["--memory-swap", "inf"], "--memory-swap"),
    (["--memory-reservation=-inf"], "--memory-reservation"),
    (["--cpus", "nan"], "--cpus"),
    (["--cpus", "inf"], "--cpus"),
    (["--cpus", "0.001"], "--cpus"),  # under the kernel's 1 ms quota
    (["--cpus", str((os.cpu_count() or 1) + 1)], "--cpus"),  # more than the host has, as docker
    (["-c", "1.5"], "--cpu-shares"),
    (["--cpuset-cpus", "a-b"], "--cpuset-cpus"),
    (["--cpuset-cpus", "3-1"], "--cpuset-cpus"),
    (["--pids-limit", str(1 << 63)], "--pids-limit"),
    (["--blkio-weight", "1001"], "--blkio-weight"),
    (["--ulimit", f"nofile={1 << 64}"], "--ulimit"),
    (["--ulimit", "nofile=x"], "--ulimit"),
    (["-p", "70000:80"], "-p"),
    (["-p", "80/sctp"], "-p"),
    (["--stop-timeout", str(1 << 40)], "--stop-timeout"),
    (["--stop-timeout", "1.5"], "--stop-timeout"),
    (["--device-read-bps", "/dev/null:inf"], "--device-read-bps"),
    (["--device-write-iops", f"/dev/null:{1 << 64}"], "--device-write-iops"),
    (["--log-opt", "max-size=nan"], "--log-opt max-size"),
    (["--log-opt", f"max-file={1 << 62}"], "--log-opt max-file"),
    (["--oom-score-adj", "1001"], "--oom-score-adj"),
    (["--ip", "10.1.2"], "--ip"),
    (["--tmpfs", "/x:size=inf"], "--tmpfs"),
    (["--tmpfs", "/x:mode=99"], "--tmpfs"),
    (["--mount", "type=tmpfs,target=/x,tmpfs-size=nan"], "--mount tmpfs-size"),
    (["--mount", "type=bind,target=/x"], "--mount"),  # no source
    (["-v", "a:b:c:d"], "-v"),
]


def ctl(root: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OCIRTCTL, "--root", root, *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def one_line_error(done: subprocess.CompletedProcess[str], flag: str) -> None:
    lines = done.stderr.splitlines()
    assert done.returncode == 125, done
    assert len(lines) == 1 and lines[0].startswith("ocirtctl: ") and flag in lines[0], done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("args", "flag"), CREATE_CASES, ids=[" ".join(a) for a, _ in CREATE_CASES])
@pytest.mark.parametrize("command", ["create", "run"])
def test_bad_create_flag_is_one_line(tmp_path: str, command: str, args: list[str], flag: str) -> None:
    root = os.path.join(tmp_path, "root")
    one_line_error(ctl(root, command, *args, IMAGE, "true"), flag)
    names = ctl(root, "ps", "-a", "-q")
    assert names.returncode == 0 and names.stdout == "", "a refused create left a container"


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["logs", "--tail", "abc", "c"], "--tail"),
        (["logs", "--since", "nan", "c"], "--since"),
        (["logs", "--since", "inf", "c"], "--since"),
        (["stop", "-t", "abc", "c"], "--time"),
        (["restart", "--time", str(1 << 40), "c"], "--time"),
        (["update", "--cpus", "nan", "c"], "--cpus"),
        (["update", "-m", "inf", "c"], "--memory"),
        (["push", "--chunk-size", "x", "a", "b"], "--chunk-size"),
    ],
)
def test_bad_flag_of_other_commands_is_one_line(tmp_path: str, args: list[str], flag: str) -> None:
    """Named before the container or image is looked up (none exists: that would be another
    message)."""
    one_line_error(ctl(os.path.join(tmp_path, "root"), *args), flag)


def test_unexpected_failure_is_one_line_and_traceback_under_debug(tmp_path: str) -> None:
    """A metadata file that is not a database is no bad flag: the boundary says it is a bug,
    on one line, and ``--debug`` shows where it happened."""
    root = os.path.join(tmp_path, "root")
    os.makedirs(root)
    with open(os.path.join(root, "ocirt.db"), "wb") as f:
        f.write(b"not a database, " * 64)
    done = ctl(root, "ps", "-a")
    lines = done.stderr.splitlines()
    assert done.returncode == 125, done
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("ocirtctl: internal error: DatabaseError: file is not a database")
    assert lines[0].endswith("(please report this bug; run with --debug for the traceback)")
    debug = ctl(root, "--debug", "ps", "-a")
    assert debug.returncode != 0 and "Traceback (most recent call last)" in debug.stderr
    assert "sqlite3.DatabaseError" in debug.stderr


@pytest.mark.parametrize(
    ("args", "needle", "status"),
    [
        (["run", "--no-such-flag", IMAGE], "--no-such-flag", 125),
        (["run"], "image", 1),  # docker: "requires at least 1 argument", status 1
        (["stop", "-t"], "-t/--time", 125),
        (["ps", "--all=yes"], "--all", 125),
    ],
)
def test_usage_errors_are_one_line(tmp_path: str, args: list[str], needle: str, status: int) -> None:
    """Not argparse's whole usage text and exit 2: one line, and docker's status."""
    done = ctl(os.path.join(tmp_path, "root"), *args)
    lines = done.stderr.splitlines()
    assert done.returncode == status and len(lines) == 1 and needle in lines[0], done
    assert lines[0].startswith("ocirtctl") and "--help')" in lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--pids", "5", IMAGE],  # a prefix of --pids-limit: argparse would take it
        ["run", "--mem", "5m", IMAGE],  # a prefix of --memory and --memory-swap
        ["ps", "--al"],
        ["ps", "-a", "--quie"],
    ],
)
def test_no_flag_is_taken_for_a_longer_one(tmp_path: str, args: list[str]) -> None:
    """docker's pflag matches flags whole; argparse's prefix matching once took ``--pid host``
    for ``--pids-limit host``."""
    done = ctl(os.path.join(tmp_path, "root"), *args)
    one_line_error(done, "unknown flag: " + next(a for a in args if a.startswith("--")))


def test_bad_flag_exits_125_on_one_line(tmp_path: str) -> None:
    """docker's status for a command line it cannot read is 125, argparse's was 2."""
    one_line_error(ctl(os.path.join(tmp_path, "root"), "run", "--no-such-flag", IMAGE), "--no-such-flag")
    one_line_error(ctl(os.path.join(tmp_path, "root"), "run", "--rm=maybe", IMAGE), "--rm")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--rm=false"], {"rm": False}),
        (["--rm=true"], {"rm": True}),
        (["--rm", "--rm=false"], {"rm": False}),  # the last one wins, as in pflag
        (["--privileged=true", "-t=1"], {"privileged": True, "tty": True}),
        (["-it"], {"interactive": True, "tty": True}),
        (["--read-only=FALSE", "--init=T"], {"read_only": False, "init": True}),
    ],
)
def test_boolean_flag_takes_a_value_after_equals(argv: list[str], expected: dict[str, bool]) -> None:
    """What Go's strconv.ParseBool accepts (docker's flags are pflag booleans); a word after
    the image is the command's, untouched."""
    from ocirt.manager.cli import build_parser

    ns = build_parser(("containers",)).parse_args(["run", *argv, "img", "sh", "--rm=true"])
    assert {k: getattr(ns, k) for k in expected} == expected
    assert ns.image == "img" and ns.command == ["sh", "--rm=true"]

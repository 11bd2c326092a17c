"""ocirt.foundation checked against independent answers: the stdlib's ``json`` and
``datetime``, psutil, and processes the kernel really runs."""

from __future__ import annotations

import datetime
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import psutil
from hypothesis import example, given, settings
from hypothesis import strategies as st
from ocirt.foundation import fastjson, procfs, signals, timefmt, units
from ocirt.foundation.errors import OcirtError

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(_JSON)
def test_fastjson_round_trips_as_json_does(value: object) -> None:
    assert fastjson.loads(json.dumps(value)) == json.loads(json.dumps(value))
    assert fastjson.dumps(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    assert fastjson.dumps(value, "  ") == json.dumps(value, ensure_ascii=False, indent="  ")


@given(st.text(alphabet='[]{}",: 0123456789.eE-+truefalsnNIiy\\', max_size=30) | st.text(max_size=10))
def test_fastjson_refuses_what_json_refuses(text: str) -> None:
    try:
        expected = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        try:
            fastjson.loads(text)
        except ValueError:
            return
        raise AssertionError(f"fastjson accepted {text!r}") from None
    assert json.dumps(fastjson.loads(text)) == json.dumps(expected)  # NaN equals itself here


_NS = st.integers(min_value=0, max_value=253402300799 * 10**9 + 999_999_999)


@given(_NS)
def test_rfc3339nano_matches_datetime(ns: int) -> None:
    sec, frac = divmod(ns, 10**9)
    when = datetime.datetime.fromtimestamp(sec, datetime.UTC)
    assert timefmt.rfc3339nano(ns) == when.strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"
    parsed = datetime.datetime.fromisoformat(timefmt.rfc3339nano(ns)[:26] + "+00:00")
    assert parsed == when.replace(microsecond=frac // 1000)


@given(st.floats(min_value=0, max_value=4e9))
def test_rfc3339_whole_seconds_matches_datetime(seconds: float) -> None:
    when = datetime.datetime.fromtimestamp(int(seconds), datetime.UTC)
    assert timefmt.rfc3339(seconds) == when.isoformat().replace("+00:00", "Z")
    assert timefmt.rfc3339nano_of(seconds).startswith(timefmt.rfc3339(seconds)[:-1] + ".")


def test_start_times_agree_with_psutil() -> None:
    """Every process of the host: the hand reader's start time is psutil's (to a tick)."""
    tick = 1 / os.sysconf("SC_CLK_TCK")
    checked = 0
    for proc in psutil.process_iter():
        try:
            expected, status = proc.create_time(), proc.status()
        except psutil.NoSuchProcess:
            continue
        got = procfs.started_at(proc.pid)
        if got is None or status == psutil.STATUS_ZOMBIE:
            continue  # gone in between, or a zombie, which the reader reports as gone
        assert abs(got - expected) <= tick, proc.pid
        checked += 1
    assert checked > 10


@settings(max_examples=15, deadline=None)
@given(st.text(st.characters(codec="utf-8", exclude_characters="/\0\n"), min_size=1, max_size=15))
def test_stat_fields_survive_any_command_name(name: str) -> None:
    """The command name (field 2) may hold spaces and parentheses: a real process named by
    hypothesis (a symlink to sleep) still yields the kernel's state and start time."""
    if name in (".", "..") or len(name.encode()) > 15:
        return
    with tempfile.TemporaryDirectory() as tmp:
        link = os.path.join(tmp, name)
        os.symlink("/bin/sleep", link)
        proc = subprocess.Popen([link, "30"])
        try:
            _wait_for_comm(proc.pid, name)  # Popen returns before execve renames the task
            fields = procfs.stat_fields(proc.pid)
            assert fields is not None and fields[0] in (b"R", b"S")
            assert abs((procfs.started_at(proc.pid) or 0) - psutil.Process(proc.pid).create_time()) < 0.02
        finally:
            proc.kill()
            proc.wait()


def _wait_for_comm(pid: int, name: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/comm", "rb") as f:
            if f.read()[:-1] == name.encode():
                return
        time.sleep(0.001)
    raise AssertionError(f"the kernel never named {pid} {name!r}")


def test_zombie_and_reused_pid_are_not_alive() -> None:
    proc = subprocess.Popen(["/bin/sleep", "30"])
    try:
        assert procfs.alive_since(proc.pid, time.time())
        assert not procfs.alive_since(proc.pid, time.time() - 10)  # started after "our" process
        proc.kill()
        deadline = time.monotonic() + 5
        while psutil.Process(proc.pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.01)
        assert procfs.stat_fields(proc.pid) is None  # a zombie, not yet reaped
        assert not procfs.alive_since(proc.pid, time.time())
    finally:
        proc.kill()
        proc.wait()
    assert procfs.start_ticks(proc.pid) is None


# docker/go-units' RAMInBytes, as its source writes it: the independent model of the grammar
_GO_UNITS = re.compile(r"^(\d+(\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$", re.ASCII)
_BINARY = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def _go_units(text: str) -> int | None:
    match = _GO_UNITS.match(text)
    if match is None or match.group(1).count(".") > 1:  # ParseFloat refuses "1.2.3"
        return None
    value = float(match.group(1)) * _BINARY.get((match.group(3) or "").lower(), 1)
    return None if value > (1 << 63) - 1 else int(value)


_SIZES = st.from_regex(r"\A[0-9]{1,22}(\.[0-9]{1,3}){0,2} ?[kKmMgGtTpPxX]?[iI]?[bB]?\Z") | st.text(max_size=8)


@given(_SIZES)
def test_sizes_follow_go_units(text: str) -> None:
    expected = _go_units(text)
    try:
        got = units.parse_size(text)
    except ValueError:
        assert expected is None, text
        return
    assert expected is not None, text
    if "." in text or got >= 1 << 53:
        assert abs(got - expected) <= max(1, expected >> 52), text  # go-units rounds in float64
    else:
        assert got == expected, text


_PROBE = """
import json, os, subprocess, sys
from ocirt.foundation.mountinfo import read_mountinfo
top, name = sys.argv[1], sys.argv[2]
point = os.path.join(top, name)
os.mkdir(point)
mount = ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0751"]
subprocess.run([*mount, "--source", name, "--target", point], check=True)
info = [i for i in read_mountinfo() if i.mountpoint == point]
mine = next(i for i in read_mountinfo(os.getpid()) if i.mountpoint == point)
print(json.dumps([len(info), info[-1].fstype, info[-1].source, info[-1].super_options,
                  info[-1].root, mine.mount_id == info[-1].mount_id]))
"""


@settings(max_examples=12, deadline=None)
@given(st.text(st.characters(codec="utf-8", exclude_characters="/\0"), min_size=1, max_size=20))
@example("a b\tc\\d\ne - f")
@example("\r")
def test_mountinfo_reads_what_the_kernel_mounted(name: str) -> None:
    """A real tmpfs, named and mounted at a path with spaces, tabs, newlines, backslashes or
    any other character, in a private mount namespace (nothing reaches the host's table):
    the reader finds it under its own name with the kernel's fields."""
    if name in (".", ".."):
        return
    with tempfile.TemporaryDirectory() as top:
        done = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", _PROBE, top, name],
            capture_output=True,
            text=True,
            errors="surrogateescape",
        )
        assert done.returncode == 0, done.stderr
        count, fstype, source, options, root, same = json.loads(done.stdout)
    assert (count, fstype, source, root, same) == (1, "tmpfs", name, "/", True)
    assert "size=1024k" in options.split(",") and "mode=751" in options.split(",")


_SIGNALS = sorted(s for s in signal.Signals if s.name != "SIGIOT")


@given(st.sampled_from(_SIGNALS), st.sampled_from(["{full}", "{short}", "{lower}", "{number}"]))
def test_signal_names_are_the_stdlib_signals(sig: signal.Signals, spelling: str) -> None:
    text = spelling.format(full=sig.name, short=sig.name[3:], lower=sig.name[3:].lower(), number=int(sig))
    assert signals.parse(text) == int(sig)


@given(st.integers(min_value=0, max_value=signal.SIGRTMAX - signal.SIGRTMIN))
def test_realtime_signals_count_from_both_ends(offset: int) -> None:
    assert signals.parse(f"RTMIN+{offset}") == signal.SIGRTMIN + offset
    assert signals.parse(f"SIGRTMAX-{offset}") == signal.SIGRTMAX - offset


@given(st.from_regex(r"\A(SIG)?RT(MIN|MAX)([+-][0-9]{1,3})?\Z") | st.text(max_size=8))
def test_anything_else_is_refused_as_one_error(text: str) -> None:
    """A realtime signal past the range, an offset the wrong way, any other text: one
    OcirtError, never another exception or a number the kernel has no signal for."""
    try:
        number = signals.parse(text)
    except OcirtError:
        return
    assert 0 < number < signal.NSIG
    if "RT" in text:
        base, offset = (signal.SIGRTMIN, "+") if "MIN" in text else (signal.SIGRTMAX, "-")
        assert offset in text or text.endswith(("MIN", "MAX"))
        assert (
            signal.SIGRTMIN <= number <= signal.SIGRTMAX
            and (number - base) * (1 if offset == "+" else -1) >= 0
        )

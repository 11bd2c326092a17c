"""runtime.md operations in every state: create, start, kill, delete and state against a
container that is created, running, stopped or absent, errors included; plus the exit
status of ``run``, which managers read as the container's own."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable

from ocirt.conformance.harness import Context
from ocirt.conformance.model import MUST, SHOULD, Case, Fail, add, case, expect, expect_true

RT = "runtime.md"


def _make(ctx: Context, state: str) -> str:
    if state == "created":
        return ctx.create(ctx.config(["sleep", "300"]))[0]
    if state == "running":
        return ctx.running()
    if state == "stopped":
        return ctx.stopped()
    return f"conf-{ctx.h.token}-absent"


def _op(ctx: Context, op: str, cid: str) -> bool:
    """True when the runtime accepted the operation."""
    if op == "create":
        _, bundle = ctx.prepare(ctx.config(["sleep", "300"]))
        return ctx.cli("create", "--bundle", bundle, cid).ok
    if op == "kill":
        return ctx.cli("kill", cid, "KILL").ok
    return ctx.cli(op, cid).ok


# op -> heading, {state: status after a successful op, or None when the op must fail}
MATRIX: dict[str, tuple[str, dict[str, str | None]]] = {
    "start": ("Start", {"created": "running", "running": None, "stopped": None, "absent": None}),
    "kill": ("Kill", {"created": "stopped", "running": "stopped", "stopped": None, "absent": None}),
    "delete": ("Delete", {"created": None, "running": None, "stopped": "(deleted)", "absent": None}),
    "state": (
        "Query State",
        {"created": "created", "running": "running", "stopped": "stopped", "absent": None},
    ),
    "create": ("Create", {"created": None, "running": None, "stopped": None}),
}

_EXPLAIN = {
    ("delete", "created"): """runtime.md: "Attempting to delete a container that is not stopped MUST
    have no effect on the container and MUST generate an error." runc deletes a created container
    (containerd relies on it), so this fails on runc by design, and on crun and ocirt, which
    follow runc.""",
    ("kill", "stopped"): """runtime.md: signalling a container that is neither created nor running
    MUST generate an error and have no effect.""",
}


def _matrix_case(op: str, state: str, after: str | None) -> Callable[[Context], None]:
    def check(ctx: Context) -> None:
        cid = _make(ctx, state)
        before = ctx.status(cid)
        pid = ctx.state(cid).get("pid") if state == "running" else None  # type: ignore[union-attr]
        accepted = _op(ctx, op, cid)
        if after is None:
            expect(f"{op} on a {state} container is an error", accepted, False)
            expect(f"status after the refused {op}", ctx.status(cid), before)
            if pid is not None:
                expect("pid after the refused operation", ctx.pid(cid), pid)
            return
        expect(f"{op} on a {state} container succeeds", accepted, True)
        if op == "state":
            return
        want = None if after == "(deleted)" else after
        got = ctx.wait_status(cid, want) if want else ctx.status(cid)
        expect(f"status after {op}", got, want)

    check.__doc__ = _EXPLAIN.get(
        (op, state),
        f"{op} on a {state} container "
        + ("must fail and change nothing." if after is None else f"-> {after}."),
    )
    return check


for _op_name, (_heading, _states) in MATRIX.items():
    for _state, _after in _states.items():
        add(
            Case(f"lifecycle.{_op_name}.{_state}", RT, _heading, MUST, _matrix_case(_op_name, _state, _after))
        )


def _no_id_case(op: str) -> Callable[[Context], None]:
    def check(ctx: Context) -> None:
        args = [op, "--bundle", ctx.dir] if op == "create" else [op]
        res = ctx.cli(*args)
        expect(f"`{op}` without a container id fails", res.ok, False)

    check.__doc__ = f"{op} MUST generate an error if it is not provided the container ID."
    return check


for _op_name, _heading in (
    ("create", "Create"),
    ("start", "Start"),
    ("kill", "Kill"),
    ("delete", "Delete"),
    ("state", "Query State"),
):
    add(Case(f"lifecycle.{_op_name}.no-id", RT, _heading, MUST, _no_id_case(_op_name)))


@case("lifecycle.create.no-config", RT, "Create")
def create_without_config(ctx: Context) -> None:
    """A bundle without config.json: create MUST fail and no container MUST exist."""
    cid, bundle = ctx.prepare(ctx.config(["true"]))
    os.unlink(os.path.join(bundle, "config.json"))
    expect("create without config.json succeeds", ctx.cli("create", "--bundle", bundle, cid).ok, False)
    expect("state of the refused container", ctx.state(cid), None)


@case("lifecycle.create.invalid-id", RT, "Create", SHOULD)
def create_invalid_id(ctx: Context) -> None:
    """An id with a path separator is "not valid in any other way" for every known runtime."""
    _, bundle = ctx.prepare(ctx.config(["true"]))
    res = ctx.cli("create", "--bundle", bundle, "../escape")
    expect("create with id ../escape succeeds", res.ok, False)
    expect_true(
        "no state left outside the root",
        not os.path.exists(os.path.join(ctx.h.root, "..", "escape")),
        "left",
        "nothing",
    )


@case("lifecycle.create.program-deferred", RT, "Create")
def create_defers_program(ctx: Context) -> None:
    """create MUST NOT run the user-specified program; start MUST run it."""
    cid, _ = ctx.create(ctx.config(["touch", "/ran"]))
    marker = os.path.join(ctx.bundle_of(cid), "rootfs", "ran")
    time.sleep(0.1)
    expect("program ran before start", os.path.exists(marker), False)
    expect("status after create", ctx.status(cid), "created")
    expect("start", ctx.cli("start", cid).brief(), "exit 0")
    ctx.wait_status(cid, "stopped")
    expect("program ran after start", os.path.exists(marker), True)


@case("lifecycle.create.config-frozen", RT, "Create")
def config_changes_ignored(ctx: Context) -> None:
    """Changes made to config.json after create MUST NOT affect the container."""
    cfg = ctx.config(["touch", "/original"])
    cid, _ = ctx.create(cfg)
    bundle = ctx.bundle_of(cid)
    cfg["process"]["args"] = ["touch", "/changed"]
    from ocirt.testing.bundle import write_config

    write_config(bundle, cfg)
    expect("start", ctx.cli("start", cid).brief(), "exit 0")
    ctx.wait_status(cid, "stopped")
    rootfs = os.path.join(bundle, "rootfs")
    expect(
        "program run",
        [os.path.exists(os.path.join(rootfs, n)) for n in ("original", "changed")],
        [True, False],
    )


@case("lifecycle.create.error-leaves-nothing", RT, "Errors")
def failed_create_leaves_nothing(ctx: Context) -> None:
    """A create that fails (a bind mount of a missing source) MUST leave the environment as if
    never attempted: no container, no cgroup."""
    cfg = ctx.config(["true"])
    cfg["mounts"].append(
        {"destination": "/mnt", "type": "bind", "source": ctx.path("missing"), "options": ["bind"]}
    )
    cid, res = ctx.create(cfg, must=False)
    expect("create with a missing bind source succeeds", res.ok, False)
    expect("state of the failed container", ctx.state(cid), None)
    expect("cgroups left", ctx.cgroup_dirs(cid), [])


@case("lifecycle.start.no-process", RT, "Start")
def start_without_process(ctx: Context) -> None:
    """Start MUST generate an error if process was not set (refusing at create is as good)."""
    cfg = ctx.config(["true"], version="1.0.2")
    del cfg["process"]
    cid, res = ctx.create(cfg, must=False)
    if res.ok:
        expect("start without process succeeds", ctx.cli("start", cid).ok, False)


@case("lifecycle.stopped-on-exit", RT, "Kill")
def stopped_when_process_exits(ctx: Context) -> None:
    """When the container process stops for any reason the status MUST be stopped."""
    ctx.stopped()


@case("lifecycle.delete.removes-resources", RT, "Delete")
def delete_removes_resources(ctx: Context) -> None:
    """Deleting MUST delete the resources made at create: here the container's cgroups."""
    cid = ctx.stopped()
    expect_true("cgroups made by create", bool(ctx.cgroup_dirs(cid)), [], "at least one")
    expect("delete", ctx.cli("delete", cid).brief(), "exit 0")
    expect("cgroups after delete", ctx.cgroup_dirs(cid), [])
    expect("state after delete", ctx.state(cid), None)


@case("lifecycle.delete.keeps-foreign", RT, "Delete")
def delete_keeps_foreign(ctx: Context) -> None:
    """Resources associated with the container but not created by it (a bind-mounted host
    directory) MUST NOT be deleted."""
    src = ctx.path("shared")
    os.makedirs(src)
    with open(os.path.join(src, "keep"), "w") as f:
        f.write("x")
    cfg = ctx.config(["true"])
    cfg["mounts"].append({"destination": "/mnt", "type": "bind", "source": src, "options": ["rbind"]})
    res = ctx.run(cfg)
    expect("run", res.brief(), "exit 0")
    expect("delete", ctx.cli("delete", ctx.ids[-1]).ok or ctx.state(ctx.ids[-1]) is None, True)
    expect("host directory after delete", os.listdir(src), ["keep"])


# --- kill signals ------------------------------------------------------------------------

_TRAP = "trap 'echo {sig} > /got; exit 0' {sig}; touch /ready; while :; do sleep 0.05; done"


def _signalled(ctx: Context, trap: str, kill_args: list[str], expected: str) -> None:
    cid = ctx.running(["sh", "-c", _TRAP.format(sig=trap)])
    rootfs = os.path.join(ctx.bundle_of(cid), "rootfs")
    deadline = time.monotonic() + 10
    while not os.path.exists(os.path.join(rootfs, "ready")) and time.monotonic() < deadline:
        time.sleep(0.02)
    res = ctx.cli("kill", cid, *kill_args)
    expect(f"kill {' '.join(kill_args)}", res.brief(), "exit 0")
    expect("status after the trapped signal", ctx.wait_status(cid, "stopped"), "stopped")
    try:
        with open(os.path.join(rootfs, "got")) as f:
            got = f.read().strip()
    except FileNotFoundError:
        got = "nothing"
    expect("signal the process saw", got, expected)


@case("kill.named-signal", RT, "Kill")
def kill_named(ctx: Context) -> None:
    """kill MUST send the specified signal to the container process."""
    _signalled(ctx, "USR1", ["USR1"], "USR1")


@case("kill.sig-prefix", RT, "Kill", SHOULD)
def kill_sig_prefix(ctx: Context) -> None:
    """runc's CLI accepts SIGUSR2 as well as USR2; managers pass both forms."""
    _signalled(ctx, "USR2", ["SIGUSR2"], "USR2")


@case("kill.numeric-signal", RT, "Kill", SHOULD)
def kill_numeric(ctx: Context) -> None:
    """runc's CLI takes a signal number (10 is SIGUSR1 on Linux x86 and arm)."""
    _signalled(ctx, "USR1", ["10"], "USR1")


@case("kill.default-term", RT, "Kill", SHOULD)
def kill_default(ctx: Context) -> None:
    """runc's CLI sends SIGTERM when no signal is named."""
    _signalled(ctx, "TERM", [], "TERM")


@case("kill.sigkill", RT, "Kill")
def kill_sigkill(ctx: Context) -> None:
    """SIGKILL stops the container; its status MUST then be stopped."""
    cid = ctx.running()
    expect("kill KILL", ctx.cli("kill", cid, "KILL").brief(), "exit 0")
    expect("status", ctx.wait_status(cid, "stopped"), "stopped")


@case("kill.bad-signal", RT, "Kill", SHOULD)
def kill_bad_signal(ctx: Context) -> None:
    """An unknown signal name is an error and leaves the container running."""
    cid = ctx.running()
    expect("kill NOSUCHSIG succeeds", ctx.cli("kill", cid, "NOSUCHSIG").ok, False)
    expect("status", ctx.status(cid), "running")


# --- exit status of run (runc's CLI, what managers rely on) ----------------------------------


@case("exit.status", RT, "Lifecycle", SHOULD)
def exit_status(ctx: Context) -> None:
    """`run` exits with the container process's exit status (runc's CLI convention)."""
    expect("exit status of run", ctx.run(ctx.config(["sh", "-c", "exit 3"])).code, 3)


@case("exit.zero", RT, "Lifecycle", SHOULD)
def exit_zero(ctx: Context) -> None:
    """A process that succeeds makes `run` exit 0, with its output intact."""
    res = ctx.run(ctx.config(["echo", "hello"]))
    expect("run", (res.code, res.out), (0, "hello\n"))


@case("exit.signal", RT, "Lifecycle", SHOULD)
def exit_signal(ctx: Context) -> None:
    """A process killed by signal N makes `run` exit 128+N (runc's convention)."""
    cid, bundle = ctx.prepare(ctx.config(["sleep", "300"]))
    with open(ctx.path("run.out"), "w") as out, ctx.empty_input() as empty:
        proc = subprocess.Popen(
            [ctx.h.runtime, "--root", ctx.h.root, "run", "--bundle", bundle, cid],
            stdin=empty,
            stdout=out,
            stderr=out,
        )
    ctx.helpers.append(proc)
    if ctx.wait_status(cid, "running") != "running":
        raise Fail("status of the running container", ctx.status(cid), "running")
    ctx.cli("kill", cid, "KILL")
    try:
        code = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        raise Fail("run exits after SIGKILL", "still running", "exit") from None
    expect("exit status of run", code, 137)


@case("exit.not-found", RT, "Create", SHOULD)
def exit_not_found(ctx: Context) -> None:
    """A program that does not exist makes `run` fail (at create or start) with no container left."""
    res = ctx.run(ctx.config(["/no/such/program"]))
    expect_true("run of a missing program fails", res.code != 0, res.code, "non-zero")

"""config.md POSIX-platform Hooks and runtime.md Lifecycle: the six hook kinds in order, the
state on their stdin, their args and env, and what a failing hook does to the container."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from ocirt.conformance.harness import Context
from ocirt.conformance.model import MUST, SHOULD, Case, Fail, add, expect
from ocirt.specs.schema import validate_state

CFG, RT = "config.md", "runtime.md"
ORDER = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]
# startContainer runs in the container after pivot_root: it sees the log directory bound at /hooklog
IN_CONTAINER = "/hooklog"


def _logdir(ctx: Context) -> str:
    path = ctx.path("hooklog")
    os.makedirs(path, exist_ok=True)
    return path


def _hook(ctx: Context, kind: str, script: str, **extra: Any) -> dict[str, Any]:
    """A shell hook; LOG in ``script`` is the log directory as this hook kind sees it."""
    log = IN_CONTAINER if kind == "startContainer" else _logdir(ctx)
    return {"path": "/bin/sh", "args": ["sh", "-c", script.replace("LOG", log)], **extra}


def _hooked(ctx: Context, args: list[str], hooks: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    cfg = ctx.config(args)
    cfg["hooks"] = hooks
    cfg["mounts"].append(
        {"destination": IN_CONTAINER, "type": "bind", "source": _logdir(ctx), "options": ["rbind"]}
    )
    return cfg


def _log(ctx: Context, name: str = "order") -> list[str]:
    try:
        with open(os.path.join(_logdir(ctx), name)) as f:
            return f.read().split()
    except FileNotFoundError:
        return []


def _order(ctx: Context) -> None:
    hooks = {k: [_hook(ctx, k, f"echo {k} >> LOG/order")] for k in ORDER}
    res = ctx.run(_hooked(ctx, ["true"], hooks))
    expect("run", res.brief(), "exit 0")
    expect("hooks run, in order", _log(ctx), ORDER)


_order.__doc__ = """Each hook kind runs once, in lifecycle order: prestart, createRuntime,
createContainer, startContainer, poststart, poststop (runtime.md Lifecycle). runc 1.1.5 and
crun 1.8 run poststart hooks as soon as init is released, racing the startContainer hooks init
runs before the program: poststart often comes first."""
add(Case("hooks.order", RT, "Lifecycle", MUST, _order))


def _in_order(ctx: Context) -> None:
    hooks = {
        "prestart": [_hook(ctx, "prestart", f"echo {n} >> LOG/order") for n in ("first", "second", "third")]
    }
    res = ctx.run(_hooked(ctx, ["true"], hooks))
    expect("run", res.brief(), "exit 0")
    expect("hooks of one kind", _log(ctx), ["first", "second", "third"])


_in_order.__doc__ = "Hooks MUST be called in the listed order."
add(Case("hooks.listed-order", CFG, "POSIX-platform Hooks", MUST, _in_order))


def _state_case(kind: str) -> Callable[[Context], None]:
    def check(ctx: Context) -> None:
        hooks = {kind: [_hook(ctx, kind, "cat > LOG/state.json")]}
        res = ctx.run(_hooked(ctx, ["true"], hooks))
        expect("run", res.brief(), "exit 0")
        try:
            with open(os.path.join(_logdir(ctx), "state.json")) as f:
                doc = json.load(f)
        except (OSError, ValueError) as err:
            raise Fail(f"state on the {kind} hook's stdin", str(err), "a JSON state document") from None
        expect("schema violations", validate_state(doc), [])
        expect("id", doc.get("id"), ctx.ids[-1])
        expect(
            "bundle", os.path.realpath(str(doc.get("bundle"))), os.path.realpath(ctx.bundle_of(ctx.ids[-1]))
        )
        if kind == "poststop":
            expect("status", doc.get("status"), "stopped")

    check.__doc__ = f"The state of the container MUST be passed to {kind} hooks over stdin."
    return check


for _kind in ORDER:
    add(Case(f"hooks.state.{_kind}", CFG, "POSIX-platform Hooks", MUST, _state_case(_kind)))


def _args_env(ctx: Context) -> None:
    hook = _hook(ctx, "prestart", 'echo "$0|$1|$HOOKVAR" > LOG/args', env=["HOOKVAR=set"])
    hook["args"] += ["zero", "one"]
    res = ctx.run(_hooked(ctx, ["true"], {"prestart": [hook]}))
    expect("run", res.brief(), "exit 0")
    expect("hook saw", _log(ctx, "args"), ["zero|one|set"])


_args_env.__doc__ = "Hook args and env have execv's argv and environ semantics."
add(Case("hooks.args-env", CFG, "POSIX-platform Hooks", MUST, _args_env))


def _failing_case(kind: str) -> Callable[[Context], None]:
    def check(ctx: Context) -> None:
        hooks = {
            kind: [_hook(ctx, kind, "exit 3")],
            "poststop": [_hook(ctx, "poststop", "echo ran > LOG/poststop")],
        }
        res = ctx.run(_hooked(ctx, ["touch", "/ran"], hooks))
        expect(f"run with a failing {kind} hook succeeds", res.ok, False)
        rootfs = os.path.join(ctx.bundle_of(ctx.ids[-1]), "rootfs")
        expect("user program ran", os.path.exists(os.path.join(rootfs, "ran")), False)
        expect("state after the failure", ctx.state(ctx.ids[-1]), None)
        expect("cgroups after the failure", ctx.cgroup_dirs(ctx.ids[-1]), [])

    check.__doc__ = f"""If any {kind} hook fails, the runtime MUST generate an error, stop the
    container (the program never runs) and continue the lifecycle at delete."""
    return check


for _kind in ("prestart", "createRuntime", "createContainer", "startContainer"):
    add(Case(f"hooks.fail.{_kind}", RT, "Lifecycle", MUST, _failing_case(_kind)))


def _poststop_after_failure(ctx: Context) -> None:
    hooks = {
        "createRuntime": [_hook(ctx, "createRuntime", "exit 3")],
        "poststop": [_hook(ctx, "poststop", "echo ran > LOG/poststop")],
    }
    ctx.run(_hooked(ctx, ["true"], hooks))
    expect("poststop hook after the failed create", _log(ctx, "poststop"), ["ran"])


_poststop_after_failure.__doc__ = """After a failing createRuntime hook the lifecycle continues at
delete (step 12), which runs the poststop hooks. runc 1.1.5 skips them on a failed create."""
add(Case("hooks.fail.poststop-still-runs", RT, "Lifecycle", SHOULD, _poststop_after_failure))


def _poststart_fail(ctx: Context) -> None:
    hooks = {
        "poststart": [_hook(ctx, "poststart", "exit 3"), _hook(ctx, "poststart", "echo next > LOG/next")],
        "poststop": [_hook(ctx, "poststop", "echo ran > LOG/poststop")],
    }
    cfg = _hooked(ctx, ["sleep", "300"], hooks)
    cfg["ociVersion"] = "1.3.0"
    cid, res = ctx.create(cfg, must=False)
    failed = not res.ok or not ctx.cli("start", cid).ok
    expect("an error from create or start", failed, True)
    expect("state after the failure", ctx.state(cid), None)
    expect("cgroups after the failure", ctx.cgroup_dirs(cid), [])
    expect("the next poststart hook ran", _log(ctx, "next"), [])
    expect("poststop hooks (lifecycle step 13)", _log(ctx, "poststop"), ["ran"])


_poststart_fail.__doc__ = """runtime-spec 1.3: if any poststart hook fails, the runtime MUST generate
an error, stop the container, and continue the lifecycle at step 12 (destroyed, then the poststop
hooks); the remaining poststart hooks are skipped. Up to 1.2 this was a warning. runc 1.1.5 runs
poststart hooks within create, which then fails and removes the container: that passes. crun 1.8,
by its maintainers' account (runtime-spec PR 1262), only warns and leaves the container running."""
add(Case("hooks.fail.poststart", RT, "Lifecycle", MUST, _poststart_fail))


def _poststop_fail(ctx: Context) -> None:
    hooks = {"poststop": [_hook(ctx, "poststop", "exit 3"), _hook(ctx, "poststop", "echo next > LOG/next")]}
    cid, _ = ctx.create(_hooked(ctx, ["true"], hooks))
    ctx.cli("start", cid)
    ctx.wait_status(cid, "stopped")
    res = ctx.cli("delete", cid)
    expect("delete with a failing poststop hook", res.ok, True)
    expect("state after delete", ctx.state(cid), None)
    expect("the next poststop hook ran", _log(ctx, "next"), ["next"])


_poststop_fail.__doc__ = """A failing poststop hook MUST only be logged as a warning: delete
succeeds and the remaining hooks run. runc 1.1.5 skips the hooks after the failing one; crun 1.8
fails the delete."""
add(Case("hooks.fail.poststop", RT, "Lifecycle", MUST, _poststop_fail))


def _timeout(ctx: Context) -> None:
    hooks = {"prestart": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]}
    started = time.monotonic()
    res = ctx.run(_hooked(ctx, ["true"], hooks), timeout=12)
    took = time.monotonic() - started
    expect("run with a timed-out prestart hook succeeds", res.ok, False)
    expect(f"hook aborted near its 1 s timeout (took {took:.1f} s)", took < 10, True)


_timeout.__doc__ = "timeout is the number of seconds before aborting the hook; an aborted hook fails."
add(Case("hooks.timeout", CFG, "POSIX-platform Hooks", SHOULD, _timeout))


def _create_runtime_namespace(ctx: Context) -> None:
    hooks = {
        "createContainer": [_hook(ctx, "createContainer", "readlink /proc/self/ns/mnt > LOG/ns")],
        "createRuntime": [_hook(ctx, "createRuntime", "readlink /proc/self/ns/mnt > LOG/rns")],
    }
    res = ctx.run(_hooked(ctx, ["true"], hooks))
    expect("run", res.brief(), "exit 0")
    host = os.readlink("/proc/self/ns/mnt")
    expect("createRuntime runs in the runtime's mount namespace", _log(ctx, "rns"), [host])
    got = _log(ctx, "ns")
    expect("createContainer runs in the container's mount namespace", bool(got) and got != [host], True)


_create_runtime_namespace.__doc__ = """createRuntime hooks MUST be executed in the runtime namespace,
createContainer hooks in the container namespace."""
add(Case("hooks.namespaces", CFG, "POSIX-platform Hooks", MUST, _create_runtime_namespace))

"""runtime.md State: the ``state`` document in every status, against the schema in specs/."""

from __future__ import annotations

import os
from collections.abc import Callable

from ocirt.conformance.harness import Context
from ocirt.conformance.model import MUST, Case, Fail, add, case, expect, expect_true
from ocirt.specs.schema import validate_state

RT = "runtime.md"


def _schema_case(status: str) -> Callable[[Context], None]:
    def check(ctx: Context) -> None:
        if status == "created":
            cid = ctx.create(ctx.config(["sleep", "300"]))[0]
        else:
            cid = ctx.running() if status == "running" else ctx.stopped()
        doc = ctx.state(cid)
        if doc is None:
            raise Fail("state", "an error", "a state document")
        problems = validate_state(doc)
        expect("schema violations", problems, [])
        expect("status", doc["status"], status)
        expect("id", doc["id"], cid)

    check.__doc__ = f"The state of a {status} container MUST follow the State section (state-schema.json)."
    return check


for _status in ("created", "running", "stopped"):
    add(Case(f"state.schema.{_status}", RT, "State", MUST, _schema_case(_status)))


@case("state.bundle", RT, "State")
def state_bundle(ctx: Context) -> None:
    """bundle is the absolute path to the container's bundle directory."""
    cid = ctx.create(ctx.config(["sleep", "300"]))[0]
    doc = ctx.state(cid) or {}
    bundle = str(doc.get("bundle", ""))
    expect_true("bundle is absolute", os.path.isabs(bundle), bundle, "an absolute path")
    expect("bundle", os.path.realpath(bundle), os.path.realpath(ctx.bundle_of(cid)))


@case("state.pid.created", RT, "State")
def state_pid_created(ctx: Context) -> None:
    """pid is REQUIRED when created: the container process as seen by the host, already in the
    container's pid namespace."""
    cid = ctx.create(ctx.config(["sleep", "300"]))[0]
    pid = ctx.pid(cid)
    ns = os.readlink(f"/proc/{pid}/ns/pid")
    expect_true("pid namespace of the state's pid", ns != os.readlink("/proc/self/ns/pid"), ns, "a new one")


@case("state.pid.running", RT, "State")
def state_pid_running(ctx: Context) -> None:
    """pid is REQUIRED when running and names the user's program."""
    cid = ctx.running()
    with open(f"/proc/{ctx.pid(cid)}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")[:-1]
    expect("argv of the state's pid", argv, [b"sleep", b"300"])


@case("state.annotations", RT, "State")
def state_annotations(ctx: Context) -> None:
    """annotations in the state are those of the config (config.md Annotations)."""
    cfg = ctx.config(["sleep", "300"])
    cfg["annotations"] = {"org.example.key": "value", "com.example/other": "2"}
    cid = ctx.create(cfg)[0]
    expect("annotations", (ctx.state(cid) or {}).get("annotations"), cfg["annotations"])


@case("state.oci-version", RT, "State")
def state_version(ctx: Context) -> None:
    """ociVersion is REQUIRED: a SemVer version string."""
    cid = ctx.create(ctx.config(["sleep", "300"]))[0]
    version = str((ctx.state(cid) or {}).get("ociVersion", ""))
    parts = version.split("-")[0].split("+")[0].split(".")
    expect_true(
        "ociVersion", len(parts) == 3 and all(p.isdigit() for p in parts), version, "MAJOR.MINOR.PATCH"
    )

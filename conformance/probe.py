"""Table-driven cases: run a shell script in a container configured one way, compare stdout.

Most of the spec is checked this way: the container reports what it sees (its ids, limits,
mounts, namespaces) and the case compares that with what the config asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ocirt.conformance.harness import DEFAULT_VERSION, Context
from ocirt.conformance.model import MUST, Case, Fail, NotApplicable, add, expect

Edit = Callable[[dict[str, Any], Context], None]
Expected = str | Callable[[Context], str]
Requirement = Callable[[], str | None]


def probe(
    case_id: str,
    spec: str,
    heading: str,
    script: str,
    expected: Expected,
    edit: Edit | None = None,
    *,
    level: str = MUST,
    version: str = DEFAULT_VERSION,
    doc: str = "",
    needs: Requirement | None = None,
) -> None:
    """Registers a case: ``sh -c script`` must print ``expected`` (stripped) and exit 0."""

    def check(ctx: Context) -> None:
        reason = needs() if needs is not None else None
        if reason:
            raise NotApplicable(reason)
        cfg = ctx.config(["sh", "-c", script], version)
        if edit is not None:
            edit(cfg, ctx)
        want = expected(ctx) if callable(expected) else expected
        expect("container output", ctx.output(cfg).strip(), want)

    check.__doc__ = doc
    add(Case(case_id, spec, heading, level, check))


def refused(
    case_id: str,
    spec: str,
    heading: str,
    edit: Edit,
    *,
    level: str = MUST,
    version: str = DEFAULT_VERSION,
    doc: str = "",
) -> None:
    """Registers a case: a config the runtime cannot apply must fail at create, leaving no
    container, or else at start."""

    def check(ctx: Context) -> None:
        cfg = ctx.config(["true"], version)
        edit(cfg, ctx)
        cid, res = ctx.create(cfg, must=False)
        if not res.ok:
            expect("state of the container whose create failed", ctx.state(cid), None)
        elif ctx.cli("start", cid).ok:
            raise Fail("create and start of an invalid config", "both exit 0", "an error from either")

    check.__doc__ = doc
    add(Case(case_id, spec, heading, level, check))


def status_field(name: str) -> str:
    """Script text printing one field of /proc/self/status (of the shell itself)."""
    return f"grep '^{name}:' /proc/$$/status | cut -f2"

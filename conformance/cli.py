"""``ocirt-conformance`` / ``python -m ocirt.conformance``: the OCI runtime conformance suite.

ocirt-conformance --runtime /usr/sbin/runc [--only 'lifecycle.*'] [--format tap]
ocirt-conformance --compare runc,crun,ocirt
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from ocirt.conformance import report
from ocirt.conformance.model import FAIL, MUST, Outcome
from ocirt.conformance.runner import load_cases, prepare_host, resolve, run_suite, select

PROG = "ocirt-conformance"
FORMATS = ("table", "json", "tap", "junit")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG, allow_abbrev=False, description="OCI runtime-spec 1.3 conformance suite"
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--runtime", help="runtime binary (a path or a name on PATH)")
    target.add_argument("--compare", help="comma-separated runtimes, e.g. runc,crun,ocirt")
    target.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--only", action="append", metavar="PATTERN", help="case id or spec file glob")
    parser.add_argument("--format", choices=FORMATS, default="table")
    parser.add_argument("--details", action="store_true", help="with --compare: every non-pass detail")
    return parser.parse_args(argv)


def render(fmt: str, outcomes: list[Outcome], runtime: str) -> str:
    if fmt == "json":
        return report.to_json(outcomes, runtime)
    if fmt == "tap":
        return report.tap(outcomes)
    if fmt == "junit":
        return report.junit(outcomes, runtime)
    return report.table(outcomes)


def _progress(name: str, total: int) -> Callable[[Outcome], None] | None:
    """A counter on a terminal's stderr; nothing when stderr is a file or a pipe."""
    if not sys.stderr.isatty():
        return None
    done = [0]

    def show(outcome: Outcome) -> None:
        done[0] += 1
        end = "\n" if done[0] == total else ""
        print(f"\r{name}: {done[0]}/{total} {outcome.case.id:<50}", end=end, file=sys.stderr, flush=True)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cases = select(load_cases(), args.only)
    if args.list:
        for c in cases:
            print(f"{c.id}  {c.level}  {c.section}")
        return 0
    if not cases:
        print(f"{PROG}: --only matched no case", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print(f"{PROG}: must run as root (it creates containers, mounts and cgroups)", file=sys.stderr)
        return 2
    try:
        names = args.compare.split(",") if args.compare else [args.runtime]
        binaries = {n: resolve(n) for n in names if n}
    except ValueError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    for note in prepare_host():
        print(f"{PROG}: {note}", file=sys.stderr)
    results = {name: run_suite(path, cases, _progress(name, len(cases))) for name, path in binaries.items()}
    if args.compare:
        print(report.compare(results))
        if args.details:
            print(report.failures_detail(results))
        return 0
    outcomes = results[names[0]]
    print(render(args.format, outcomes, binaries[names[0]]))
    return 1 if any(o.status == FAIL and o.case.level == MUST for o in outcomes) else 0


def entry() -> None:
    sys.exit(main())

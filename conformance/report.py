"""Outcomes as text: a table for people, JSON, TAP and JUnit XML for machines, and the
case x runtime comparison. Pure functions of the outcomes, so they are tested on their own."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter

from ocirt.conformance.model import FAIL, MUST, NA, PASS, Outcome

REVIEW = "review"


def totals(outcomes: list[Outcome]) -> Counter[str]:
    count: Counter[str] = Counter(o.status for o in outcomes)
    count["must-fail"] = sum(1 for o in outcomes if o.status == FAIL and o.case.level == MUST)
    return count


def summary(outcomes: list[Outcome]) -> str:
    t = totals(outcomes)
    failed = f"{t[FAIL]} fail ({t['must-fail']} MUST)"
    return f"{len(outcomes)} cases: {t[PASS]} pass, {failed}, {t[NA]} not applicable"


def table(outcomes: list[Outcome]) -> str:
    width = max((len(o.case.id) for o in outcomes), default=4)
    lines = [f"{'case':<{width}}  {'level':<6}  {'result':<6}  section / detail"]
    for o in outcomes:
        lines.append(f"{o.case.id:<{width}}  {o.case.level:<6}  {o.status:<6}  {o.case.section}")
        if o.detail:
            lines.append(f"{'':<{width}}  {'':<6}  {'':<6}  -> {o.detail}")
    lines.append(summary(outcomes))
    return "\n".join(lines)


def to_json(outcomes: list[Outcome], runtime: str) -> str:
    t = totals(outcomes)
    doc = {
        "runtime": runtime,
        "totals": {k: t[k] for k in (PASS, FAIL, NA, "must-fail")},
        "cases": [o.as_dict() for o in outcomes],
    }
    return json.dumps(doc, indent=2)


def tap(outcomes: list[Outcome]) -> str:
    """TAP version 13: a not-applicable case is a skip, with its reason."""
    lines = ["TAP version 13", f"1..{len(outcomes)}"]
    for n, o in enumerate(outcomes, 1):
        name = f"{o.case.id} [{o.case.level}] {o.case.section}"
        if o.status == PASS:
            lines.append(f"ok {n} - {name}")
        elif o.status == NA:
            lines.append(f"ok {n} - {name} # SKIP {o.detail}")
        else:
            lines.append(f"not ok {n} - {name}")
            lines.append(f"  ---\n  message: {json.dumps(o.detail)}\n  ...")
    return "\n".join(lines)


def junit(outcomes: list[Outcome], runtime: str) -> str:
    t = totals(outcomes)
    suite = ET.Element(
        "testsuite",
        name=f"oci-conformance {runtime}",
        tests=str(len(outcomes)),
        failures=str(t[FAIL]),
        skipped=str(t[NA]),
        time=f"{sum(o.seconds for o in outcomes):.3f}",
    )
    for o in outcomes:
        tc = ET.SubElement(
            suite,
            "testcase",
            classname=f"{o.case.spec}.{o.case.level}",
            name=o.case.id,
            time=f"{o.seconds:.3f}",
        )
        if o.status == FAIL:
            ET.SubElement(tc, "failure", message=o.detail).text = o.case.section
        elif o.status == NA:
            ET.SubElement(tc, "skipped", message=o.detail)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)


def compare(results: dict[str, list[Outcome]]) -> str:
    """One row per case, one column per runtime; a case failing everywhere is flagged for
    review, since it may be the test that is wrong."""
    names = list(results)
    rows = list(zip(*results.values(), strict=True))
    width = max((len(r[0].case.id) for r in rows), default=4)
    col = max(6, *(len(n) for n in names))
    head = f"{'case':<{width}}  {'level':<6}  " + "  ".join(f"{n:<{col}}" for n in names)
    lines = [head, "-" * len(head)]
    for row in rows:
        cells = "  ".join(f"{o.status:<{col}}" for o in row)
        flag = f"  {REVIEW}" if all(o.status == FAIL for o in row) else ""
        lines.append(f"{row[0].case.id:<{width}}  {row[0].case.level:<6}  {cells}{flag}".rstrip())
    lines.append("-" * len(head))
    for key, label in ((PASS, "pass"), (FAIL, "fail"), ("must-fail", "MUST fail"), (NA, "n/a")):
        cells = "  ".join(f"{totals(results[n])[key]:<{col}}" for n in names)
        lines.append(f"{label:<{width}}  {'':<6}  {cells}".rstrip())
    return "\n".join(lines)


def failures_detail(results: dict[str, list[Outcome]]) -> str:
    lines = []
    for name, outcomes in results.items():
        for o in outcomes:
            if o.status != PASS:
                lines.append(f"{name}: {o.case.id}: {o.status}: {o.detail}")
    return "\n".join(lines)

"""The conformance suite's own pieces: the case registry rules, case selection and the
report formats, checked on hand-made outcomes (no runtime involved)."""

from __future__ import annotations

import json
import os
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ocirt.conformance import model, probe, report
from ocirt.conformance.harness import Proc
from ocirt.conformance.model import FAIL, MUST, NA, PASS, SHOULD, Case, Outcome
from ocirt.conformance.runner import load_cases, resolve, select


def _noop(ctx: object) -> None:
    """A case body that never runs here."""


def _case(cid: str, level: str = MUST, spec: str = "runtime.md") -> Case:
    return Case(cid, spec, "Start", level, _noop)


OUTCOMES = [
    Outcome(_case("a.pass"), PASS, seconds=0.1),
    Outcome(_case("b.fail"), FAIL, "status: observed 'running', expected 'stopped'", 0.2),
    Outcome(_case("c.na", SHOULD), NA, "kernel without time namespaces", 0.0),
    Outcome(_case("d.should", SHOULD), FAIL, "x: observed 1, expected 2", 0.0),
]


def test_totals_count_must_failures_apart() -> None:
    t = report.totals(OUTCOMES)
    assert (t[PASS], t[FAIL], t[NA], t["must-fail"]) == (1, 2, 1, 1)
    assert report.summary(OUTCOMES) == "4 cases: 1 pass, 2 fail (1 MUST), 1 not applicable"


def test_table_shows_detail_under_non_passing_cases() -> None:
    lines = report.table(OUTCOMES).splitlines()
    assert lines[0].split()[:3] == ["case", "level", "result"]
    row = next(i for i, line in enumerate(lines) if line.startswith("b.fail"))
    assert "runtime.md / Start" in lines[row]
    assert "expected 'stopped'" in lines[row + 1]


def test_json_round_trips() -> None:
    doc = json.loads(report.to_json(OUTCOMES, "/usr/sbin/runc"))
    assert doc["runtime"] == "/usr/sbin/runc"
    assert doc["totals"] == {"pass": 1, "fail": 2, "n/a": 1, "must-fail": 1}
    assert [c["status"] for c in doc["cases"]] == [PASS, FAIL, NA, FAIL]
    assert doc["cases"][1]["section"] == "runtime.md / Start"


def test_tap_marks_failures_and_skips() -> None:
    lines = report.tap(OUTCOMES).splitlines()
    assert lines[:2] == ["TAP version 13", "1..4"]
    assert lines[2].startswith("ok 1 - a.pass [MUST]")
    assert lines[3].startswith("not ok 2 - b.fail")
    assert any(line.startswith("ok 3 - c.na") and "# SKIP kernel without time" in line for line in lines)


def test_junit_is_valid_xml_with_counts() -> None:
    suite = ET.fromstring(report.junit(OUTCOMES, "runc"))
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "2", "1")
    cases = {tc.get("name"): tc for tc in suite.iter("testcase")}
    assert cases["b.fail"].find("failure") is not None
    assert cases["c.na"].find("skipped") is not None
    assert cases["a.pass"].find("failure") is None


def test_compare_flags_cases_failing_everywhere() -> None:
    other = [Outcome(o.case, FAIL if o.case.id == "b.fail" else PASS) for o in OUTCOMES]
    text = report.compare({"runc": OUTCOMES, "ocirt": other})
    rows = {line.split()[0]: line for line in text.splitlines() if line and not line.startswith("-")}
    assert rows["b.fail"].endswith(report.REVIEW)
    assert not rows["d.should"].endswith(report.REVIEW)
    assert rows["pass"].split()[1:] == ["1", "3"]


def test_registry_rejects_duplicates_and_unknown_names() -> None:
    before = list(model.REGISTRY)
    try:
        model.add(_case("unit.once"))
        with pytest.raises(ValueError, match="duplicate"):
            model.add(_case("unit.once"))
        with pytest.raises(ValueError, match="spec file"):
            model.add(_case("unit.spec", spec="image-spec.md"))
        with pytest.raises(ValueError, match="level"):
            model.add(_case("unit.level", level="MAY"))
    finally:
        model.REGISTRY[:] = before


def test_every_case_names_a_section_level_and_reason() -> None:
    cases = load_cases()
    assert len(cases) >= 80
    for c in cases:
        assert c.spec in model.SPEC_FILES and c.heading and c.level in (MUST, SHOULD), c.id
        assert c.doc, f"{c.id} has no docstring giving its reason"


def _registered(register: Callable[[], None]) -> model.Case:
    """The case ``register()`` adds, taken back out of the registry."""
    before = list(model.REGISTRY)
    try:
        register()
        return model.REGISTRY[-1]
    finally:
        model.REGISTRY[:] = before


def test_a_case_without_a_written_reason_has_an_empty_doc() -> None:
    """The docstring check above can fail: the helpers no longer make up a reason."""
    case = _registered(lambda: probe.probe("unit.nodoc", "config.md", "Hostname", "hostname", "x"))
    assert case.doc == ""
    case = _registered(lambda: probe.refused("unit.nodoc", "config.md", "Hostname", lambda c, x: None))
    assert case.doc == ""


class _Runtime:
    """Answers a refusal case as a runtime would: create, start and state exit codes."""

    def __init__(self, create: int, start: int, state: dict[str, str] | None) -> None:
        self.create_code, self.start_code, self.left = create, start, state
        self.started = False

    def config(self, args: list[str], version: str) -> dict[str, object]:
        return {"process": {"args": args}}

    def create(self, cfg: object, must: bool = True) -> tuple[str, Proc]:
        return "c1", Proc(["create"], self.create_code, "", "" if self.create_code == 0 else "bad value")

    def cli(self, *args: str) -> Proc:
        assert args == ("start", "c1")
        self.started = True
        return Proc(list(args), self.start_code, "", "")

    def state(self, cid: str) -> dict[str, str] | None:
        return self.left


@pytest.mark.parametrize(
    ("create", "start", "left", "passes"),
    [
        (1, 0, None, True),  # refused at create, nothing left
        (1, 0, {"status": "created"}, False),  # refused at create, yet a container is there
        (0, 1, {"status": "stopped"}, True),  # created, refused at start
        (0, 0, {"status": "running"}, False),  # neither refused it
    ],
)
def test_refused_case_passes_only_on_a_refusal(
    create: int, start: int, left: dict[str, str] | None, passes: bool
) -> None:
    case = _registered(
        lambda: probe.refused("unit.refused", "config.md", "Hostname", lambda c, x: None, doc="d")
    )
    runtime: Any = _Runtime(create, start, left)
    if passes:
        case.func(runtime)
    else:
        with pytest.raises(model.Fail):
            case.func(runtime)
    assert runtime.started is (create == 0)


def test_select_by_id_or_spec_file() -> None:
    cases = load_cases()
    assert {c.id for c in select(cases, ["lifecycle.start.*"])} >= {"lifecycle.start.created"}
    assert all(c.spec == "features.md" for c in select(cases, ["features.md"]))
    assert select(cases, None) == cases


def test_failure_message_has_observed_and_expected() -> None:
    err = model.Fail("status", "running", "stopped")
    assert str(err) == "status: observed 'running', expected 'stopped'"
    with pytest.raises(model.Fail):
        model.expect("x", 1, 2)
    model.expect("x", 1, 1)


def test_resolve_names_paths_and_the_venv_ocirt(tmp_path: Path) -> None:
    assert resolve("ocirt") == os.path.join(os.path.dirname(sys.executable), "ocirt")
    assert os.path.basename(resolve("runc")) == "runc"
    with pytest.raises(ValueError, match="not found on PATH"):
        resolve("no-such-runtime")
    with pytest.raises(ValueError, match="not an executable"):
        resolve(str(tmp_path))
    plain = tmp_path / "runtime"
    plain.write_text("")
    plain.chmod(0o644)
    with pytest.raises(ValueError, match="not an executable"):
        resolve(str(plain))

"""runtime-spec's own good and bad example documents (upstream's ``schema/test/``, kept in
``shared/upstream`` beside the repository) against ocirt's JSON schemas, its typed config
parser and ``ocirt validate``: every good one accepted, every bad one refused, except where
a difference below says why not.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import OCIRT
from ocirt.runtime.cgroups.resources import v1_writes
from ocirt.runtime.errors import SpecError
from ocirt.specs.config import load_config
from ocirt.specs.schema import validate_config, validate_features, validate_state

TESTS_DIR = "shared/upstream/runtime-spec-schema-tests"


def _upstream() -> Path:
    """``../shared`` of the repository (a worktree finds it further up)."""
    for parent in Path(__file__).resolve().parents[1].parents:
        if (parent / TESTS_DIR).is_dir():
            return parent / TESTS_DIR
    pytest.fail(f"no {TESTS_DIR} beside the repository or above it", pytrace=False)


UPSTREAM = _upstream()
DOCS = sorted(str(p.relative_to(UPSTREAM)) for p in UPSTREAM.glob("*/*/*.json"))
SCHEMAS: dict[str, Callable[[Any], list[str]]] = {
    "config": validate_config,
    "state": validate_state,
    "features": validate_features,
}
NOT_1_X = "ociVersion 0.5.0-dev: ocirt runs configs of runtime-spec 1.x only (major version 1)"
# Where the typed parser knowingly disagrees with upstream's verdict, and why.
TYPED_DIFFERENCES = {
    "config/good/freebsd-example.json": "a FreeBSD config: on Linux a hostname needs a new uts "
    "namespace, and it has no linux section (runc refuses it too)",
    "config/good/spec-example.json": NOT_1_X,
    "config/good/zos-example.json": NOT_1_X,
    "config/bad/freebsd-vnet-disable.json": "the freebsd section is another platform's: the typed "
    "model of a Linux runtime ignores it, as runc does (the schema checks it)",
}
# ``ocirt validate`` is the schema and then the typed parser: it refuses what either refuses.
CLI_DIFFERENCES = {doc: why for doc, why in TYPED_DIFFERENCES.items() if "/good/" in doc}


def _verdict(doc: str) -> bool:
    return doc.split("/")[1] == "good"


def typed_error(text: str) -> str | None:
    """The typed parser's refusal, or None. The model keeps ``linux.resources`` raw for the
    cgroup code, which checks it when it turns it into writes: that check is included."""
    try:
        cfg = load_config(text)
        v1_writes(cfg.linux.resources or {})
    except SpecError as err:
        return str(err)
    return None


def test_the_upstream_set_is_complete() -> None:
    """A good and a bad example of each kind, so a lost directory cannot pass as empty."""
    kinds = {tuple(d.split("/")[:2]) for d in DOCS}
    assert kinds == {(k, v) for k in SCHEMAS for v in ("good", "bad")}
    assert set(TYPED_DIFFERENCES) <= set(DOCS)


@pytest.mark.parametrize("doc", DOCS)
def test_schema_agrees_with_upstream(doc: str) -> None:
    text = (UPSTREAM / doc).read_text()
    try:
        parsed = json.loads(text)
    except ValueError:
        assert not _verdict(doc), f"{doc} is not JSON"
        return
    problems = SCHEMAS[doc.split("/")[0]](parsed)
    if _verdict(doc):
        assert problems == []
    else:
        assert problems, f"{doc} passed the schema"


@pytest.mark.parametrize("doc", [d for d in DOCS if d.startswith("config/")])
def test_typed_parser_agrees_with_upstream(doc: str) -> None:
    error = typed_error((UPSTREAM / doc).read_text())
    agrees = (error is None) is _verdict(doc)
    if doc in TYPED_DIFFERENCES:
        assert not agrees, f"{doc} now agrees with upstream: drop it from TYPED_DIFFERENCES"
    else:
        assert agrees, error or f"{doc} was accepted"


@pytest.mark.parametrize("doc", [d for d in DOCS if d.startswith("config/")])
def test_ocirt_validate_agrees_with_upstream(doc: str, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text((UPSTREAM / doc).read_text())
    res = subprocess.run([OCIRT, "validate"], cwd=tmp_path, capture_output=True, text=True)
    assert "Traceback" not in res.stderr
    accepted = res.returncode == 0
    if doc in CLI_DIFFERENCES:
        assert not accepted, f"{doc} now agrees with upstream: drop it from the differences"
    elif _verdict(doc):
        assert accepted, res.stderr
        assert res.stdout.startswith("config.json: valid")
    else:
        assert res.returncode == 1 and res.stderr.startswith("ocirt: config.json: "), res.stderr
    assert os.listdir(tmp_path) == ["config.json"]

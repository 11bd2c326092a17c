"""The conformance suite (``ocirt.conformance``) against ocirt and against runc.

Against ocirt it is a gate: any MUST failure not listed in ``EXPECTED`` with a written reason
fails the test. Against runc it checks the suite itself. On both, a failing case must say why
in its docstring, and every listed failure must still fail (a stale entry is an error).
Entries starting with "race:" are timing-dependent and may pass. Each run must leave nothing
behind: no state directory, cgroup, mount or work directory.
"""

from __future__ import annotations

import os

import pytest
from conftest import alone
from ocirt.conformance.harness import Harness, cgroup_mounts
from ocirt.conformance.model import FAIL, MUST, Outcome
from ocirt.conformance.runner import load_cases, resolve, run_suite
from support import hugetlb

DELETE_CREATED = """runc's CLI deletes a created container without --force and managers (containerd)
rely on it; runtime.md asks for an error. ocirt follows runc here on purpose."""

EXPECTED: dict[str, dict[str, str]] = {
    "ocirt": {
        "lifecycle.delete.created": DELETE_CREATED,
    },
    "runc": {
        "lifecycle.delete.created": DELETE_CREATED,
        "namespaces.new.time": "runc 1.1.5 has no time namespace support",
        "namespaces.join.time": "runc 1.1.5 has no time namespace support",
        "time-offsets": "runc 1.1.5 has no time namespace support",
        "rootfs-propagation.shared": "runc 1.1.5 leaves the container's root private",
        "rootfs-propagation.slave": "runc 1.1.5: host mounts made after create do not reach the container",
        "rootfs-propagation.unbindable": "runc 1.1.5 fails preparing an unbindable rootfs",
        "devices.path-conflict": "runc 1.1.5 accepts a device path that is an existing regular file",
        "domainname": "runc 1.1.5 ignores domainname",
        "personality": "runc 1.1.5 ignores linux.personality",
        "memory-policy": "runc 1.1.5 ignores linux.memoryPolicy (runtime-spec 1.3)",
        "memory-policy.no-mode": "runc 1.1.5 ignores linux.memoryPolicy (runtime-spec 1.3)",
        "default-filesystems.no-proc": "runc 1.1.5 opens /proc/self/fd inside the container",
        "cgroups.pids.limit-zero": "runc 1.1.5 treats pids.limit 0 as unset (a limit since runtime-spec 1.3)",
        "hooks.order": "race: runc runs poststart hooks while init may still run startContainer hooks",
        "hooks.fail.poststop": "runc 1.1.5 stops at the first failing poststop hook",
    },
}


@pytest.fixture(scope="module", params=["ocirt", "runc"])
def results(request: pytest.FixtureRequest) -> tuple[str, list[Outcome], Harness]:
    """Run with the hugetlb v1 hierarchy where it can be had; without it the hugetlb case
    reports itself not applicable, with the reason."""
    harness = Harness(resolve(request.param))
    with hugetlb.v1_hierarchy(alone(request.config)):
        outcomes = run_suite(harness.runtime, load_cases(), harness=harness)
    return request.param, outcomes, harness


def test_no_unexplained_must_failure(results: tuple[str, list[Outcome], Harness]) -> None:
    name, outcomes, _ = results
    failed = {o.case.id: o.detail for o in outcomes if o.status == FAIL and o.case.level == MUST}
    unexplained = {cid: detail for cid, detail in failed.items() if cid not in EXPECTED[name]}
    assert not unexplained, f"{name}: MUST failures without a written reason: {unexplained}"


def test_expected_failures_still_fail(results: tuple[str, list[Outcome], Harness]) -> None:
    name, outcomes, _ = results
    failing = {o.case.id for o in outcomes if o.status == FAIL}
    stale = [cid for cid, why in EXPECTED[name].items() if cid not in failing and not why.startswith("race:")]
    assert not stale, f"{name}: listed as failing but passed (remove from EXPECTED): {stale}"


def test_failures_are_explained_in_the_case(results: tuple[str, list[Outcome], Harness]) -> None:
    """Any failing case, MUST or SHOULD, says in its docstring why it fails on this runtime."""
    name, outcomes, _ = results
    unexplained = [o.case.id for o in outcomes if o.status == FAIL and name not in o.case.doc]
    assert not unexplained, (
        f"cases failing on {name} without a word on {name} in their docstring: {unexplained}"
    )


def test_suite_leaves_nothing(results: tuple[str, list[Outcome], Harness]) -> None:
    _, _, harness = results
    left = [p for p in (harness.root, harness.workdir) if os.path.exists(p)]
    left += [
        os.path.join(top, harness.cgroup_parent)
        for top in cgroup_mounts()
        if os.path.exists(os.path.join(top, harness.cgroup_parent))
    ]
    with open("/proc/self/mountinfo") as f:
        left += [line.split()[4] for line in f if harness.token in line]
    assert not left, f"left behind: {left}"

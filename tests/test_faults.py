"""The fault lane: a few hundred lifecycles, each with a fault at a random moment.

``create`` killed mid-way, the init killed in each state, ``delete --force`` racing
``create``, two creates of one id, kills during ``start`` and ``delete``: afterwards
``state`` and ``list`` tell the truth and one ``delete --force`` leaves nothing (see
``tests/support/faults.py``). Seeded: the seed is printed, ``OCIRT_FAULT_SEED=N``
replays it and ``OCIRT_FAULT_CASES`` sizes the run; two workers share the lifecycles.
"""

from __future__ import annotations

import json
import os
import random
import sys
import uuid
from typing import Any

import pytest
from ocirt.testing.bundle import base_config, make_bundle
from support.lanes import run_workers

WORKERS = 2


@pytest.mark.faults
def test_faults_leave_nothing_and_state_tells_the_truth(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = int(os.environ.get("OCIRT_FAULT_SEED") or random.SystemRandom().randrange(2**32))
    cases = int(os.environ.get("OCIRT_FAULT_CASES") or 300)
    marker = f"faultlane-{uuid.uuid4().hex[:6]}"
    root = f"/run/{marker}"
    with capsys.disabled():
        print(f"\nfault seed {seed}, {cases} lifecycles: replay with OCIRT_FAULT_SEED={seed}")
    share = -(-cases // WORKERS)
    commands = []
    for n in range(WORKERS):
        bundle = str(tmp_path / f"bundle{n}")
        make_bundle(bundle, ["sleep", "1000"], base_config(["sleep", "1000"]))
        argv = [root, bundle, f"{marker}{n}", seed, n * share, min(share, cases - n * share)]
        commands.append([sys.executable, "-m", "support.faults", *map(str, argv)])
    counts, problems = run_workers(commands, root, seed, cwd=os.path.dirname(__file__))
    ran = {key: sum(c["counts"][key] for c in counts) for key in counts[0]["counts"]}
    with capsys.disabled():
        print(f"faults: {ran}, a create takes {max(c['span'] for c in counts):.3f}s")
    assert sum(ran.values()) == cases and all(ran.values()), ran
    assert not problems, f"seed {seed}: {len(problems)} bad lifecycles, first ones:\n" + "\n".join(
        json.dumps(p) for p in problems[:8]
    )

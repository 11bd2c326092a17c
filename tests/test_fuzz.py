"""The fuzz lane: thousands of hostile configs through ``ocirt create`` and ``delete --force``.

Each case must end as runc's would: created (and then deleted), or refused with exactly
one ``ocirt:`` line and exit status 1; never a traceback, an "internal error", a hang,
or a state directory, cgroup, mount or process left after ``delete --force``. Configs
come from a seed (printed; ``OCIRT_FUZZ_SEED=N`` replays, ``OCIRT_FUZZ_CASES`` sizes the
run); two workers share the cases, each forking the CLI from a warm interpreter and
starting a fresh ``ocirt`` for every tenth (``tests/support/hostile.py``).
"""

from __future__ import annotations

import json
import os
import random
import sys
import uuid
from typing import Any

import pytest
from ocirt.testing.bundle import make_rootfs
from support import hostile
from support.lanes import run_workers

WORKERS = 2
FRESH_EVERY = 10


@pytest.mark.fuzz
def test_hostile_configs_fail_cleanly(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    seed = int(os.environ.get("OCIRT_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
    cases = int(os.environ.get("OCIRT_FUZZ_CASES") or 2500)
    marker = f"fuzzlane-{uuid.uuid4().hex[:6]}"
    root = f"/run/{marker}"
    with capsys.disabled():
        print(f"\nfuzz seed {seed}, {cases} cases: replay with OCIRT_FUZZ_SEED={seed}")
    share = -(-cases // WORKERS)
    commands = []
    for n in range(WORKERS):
        bundle = tmp_path / f"bundle{n}"
        make_rootfs(str(bundle / "rootfs"))
        argv = [root, str(bundle), marker, seed, n * share, min(share, cases - n * share), FRESH_EVERY]
        commands.append([sys.executable, hostile.__file__, *map(str, argv)])
    counts, problems = run_workers(commands, root, seed)
    ran = {key: sum(c["counts"][key] for c in counts) for key in counts[0]["counts"]}
    with capsys.disabled():
        print(f"fuzz: {ran}")
    assert ran["cases"] == cases and ran["created"] > 0 and ran["fresh"] > 0, ran
    assert not problems, f"seed {seed}: {len(problems)} bad cases, first ones:\n" + "\n".join(
        json.dumps(p) for p in problems[:5]
    )

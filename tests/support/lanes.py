"""The fault and fuzz lanes' shared driver: worker processes that split a seeded run and
report one JSON object per line (``counts`` when a worker finishes, anything else a problem)."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any


def run_workers(
    commands: list[list[str]], root: str, seed: int, cwd: str | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run ``commands`` side by side; return the finished workers' reports and the problems.
    Whatever happens, no worker outlives this and the runtime ``root`` they share is removed;
    a worker that never reported its counts fails the test, naming the seed to replay."""
    workers: list[subprocess.Popen[str]] = []
    try:
        for argv in commands:
            workers.append(
                subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            )
        results = [w.communicate(timeout=900) for w in workers]
    finally:
        for w in workers:
            w.kill()
            w.wait()
        shutil.rmtree(root, ignore_errors=True)
    reports = [json.loads(line) for out, _ in results for line in out.splitlines()]
    finished = [r for r in reports if "counts" in r]
    assert len(finished) == len(commands), f"a worker died (seed {seed}): {results}"
    return finished, [r for r in reports if "counts" not in r]

"""runc itself, run on a test's bundle, as the independent expectation ocirt is compared with."""

from __future__ import annotations

import shutil
import subprocess
import uuid


def runc_run(bundle: str) -> str:
    """Run ``bundle`` to completion under runc in a root of its own (removed after) and
    return its stdout; a failed run fails the test with runc's stderr."""
    root = f"/run/ocirt-test-runc-{uuid.uuid4().hex[:8]}"
    cid = f"ocirt-test-runc-{uuid.uuid4().hex[:8]}"
    try:
        res = subprocess.run(
            ["runc", "--root", root, "run", "--bundle", bundle, cid],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert res.returncode == 0, res.stderr
        return res.stdout
    finally:
        subprocess.run(["runc", "--root", root, "delete", "--force", cid], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)

"""The runc-compatible runtime binary under the manager, called with the manager's own
``--root`` so its containers never mix with another tool's."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ocirt.manager.containers import layout
from ocirt.manager.errors import ManagerError

if TYPE_CHECKING:
    import subprocess


def default_runtime() -> str:
    return os.environ.get("OCIRT_RUNTIME") or os.path.join(os.path.dirname(sys.executable), "ocirt")


@dataclass(frozen=True)
class Context:
    """What every container operation needs: the manager's root and the runtime binary."""

    root: str
    runtime: str

    @classmethod
    def make(cls, root: str, runtime: str | None) -> Context:
        return cls(os.path.abspath(root), runtime or default_runtime())

    @property
    def runtime_root(self) -> str:
        return layout.runtime_root(self.root)

    def run(
        self, *argv: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        import subprocess  # here: an exit with nothing to do never calls the runtime

        cmd = [self.runtime, "--root", self.runtime_root, *argv]
        try:
            done = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=120)
        except OSError as exc:
            raise ManagerError(f"runtime {self.runtime}: {exc.strerror}") from None
        if check and done.returncode != 0:
            text = done.stderr.strip().splitlines()
            raise ManagerError(f"{argv[0]}: {text[-1] if text else f'runtime exited with {done.returncode}'}")
        return done

    def exit_command(self) -> tuple[str, list[str]]:
        """What the shim runs when the container exits (``cleanup.py``); the id is appended."""
        return sys.executable, ["-m", "ocirt.manager.containers.cleanup", self.root, self.runtime]

"""The one exception type ``ocirtctl`` turns into a one-line message and an exit code."""

from __future__ import annotations


class ManagerError(Exception):
    """A user-facing failure; ``str()`` is the whole message, naming the bad input."""

    def __init__(self, message: str, exit_code: int = 125) -> None:
        super().__init__(message)
        self.exit_code = exit_code

"""The one exception type ``ocirtctl`` turns into a one-line message and an exit code."""

from __future__ import annotations


class ManagerError(Exception):
    """A user-facing failure; ``str()`` is the whole message, naming the bad input."""

    def __init__(self, message: str, exit_code: int = 125) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def start_failure(what: str, message: str) -> ManagerError:
    """A container's or an exec's process that could not be started, with docker's status:
    127 when its command is not found, 126 when it is there but cannot be executed (docker
    too reads these from the runtime's message, as runc's are only text)."""
    if "executable file not found" in message or "no such file or directory" in message.lower():
        return ManagerError(f"{what}: {message}", 127)
    if "not executable" in message or "permission denied" in message.lower():
        return ManagerError(f"{what}: {message}", 126)
    return ManagerError(f"{what}: {message}")

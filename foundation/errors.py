"""The error every ocirt layer raises on purpose.

Every failure a user can cause (a bad bundle, a bad flag, a container in the wrong state, a
kernel refusal) becomes an ``OcirtError`` whose text is the whole message: the CLI prints it
once as ``ocirt: <text>`` and exits non-zero, so no traceback ever reaches a manager's logs.
It lives below specs so the config model can raise ``SpecError`` without importing the
runtime.
"""


class OcirtError(Exception):
    """A failure worth one line to the user; ``str(err)`` is that line."""


class SpecError(OcirtError):
    """A config.json value that breaks the runtime-spec; the text starts with the field's path."""

    def __init__(self, field: str, problem: str, source: str = "config.json") -> None:
        super().__init__(f"{source}: {field}: {problem}" if source else f"{field}: {problem}")
        self.field = field


def clip(text: str, limit: int = 4096) -> str:
    """An error may echo a hostile input of any size (a 70 000-character mount type, a
    5000-character path): keep one line readable, and a channel message within its size."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"

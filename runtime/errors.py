"""The runtime's error names, defined in ``ocirt.foundation.errors`` so the layers below the
runtime (specs) raise the same types; runtime modules import them from here."""

from ocirt.foundation.errors import OcirtError as OcirtError
from ocirt.foundation.errors import SpecError as SpecError
from ocirt.foundation.errors import clip as clip


def describe(exc: BaseException) -> str:
    """One line for a failure: ours as raised, an OSError as ``file: what``."""
    if isinstance(exc, OSError) and not isinstance(exc, OcirtError):
        text = exc.strerror or str(exc)
        return f"{exc.filename}: {text}" if exc.filename and str(exc.filename) not in text else text
    if isinstance(exc, OcirtError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class CleanupError(OcirtError):
    """A failed step whose undoing failed too: the caller learns both, the cause first."""

    def __init__(self, original: BaseException, cleanup: BaseException) -> None:
        super().__init__(f"{describe(original)}; cleaning up failed too: {describe(cleanup)}")
        self.original = original
        self.cleanup = cleanup

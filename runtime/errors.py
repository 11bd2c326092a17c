"""The runtime's error names, defined in ``ocirt.foundation.errors`` so the layers below the
runtime (specs) raise the same types; runtime modules import them from here."""

from ocirt.foundation.errors import OcirtError as OcirtError
from ocirt.foundation.errors import SpecError as SpecError
from ocirt.foundation.errors import clip as clip

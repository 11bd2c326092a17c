"""``ocirt validate``: check a bundle's ``config.json`` against the runtime-spec 1.3.0 schema.

The schema catches shape errors everywhere in the document at once; the typed parser the
runtime itself uses then adds the cross-field rules a schema cannot state (a hostname
without a uts namespace, mappings without a user namespace), so a bundle that passes here
is one ``ocirt create`` accepts.
"""

from __future__ import annotations

import os

from ocirt.foundation import fastjson
from ocirt.runtime.errors import OcirtError, SpecError
from ocirt.specs.config import load_config


def problems_of(bundle: str | None) -> list[str]:
    """One line per problem (``config.json: field: what``); none for a valid bundle."""
    from ocirt.specs import schema

    path = os.path.join(bundle or os.getcwd(), "config.json")
    text = _read(path)
    try:
        doc = fastjson.loads(text)
    except ValueError as exc:
        raise OcirtError(f"config.json: not valid JSON: {exc}") from None
    problems = schema.errors(schema.CONFIG, doc)
    semantic = _semantic_error(text, [field for field, _ in problems])
    return [f"config.json: {field}: {message}" for field, message in problems] + (
        [semantic] if semantic else []
    )


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise OcirtError(f"config.json: cannot read {os.path.abspath(path)}: {reason}") from None


def _semantic_error(text: str, reported: list[str]) -> str | None:
    """The typed parser's complaint, unless it is about a field the schema already named."""
    try:
        load_config(text)
    except SpecError as err:
        if any(_related(err.field, field) for field in reported):
            return None
        return str(err)
    return None


def _related(a: str, b: str) -> bool:
    """Same field, or one contains the other (``root`` and ``root.path``)."""
    short, long = sorted((a, b), key=len)
    return long == short or long.startswith((short + ".", short + "["))

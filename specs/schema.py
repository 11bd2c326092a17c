"""JSON Schema checks of ``config.json``, state and features documents (runtime-spec 1.3.0).

Importing ``jsonschema`` costs far more than a whole ``ocirt run``, so only ``ocirt validate``,
tools and tests load this module; the runtime itself relies on the typed parser in
``ocirt.specs.config``. The schemas in ``schemas/*.json`` refer to each other by relative
``$ref``; a ``referencing`` registry holding all of them resolves those references offline.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource

BASE_URI = "https://ocirt.invalid/schemas/"
CONFIG, STATE, FEATURES = "config-schema.json", "state-schema.json", "features-schema.json"

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_JSON_KINDS = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"))


@functools.cache
def registry() -> Registry[Any]:
    """Every schema file under its ``$id``, so no reference can reach the network."""
    folder = resources.files("ocirt.specs") / "schemas"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".json"):
            contents = json.loads(entry.read_text(encoding="utf-8"))
            found.append((contents["$id"], Resource.from_contents(contents)))
    return Registry().with_resources(found)


@functools.cache
def _validator(name: str) -> Draft202012Validator:
    reg = registry()
    return Draft202012Validator(reg.contents(BASE_URI + name), registry=reg)


def format_path(parts: list[str | int]) -> str:
    """``linux.namespaces[0].type``; keys that are not identifiers go in brackets, JSON-quoted."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out or "(document)"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return next((name for cls, name in _JSON_KINDS if isinstance(value, cls)), type(value).__name__)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _explain(error: ValidationError) -> list[tuple[str, str]]:
    """One (path, message) per problem; messages name the value briefly, never a whole subtree."""
    parts: list[str | int] = list(error.absolute_path)
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in error.instance]
        return [(format_path([*parts, name]), "is required") for name in missing]
    message = _message(error)
    if "propertyNames" in error.absolute_schema_path:
        message = f"key {message}"
    return [(format_path(parts), message)]


def _message(error: ValidationError) -> str:
    wanted, value = error.validator_value, error.instance
    if error.validator == "type":
        expected = " or ".join(wanted) if isinstance(wanted, list) else wanted
        return f"must be {expected}, not {_kind(value)}"
    if error.validator == "enum":
        return f"{_short(value)} is not one of: {', '.join(_short(v) for v in wanted)}"
    if error.validator == "pattern":
        title = error.schema.get("title") if isinstance(error.schema, dict) else None
        return f"{_short(value)} is not {title}" if title else f"{_short(value)} does not match {wanted!r}"
    return str(error.message)


def errors(schema: str, doc: Any) -> list[tuple[str, str]]:
    """Every violation of ``schema`` (a file name such as ``CONFIG``) as (path, message), sorted."""
    found: set[tuple[str, str]] = set()
    for error in _validator(schema).iter_errors(doc):
        found.update(_explain(error))
    return sorted(found)


def _lines(schema: str, doc: Any) -> list[str]:
    return [f"{path}: {message}" for path, message in errors(schema, doc)]


def validate_config(doc: Any) -> list[str]:
    """Problems in a parsed ``config.json`` as ``field.path: message``; empty when valid."""
    return _lines(CONFIG, doc)


def validate_state(doc: Any) -> list[str]:
    """Problems in a state document (``ocirt state`` output) as ``field.path: message``."""
    return _lines(STATE, doc)


def validate_features(doc: Any) -> list[str]:
    """Problems in a features document as ``field.path: message``."""
    return _lines(FEATURES, doc)

"""JSON on the hot path without ``import json``.

``json`` pulls in ``re`` (about 10 ms on the target machines, a quarter of runc's whole
``run``); the C accelerator ``_json`` alone parses and encodes exactly as ``json`` does.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class _ScanContext:
    """The attributes ``_json.make_scanner`` reads from a ``json.JSONDecoder``."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}  # noqa: RUF012 - the scanner requires this attribute

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


_scan = _json.make_scanner(_ScanContext())  # type: ignore[arg-type]
_WS = " \t\n\r"


def loads(text: str) -> Any:
    """Parse one JSON document; raise ``ValueError`` with the offset on bad input."""
    start = len(text) - len(text.lstrip(_WS))
    try:
        value, end = _scan(text, start)
    except StopIteration as exc:
        raise ValueError(f"expecting a JSON value at offset {exc.value}") from None
    except RecursionError:
        # the scanner recurses once per level: a hostile [[[[...]]]] must not become a traceback
        raise ValueError("arrays or objects nested too deeply") from None
    except SystemError:
        # _json reports most syntax errors through json.decoder, which it finds only when
        # already imported; on this error path the import is affordable.
        import json

        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
        raise
    rest = text[end:].strip(_WS)
    if rest:
        raise ValueError(f"extra data at offset {end}")
    return value


def dumps(value: Any, indent: str | None = None) -> str:
    """Encode like ``json.dumps(value, indent=...)`` with ``ensure_ascii=False``."""
    item_sep, key_sep = (",", ": ") if indent is not None else (",", ":")
    encoder = _json.make_encoder(
        {}, _default, _json.encode_basestring, indent, key_sep, item_sep, False, False, True
    )
    if indent is not None:
        return _dumps_indented(value, indent, 0)
    return "".join(encoder(value, 0))


def _default(value: Any) -> Any:
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _dumps_indented(value: Any, indent: str, level: int) -> str:
    """The C encoder only does compact output; pretty output is rare (``spec``) and small."""
    pad, inner = "\n" + indent * level, "\n" + indent * (level + 1)
    if isinstance(value, dict) and value:
        items = (
            f"{inner}{_json.encode_basestring(str(k))}: {_dumps_indented(v, indent, level + 1)}"
            for k, v in value.items()
        )
        return "{" + ",".join(items) + pad + "}"
    if isinstance(value, list) and value:
        return "[" + ",".join(inner + _dumps_indented(v, indent, level + 1) for v in value) + pad + "]"
    return dumps(value)

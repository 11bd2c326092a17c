"""Go ``text/template`` as the docker CLI runs it, over JSON-shaped Python values.

Docker scripts are written against Go's semantics, so this follows them where a script can
tell: ``<no value>`` and ``map[k:v]`` printing, Go's truth, ``eq`` that refuses mixed kinds,
``{{-``/``-}}`` trimming, and error texts (``template: :1:8: executing "" at <.A.B>: ...``)
that users grep for. No maintained Go-template package exists on PyPI (the one candidate
wraps Go's own engine through CGo, so needs a Go toolchain), hence this module.

Values are what ``json.loads`` gives (dict, list, str, int, float, bool, None) plus
``Record``: a dict standing for a Go struct, whose missing field is "can't evaluate field"
rather than "map has no entry", and whose callables are methods (``.Label "k"``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


class TemplateError(Exception):
    """A parse or execution failure, worded as Go's ``text/template`` words it."""


class Record(dict[str, Any]):
    """A Go struct: its fields by name, its methods as callables, its Go type for errors;
    ``json_tags`` are its fields' ``json:"name,omitempty"`` tags, which ``json`` obeys."""

    def __init__(
        self, type_name: str, fields: dict[str, Any], json_tags: dict[str, str] | None = None
    ) -> None:
        super().__init__(fields)
        self.type_name = type_name
        self.json_tags = json_tags or {}


# ---------------------------------------------------------------- lexing

_TRIM = " \t\r\n"
_TOKEN = re.compile(
    r"""(?P<ws>\s+)
    |(?P<str>"(?:[^"\\\n]|\\.)*")
    |(?P<raw>`[^`]*`)
    |(?P<char>'(?:[^'\\\n]|\\.)+')
    |(?P<num>[-+]?(?:0[xX][0-9a-fA-F_]+|(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?))
    |(?P<field>(?:\.[A-Za-z_]\w*)+)
    |(?P<var>\$\w*)
    |(?P<declare>:=)
    |(?P<op>[()|=,])
    |(?P<dot>\.)
    |(?P<ident>[A-Za-z_]\w*)
    """,
    re.VERBOSE,
)


@dataclass
class _Tok:
    kind: str
    text: str
    pos: int


def _action_tokens(src: str, start: int, end: int, line: int) -> list[_Tok]:
    out: list[_Tok] = []
    i = start
    while i < end:
        m = _TOKEN.match(src, i, end)
        if m is None:
            raise TemplateError(f"template: :{line}: unexpected {src[i]!r} in command")
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append(_Tok(kind, m.group(), i))
        i = m.end()
    return out


def _closing(src: str, i: int) -> int:
    """Where the action from ``i`` ends: the first ``}}`` outside a quoted literal."""
    quote = ""
    while i < len(src):
        ch = src[i]
        if quote:
            if ch == "\\" and quote != "`":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"`'":
            quote = ch
        elif src.startswith("}}", i):
            return i
        i += 1
    return -1


# ---------------------------------------------------------------- the tree


@dataclass
class _Node:
    pos: int
    text: str  # the node as Go's String() shows it in error contexts


@dataclass
class _Literal(_Node):
    value: Any


@dataclass
class _Field(_Node):
    names: list[str]


@dataclass
class _Variable(_Node):
    name: str
    names: list[str]


@dataclass
class _Dot(_Node):
    pass


@dataclass
class _Ident(_Node):
    name: str


@dataclass
class _Chain(_Node):
    base: _Node
    names: list[str]


@dataclass
class _Command(_Node):
    args: list[_Node]


@dataclass
class _Pipe(_Node):
    decl: list[str]
    assign: bool
    cmds: list[_Command]


@dataclass
class _Text:
    text: str


@dataclass
class _Action:
    pipe: _Pipe


@dataclass
class _Branch:
    kind: str  # if, range or with
    pipe: _Pipe
    body: list[Any]
    orelse: list[Any] = field(default_factory=list)


@dataclass
class _Jump:
    kind: str  # break or continue
    pos: int


# ---------------------------------------------------------------- parsing


class _Parser:
    def __init__(self, src: str) -> None:
        self.src = src
        self.items = list(self._split(src))
        self.i = 0
        self.scopes: list[set[str]] = [{"$"}]
        self.depth = {"range": 0}

    def line(self, pos: int) -> int:
        return 1 + self.src.count("\n", 0, pos)

    def fail(self, pos: int, message: str) -> TemplateError:
        return TemplateError(f"template: :{self.line(pos)}: {message}")

    def _split(self, src: str) -> Iterator[tuple[str, int, int]]:
        """Text and action spans, with ``{{-``/``-}}`` trimming applied to the text."""
        i, trim_next = 0, False
        while True:
            j = src.find("{{", i)
            text_end = len(src) if j < 0 else j
            start = i
            if trim_next:
                while start < text_end and src[start] in _TRIM:
                    start += 1
            if j < 0:
                if start < len(src):
                    yield ("text", start, len(src))
                return
            a = j + 2
            trim_left = src.startswith("- ", a) or src.startswith("-\t", a) or src.startswith("-\n", a)
            end = text_end
            if trim_left:
                while end > start and src[end - 1] in _TRIM:
                    end -= 1
                a += 1
            if end > start:
                yield ("text", start, end)
            close = _closing(src, a)
            if src.startswith("/*", self._skip_space(a)):
                close = src.find("*/", a)
                close = -1 if close < 0 else src.find("}}", close)
                if close < 0:
                    raise self.fail(j, "unclosed comment")
            if close < 0:
                raise self.fail(j, "unclosed action")
            trim_next = src[close - 1] == "-" and close - 2 >= a and src[close - 2] in _TRIM
            inner_end = close - 1 if trim_next else close
            yield ("action", a, inner_end)
            i = close + 2

    def _skip_space(self, a: int) -> int:
        while a < len(self.src) and self.src[a] in _TRIM:
            a += 1
        return a

    # -- structure

    def parse(self) -> list[Any]:
        body, end = self.list_until(())
        if end is not None:
            raise self.fail(end[1], f"unexpected {{{{{end[0]}}}}}")
        return body

    def list_until(self, stops: tuple[str, ...]) -> tuple[list[Any], tuple[str, int, list[_Tok]] | None]:
        out: list[Any] = []
        while self.i < len(self.items):
            kind, a, b = self.items[self.i]
            self.i += 1
            if kind == "text":
                out.append(_Text(self.src[a:b]))
                continue
            if self.src[self._skip_space(a) :].startswith("/*"):
                continue
            toks = _action_tokens(self.src, a, b, self.line(a))
            if not toks:
                raise self.fail(a, "missing value for command")
            word = toks[0].text if toks[0].kind == "ident" else ""
            if word in ("end", "else"):
                if word not in stops:
                    raise self.fail(a, f"unexpected {{{{{word}}}}}")
                return out, (word, a, toks[1:])
            out.append(self.statement(word, toks, a))
        if stops:
            raise self.fail(len(self.src), "unexpected EOF")
        return out, None

    def statement(self, word: str, toks: list[_Tok], a: int) -> Any:
        if word in ("if", "range", "with"):
            return self.branch(word, toks[1:], a)
        if word in ("break", "continue"):
            if not self.depth["range"]:
                raise self.fail(a, f"{{{{{word}}}}} outside {{{{range}}}}")
            return _Jump(word, a)
        if word in ("define", "template", "block"):
            raise self.fail(a, f"{{{{{word}}}}} is not supported here")
        return _Action(self.pipeline(toks, a, allow_decl=True))

    def branch(self, kind: str, toks: list[_Tok], a: int) -> _Branch:
        self.scopes.append(set())
        pipe = self.pipeline(toks, a, allow_decl=True, context=kind)
        if kind == "range":
            self.depth["range"] += 1
        body, end = self.list_until(("end", "else"))
        if kind == "range":
            self.depth["range"] -= 1
        node = _Branch(kind, pipe, body)
        assert end is not None
        if end[0] == "else":
            rest = end[2]
            if rest and rest[0].kind == "ident" and rest[0].text in ("if", "with"):
                node.orelse = [self.branch(rest[0].text, rest[1:], end[1])]
            else:
                if rest:
                    raise self.fail(end[1], "unexpected token in else")
                node.orelse, end = self.list_until(("end",))
        self.scopes.pop()
        return node

    # -- pipelines

    def pipeline(self, toks: list[_Tok], a: int, allow_decl: bool, context: str = "command") -> _Pipe:
        ranging = context == "range"
        decl: list[str] = []
        assign = False
        names_end = 0
        if allow_decl and toks and toks[0].kind == "var":
            names, k = [toks[0].text], 1
            if ranging and len(toks) > 2 and toks[1].text == "," and toks[2].kind == "var":
                names, k = [toks[0].text, toks[2].text], 3
            if k < len(toks) and toks[k].text in (":=", "="):
                decl, assign, names_end = names, toks[k].text == "=", k + 1
        if decl and not assign:
            self.scopes[-1].update(decl)
        elif assign:
            for name in decl:
                self.need_var(name, toks[0].pos)
        rest = toks[names_end:]
        if not rest:
            raise self.fail(a, f"missing value for {context}")
        cmds = [self.command(part) for part in self.split_pipes(rest, a)]
        text = " | ".join(c.text for c in cmds)
        return _Pipe(rest[0].pos, text, decl, assign, cmds)

    def split_pipes(self, toks: list[_Tok], a: int) -> list[list[_Tok]]:
        parts: list[list[_Tok]] = [[]]
        depth = 0
        for t in toks:
            if t.text == "(":
                depth += 1
            elif t.text == ")":
                depth -= 1
                if depth < 0:
                    raise self.fail(t.pos, "unexpected right paren")
            if t.text == "|" and depth == 0:
                parts.append([])
            else:
                parts[-1].append(t)
        if depth:
            raise self.fail(a, "unclosed left paren")
        if any(not p for p in parts):
            raise self.fail(a, "missing command in pipeline")
        return parts

    def command(self, toks: list[_Tok]) -> _Command:
        args: list[_Node] = []
        k = 0
        while k < len(toks):
            node, k = self.operand(toks, k)
            args.append(node)
        return _Command(args[0].pos, " ".join(n.text for n in args), args)

    def operand(self, toks: list[_Tok], k: int) -> tuple[_Node, int]:
        t = toks[k]
        node: _Node
        if t.text == "(":
            depth, j = 1, k + 1
            while depth:
                depth += {"(": 1, ")": -1}.get(toks[j].text, 0)
                j += 1
            inner = self.pipeline(toks[k + 1 : j - 1], t.pos, allow_decl=True)
            node, k = _Pipe(t.pos, f"({inner.text})", inner.decl, inner.assign, inner.cmds), j
        else:
            node, k = self.term(t), k + 1
        if (
            k < len(toks)
            and toks[k].kind == "field"
            and toks[k].pos == toks[k - 1].pos + len(toks[k - 1].text)
        ):
            names = toks[k].text[1:].split(".")
            if isinstance(node, _Field):
                node = _Field(toks[k].pos, node.text + toks[k].text, node.names + names)
            elif isinstance(node, _Variable):
                node = _Variable(node.pos, node.text + toks[k].text, node.name, node.names + names)
            else:
                node = _Chain(toks[k].pos, node.text + toks[k].text, node, names)
            k += 1
        return node, k

    def term(self, t: _Tok) -> _Node:
        if t.kind == "field":
            second = t.text.find(".", 1)
            return _Field(t.pos + max(second, 0), t.text, t.text[1:].split("."))
        if t.kind == "dot":
            return _Dot(t.pos, ".")
        if t.kind == "var":
            name, _, rest = t.text.partition(".")
            self.need_var(name, t.pos)
            return _Variable(t.pos, t.text, name, rest.split(".") if rest else [])
        if t.kind in ("str", "raw"):
            value = json.loads(t.text) if t.kind == "str" else t.text[1:-1]
            return _Literal(t.pos, t.text, value)
        if t.kind == "num":
            return _Literal(t.pos, t.text, _number(t.text))
        if t.kind == "char":
            return _Literal(t.pos, t.text, ord(json.loads('"' + t.text[1:-1] + '"')))
        if t.kind == "ident":
            if t.text in ("true", "false"):
                return _Literal(t.pos, t.text, t.text == "true")
            if t.text == "nil":
                return _Literal(t.pos, t.text, None)
            if t.text not in _ARITY:
                raise self.fail(t.pos, f'function "{t.text}" not defined')
            return _Ident(t.pos, t.text, t.text)
        raise self.fail(t.pos, f"unexpected {t.text!r} in operand")

    def need_var(self, name: str, pos: int) -> None:
        if not any(name in s for s in self.scopes):
            raise self.fail(pos, f'undefined variable "{name}"')


def _number(text: str) -> int | float:
    clean = text.replace("_", "")
    try:
        return int(clean, 0)
    except ValueError:
        return float(clean)


# ---------------------------------------------------------------- printing like Go's fmt


def go_type(v: Any) -> str:
    """The Go type name docker's errors would show for ``v``."""
    if isinstance(v, Record):
        return v.type_name
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dict):
        return "map[string]interface {}"
    if isinstance(v, list):
        return "[]interface {}"
    return "interface {}"


def go_float(f: float) -> str:
    """``%v`` of a float64: Go's shortest digits, exponent form from 1e+06 and below 1e-04."""
    if f != f or f in (float("inf"), float("-inf")):
        return {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}[repr(f)]
    if f == 0:
        return "0"
    _, digit_tuple, exponent = Decimal(repr(abs(f))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    dp = len(digits) + int(exponent)
    sign = "-" if f < 0 else ""
    if not -4 <= dp - 1 < 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        exp = dp - 1
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if dp <= 0:
        return f"{sign}0.{'0' * -dp}{digits}"
    if dp >= len(digits):
        return sign + digits + "0" * (dp - len(digits))
    return f"{sign}{digits[:dp]}.{digits[dp:]}"


def go_string(v: Any) -> str:
    """Go's ``%v`` of a JSON value (``map`` keys sorted, as fmt prints them)."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return go_float(v)
    if v is None:
        return "<nil>"
    if isinstance(v, list):
        return "[" + " ".join(go_string(x) for x in v) + "]"
    if isinstance(v, Record):
        return "{" + " ".join(go_string(x) for x in v.values() if not callable(x)) + "}"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{go_string(v[k])}" for k in sorted(v)) + "]"
    return str(v)


def to_json(v: Any) -> str:
    """Docker's ``json`` function: compact, no HTML escaping, struct order kept."""
    return json.dumps(_plain(v), ensure_ascii=False, separators=(",", ":"))


def _plain(v: Any) -> Any:
    """A Record's data without its methods, as Go's encoder skips them."""
    if isinstance(v, Record) and v.json_tags:
        out = {}
        for k, x in v.items():
            name, _, omit = v.json_tags.get(k, k).partition(",")
            if not callable(x) and not (omit == "omitempty" and not x):
                out[name] = _plain(x)
        return out
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items() if not callable(x)}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


# ---------------------------------------------------------------- functions


def _truth(v: Any) -> bool:
    if isinstance(v, Record):
        return True
    return bool(v)


def _len(v: Any) -> int:
    if isinstance(v, str):
        return len(v.encode())
    if isinstance(v, list | dict):
        return len(v)
    raise TemplateError(f"len of type {go_type(v)}")


def _index(v: Any, *keys: Any) -> Any:
    for k in keys:
        if isinstance(v, list | str):
            if isinstance(k, bool) or not isinstance(k, int):
                raise TemplateError(f"cannot index slice/array with type {go_type(k)}")
            if not 0 <= k < len(v):
                raise TemplateError(f"index out of range: {k}")
            v = v[k] if isinstance(v, list) else v.encode()[k]
        elif isinstance(v, dict):
            if not isinstance(k, str):
                raise TemplateError(f"value has type {go_type(k)}; should be string")
            v = v.get(k)
        elif v is None:
            raise TemplateError("index of untyped nil")
        else:
            raise TemplateError(f"can't index item of type {go_type(v)}")
    return v


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if v is None:
        return "nil"
    return "other"


def _eq(a: Any, *others: Any) -> bool:
    if not others:
        raise TemplateError("missing argument for comparison")
    for b in others:
        ka, kb = _kind(a), _kind(b)
        if "other" in (ka, kb) and "nil" not in (ka, kb):
            raise TemplateError("invalid type for comparison")
        if ka != kb and "nil" not in (ka, kb):
            raise TemplateError("incompatible types for comparison")
        if a == b and ka == kb:
            return True
    return False


def _ne(a: Any, b: Any) -> bool:
    return not _eq(a, b)


def _lt(a: Any, b: Any) -> bool:
    ka, kb = _kind(a), _kind(b)
    if ka not in ("int", "float", "string") or kb not in ("int", "float", "string"):
        raise TemplateError("invalid type for comparison")
    if ka != kb:
        raise TemplateError("incompatible types for comparison")
    return bool(a < b)


def _le(a: Any, b: Any) -> bool:
    return _lt(a, b) or _eq(a, b)


def _gt(a: Any, b: Any) -> bool:
    return not _le(a, b)


def _ge(a: Any, b: Any) -> bool:
    return not _lt(a, b)


def _sprint(*args: Any) -> str:
    out = ""
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out += " "
        out += go_string(a)
    return out


def _sprintln(*args: Any) -> str:
    return " ".join(go_string(a) for a in args) + "\n"


_VERB = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d+|\*)?)?([a-zA-Z%])")


def _sprintf(fmt: str, *args: Any) -> str:
    """Go's ``fmt.Sprintf`` for the verbs scripts use: v s q d x X o b c e f g t and %%."""
    out: list[str] = []
    pos, n = 0, 0
    for m in _VERB.finditer(fmt):
        out.append(fmt[pos : m.start()])
        pos = m.end()
        flags, width, prec, verb = m.group(1), m.group(2), m.group(3), m.group(4)
        if verb == "%":
            out.append("%")
            continue
        if n >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[n]
        n += 1
        out.append(_pad(_verb(verb, flags, prec, arg), flags, width))
    out.append(fmt[pos:])
    if n < len(args):
        extra = ", ".join(f"{go_type(a)}={go_string(a)}" for a in args[n:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _verb(verb: str, flags: str, prec: str | None, arg: Any) -> str:
    number = isinstance(arg, int | float) and not isinstance(arg, bool)
    if verb == "v":
        return to_json(arg) if "#" in flags and isinstance(arg, str) else go_string(arg)
    if verb == "s" and isinstance(arg, str | list | dict):
        text = go_string(arg)
        return text[: int(prec)] if prec is not None else text
    if verb == "q" and isinstance(arg, str):
        return json.dumps(arg, ensure_ascii=False)
    if verb == "t" and isinstance(arg, bool):
        return go_string(arg)
    if verb in "dxXobc" and isinstance(arg, int) and not isinstance(arg, bool):
        spec = {"d": "d", "x": "x", "X": "X", "o": "o", "b": "b"}.get(verb)
        sign = "+" if "+" in flags and arg >= 0 else ""
        return chr(arg) if spec is None else sign + format(arg, spec)
    if verb in "xX" and isinstance(arg, str):
        text = arg.encode().hex()
        return text.upper() if verb == "X" else text
    if verb in "efgEG" and number:
        p = 6 if prec is None else int(prec)
        if verb in "gG" and prec is None:
            return go_float(float(arg))
        return format(float(arg), f"{'+' if '+' in flags else ''}.{p}{verb}")
    return f"%!{verb}({go_type(arg)}={go_string(arg)})"


def _pad(text: str, flags: str, width: str | None) -> str:
    if not width or width == "*":
        return text
    w = int(width)
    if "-" in flags:
        return text.ljust(w)
    if "0" in flags and text[:1].isdigit():
        return text.rjust(w, "0")
    return text.rjust(w)


def _title(s: str) -> str:
    out, prev_letter = [], False
    for ch in s:
        out.append(ch.upper() if not prev_letter else ch)
        prev_letter = ch.isalnum() or ch in "_'"
    return "".join(out)


def _join(items: Any, sep: str) -> str:
    if not isinstance(items, list):
        raise TemplateError(f"wrong type for value; expected []string; got {go_type(items)}")
    return sep.join(go_string(x) for x in items)


def _split(s: str, sep: str) -> list[str]:
    if sep == "":
        return list(s)
    return s.split(sep)


def _pad_space(s: str, prefix: int, suffix: int) -> str:
    return (" " * prefix + s + " " * suffix) if s else s


def _truncate(s: str, n: int) -> str:
    return s[:n]


def _not(v: Any) -> bool:
    return not _truth(v)


FUNCS: dict[str, Callable[..., Any]] = {
    "len": _len,
    "index": _index,
    "not": _not,
    "eq": _eq,
    "ne": _ne,
    "lt": _lt,
    "le": _le,
    "gt": _gt,
    "ge": _ge,
    "print": _sprint,
    "printf": _sprintf,
    "println": _sprintln,
    "json": to_json,
    "split": _split,
    "join": _join,
    "title": _title,
    "lower": str.lower,
    "upper": str.upper,
    "pad": _pad_space,
    "truncate": _truncate,
}

# the arity Go checks before calling (None: variadic with that many required)
_ARITY: dict[str, tuple[int, bool]] = {
    "len": (1, False),
    "index": (1, True),
    "not": (1, False),
    "eq": (1, True),
    "ne": (2, False),
    "lt": (2, False),
    "le": (2, False),
    "gt": (2, False),
    "ge": (2, False),
    "print": (0, True),
    "printf": (1, True),
    "println": (0, True),
    "json": (1, False),
    "split": (2, False),
    "join": (2, False),
    "title": (1, False),
    "lower": (1, False),
    "upper": (1, False),
    "pad": (3, False),
    "truncate": (2, False),
    "and": (1, True),
    "or": (1, True),
}

# docker's header pass: string functions give back the header they are handed
HEADER_FUNCS: dict[str, Callable[..., Any]] = {
    **FUNCS,
    **{
        name: (lambda v, *_: v)
        for name in ("json", "title", "lower", "upper", "split", "join", "pad", "truncate")
    },
}


# ---------------------------------------------------------------- execution


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Exec:
    def __init__(self, tmpl: Template, funcs: dict[str, Callable[..., Any]], missing_error: bool) -> None:
        self.tmpl = tmpl
        self.funcs = funcs
        self.missing_error = missing_error
        self.vars: list[tuple[str, Any]] = []
        self.out: list[str] = []

    def fail(self, node: _Node, message: str) -> TemplateError:
        src = self.tmpl.source[: node.pos]
        nl = src.rfind("\n")
        col = node.pos if nl < 0 else node.pos - nl - 1
        line = 1 + src.count("\n")
        return TemplateError(f'template: :{line}:{col}: executing "" at <{node.text}>: {message}')

    def walk(self, dot: Any, nodes: list[Any]) -> None:
        for n in nodes:
            if isinstance(n, _Text):
                self.out.append(n.text)
            elif isinstance(n, _Action):
                value = self.pipe(dot, n.pipe)
                if not n.pipe.decl:
                    self.out.append("<no value>" if value is None else go_string(value))
            elif isinstance(n, _Branch):
                self.branch(dot, n)
            else:
                raise _Break() if n.kind == "break" else _Continue()

    def branch(self, dot: Any, n: _Branch) -> None:
        mark = len(self.vars)
        value = self.pipe(dot, n.pipe, declare=n.kind != "range")
        if n.kind == "range":
            self.range(dot, n, value)
        elif _truth(value):
            self.walk(value if n.kind == "with" else dot, n.body)
        else:
            self.walk(dot, n.orelse)
        del self.vars[mark:]

    def range(self, dot: Any, n: _Branch, value: Any) -> None:
        if isinstance(value, dict):
            items: list[tuple[Any, Any]] = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, list):
            items = list(enumerate(value))
        elif value is None:
            items = []
        else:
            raise self.fail(n.pipe, f"range can't iterate over {go_string(value)}")
        if not items:
            self.walk(dot, n.orelse)
            return
        mark = len(self.vars)
        for key, elem in items:
            if len(n.pipe.decl) == 1:
                self.vars.append((n.pipe.decl[0], elem))
            elif len(n.pipe.decl) == 2:
                self.vars += [(n.pipe.decl[0], key), (n.pipe.decl[1], elem)]
            try:
                self.walk(elem, n.body)
            except _Continue:
                pass
            except _Break:
                break
            finally:
                del self.vars[mark:]

    def pipe(self, dot: Any, p: _Pipe, declare: bool = True) -> Any:
        value: Any = None
        have = False
        for cmd in p.cmds:
            value = self.command(dot, cmd, value, have)
            have = True
        if declare and p.decl:
            if p.assign:
                self.set_var(p.decl[0], value)
            else:
                self.vars.append((p.decl[0], value))
        return value

    def set_var(self, name: str, value: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return

    def var(self, name: str) -> Any:
        for n, v in reversed(self.vars):
            if n == name:
                return v
        return None

    def command(self, dot: Any, cmd: _Command, final: Any, have_final: bool) -> Any:
        first, rest = cmd.args[0], cmd.args[1:]
        if isinstance(first, _Ident):
            return self.call(dot, first, rest, final, have_final)
        if rest or have_final:
            if isinstance(first, _Field | _Chain | _Variable) and (isinstance(first, _Field) or first.names):
                return self.method(dot, first, rest, final, have_final)
            raise self.fail(first, f"can't give argument to non-function {first.text}")
        return self.arg(dot, first)

    def method(self, dot: Any, node: _Node, rest: list[_Node], final: Any, have_final: bool) -> Any:
        names = node.names if isinstance(node, _Field | _Chain | _Variable) else []
        receiver = self.walk_fields(dot, node, self.base(dot, node), names[:-1])
        args = [self.arg(dot, a) for a in rest] + ([final] if have_final else [])
        return self.field(node, receiver, names[-1], args)

    def base(self, dot: Any, node: _Node) -> Any:
        if isinstance(node, _Variable):
            return self.var(node.name) if node.name != "$" else self.vars[0][1]
        if isinstance(node, _Chain):
            return self.arg(dot, node.base)
        return dot

    def arg(self, dot: Any, node: _Node) -> Any:
        if isinstance(node, _Literal):
            return node.value
        if isinstance(node, _Dot):
            return dot
        if isinstance(node, _Pipe):
            return self.pipe(dot, node)
        if isinstance(node, _Ident):
            return self.call(dot, node, [], None, False)
        names = node.names if isinstance(node, _Field | _Chain | _Variable) else []
        return self.walk_fields(dot, node, self.base(dot, node), names)

    def walk_fields(self, dot: Any, node: _Node, value: Any, names: list[str]) -> Any:
        for name in names:
            value = self.field(node, value, name, [])
        return value

    def field(self, node: _Node, receiver: Any, name: str, args: list[Any]) -> Any:
        if isinstance(receiver, Record):
            if name not in receiver:
                raise self.fail(node, f"can't evaluate field {name} in type {receiver.type_name}")
            value = receiver[name]
            if callable(value):
                try:
                    return value(*args)
                except TypeError:
                    raise self.fail(node, f"wrong number of args for {name}: got {len(args)}") from None
        elif isinstance(receiver, dict):
            if name not in receiver:
                if self.missing_error:
                    raise self.fail(node, f'map has no entry for key "{name}"')
                return None
            value = receiver[name]
        elif receiver is None:
            raise self.fail(node, f"nil pointer evaluating interface {{}}.{name}")
        else:
            raise self.fail(node, f"can't evaluate field {name} in type {go_type(receiver)}")
        if args:
            raise self.fail(node, f"{name} is not a method but has arguments")
        return value

    def call(self, dot: Any, ident: _Ident, rest: list[_Node], final: Any, have_final: bool) -> Any:
        name = ident.name
        n_args = len(rest) + (1 if have_final else 0)
        need, variadic = _ARITY.get(name, (0, True))
        if n_args < need or (not variadic and n_args != need):
            raise self.fail(ident, f"wrong number of args for {name}: want {need} got {n_args}")
        if name in ("and", "or"):
            return self.logic(dot, name, rest, final, have_final)
        fn = self.funcs[name]
        args = [self.arg(dot, a) for a in rest] + ([final] if have_final else [])
        try:
            return fn(*args)
        except TemplateError as exc:
            raise self.fail(
                _Node(ident.pos, self.cmd_text(ident, rest)), f"error calling {name}: {exc}"
            ) from None
        except (TypeError, AttributeError):
            got = ", ".join(go_type(a) for a in args)
            raise self.fail(ident, f"wrong type for value; expected string; got {got}") from None

    def cmd_text(self, ident: _Ident, rest: list[_Node]) -> str:
        return " ".join([ident.text] + [a.text for a in rest])

    def logic(self, dot: Any, name: str, rest: list[_Node], final: Any, have_final: bool) -> Any:
        value: Any = None
        for a in rest:
            value = self.arg(dot, a)
            if _truth(value) == (name == "or"):
                return value
        return final if have_final else value


class Template:
    """A parsed template; ``execute`` may run many times (one per ``ps`` row)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.tree = _Parser(source).parse()

    def execute(self, data: Any, missing_key_error: bool = True) -> str:
        """Render over ``data``; a missing map key fails (docker runs inspect templates
        with ``missingkey=error``) unless told to print ``<no value>``."""
        run = _Exec(self, FUNCS, missing_key_error)
        run.vars.append(("$", data))
        run.walk(data, self.tree)
        return "".join(run.out)

    def header(self, names: dict[str, str]) -> str:
        """Docker's header line: the template over the column names with the string
        functions handing back their argument; what was written before an error stands."""
        run = _Exec(self, HEADER_FUNCS, missing_error=False)
        run.vars.append(("$", names))
        try:
            run.walk(names, self.tree)
        except TemplateError:
            pass
        return "".join(run.out)


def parse(source: str) -> Template:
    return Template(source)


# ---------------------------------------------------------------- tables


def tabulate(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Go's ``text/tabwriter`` with docker's settings (min width 10, padding 3, spaces):
    tab-terminated cells align in column blocks of consecutive lines that have them."""
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    _format_block(lines, 0, len(lines), [], minwidth, padding, out)
    return "\n".join(out)


def _format_block(
    lines: list[list[str]],
    line0: int,
    line1: int,
    widths: list[int],
    minwidth: int,
    padding: int,
    out: list[str],
) -> None:
    column = len(widths)
    this = line0
    while this < line1:
        if column >= len(lines[this]) - 1:
            this += 1
            continue
        _write_lines(lines, line0, this, widths, out)
        line0 = this
        width = minwidth
        while this < line1 and column < len(lines[this]) - 1:
            width = max(width, len(lines[this][column]) + padding)
            this += 1
        _format_block(lines, line0, this, [*widths, width], minwidth, padding, out)
        line0 = this
    _write_lines(lines, line0, line1, widths, out)


def _write_lines(lines: list[list[str]], line0: int, line1: int, widths: list[int], out: list[str]) -> None:
    for cells in lines[line0:line1]:
        out.append("".join(c.ljust(widths[j]) if j < len(widths) else c for j, c in enumerate(cells)))

"""``--format`` of every list and inspect command, read as the docker CLI reads it.

A list format is ``table`` (the command's own table), ``json`` (the command's JSON), ``table
TEMPLATE`` (a header row from docker's column names, then the rows, aligned by Go's
tabwriter) or a Go template run once per row; ``\\t`` and ``\\n`` typed literally mean tab
and newline there, as in docker. An inspect format is a template run once per document
with missing keys an error. A template error is one line and exit status 1, as docker's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ocirt.manager import gotemplate
from ocirt.manager.errors import ManagerError

TEMPLATE_FAILED = 1  # docker's exit status for a template that does not parse or run
INSPECT_PARSE_FAILED = 64  # docker inspect's for a template that does not parse (EX_USAGE)


def is_template(fmt: str | None) -> bool:
    """Whether ``fmt`` is a user's template rather than the command's table or JSON."""
    return fmt not in (None, "", "table", "json")


def render_list(fmt: str, rows: Sequence[Any], headers: dict[str, str]) -> str:
    """Rows through a template, with docker's header line and columns for ``table ...``."""
    table = fmt.startswith("table")
    body = fmt[len("table") :] if table else fmt
    body = body.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    tmpl = _parse(body, "template parsing error")
    try:
        lines = [tmpl.execute(row) + "\n" for row in rows]
    except gotemplate.TemplateError as exc:
        raise ManagerError(f"template parsing error: {exc}", TEMPLATE_FAILED) from None
    if not table:
        return "".join(lines)
    return gotemplate.tabulate(tmpl.header(headers) + "\n" + "".join(lines))


def print_list(fmt: str | None, rows: Sequence[Any], headers: dict[str, str], default: str) -> None:
    """``default`` is the command's own table (docker's), for no format or ``table``."""
    print(render_list(default if fmt in (None, "", "table") else fmt, rows, headers), end="")


def print_inspect(fmt: str, docs: Sequence[Any]) -> None:
    """``inspect -f``: the template over each document, each followed by a newline; on a
    failure what was rendered is printed first; a lone newline if nothing was, as docker's."""
    tmpl = _parse(fmt, "template parsing error", exit_code=INSPECT_PARSE_FAILED)
    out = []
    for doc in docs:
        try:
            out.append(tmpl.execute(doc) + "\n")
        except gotemplate.TemplateError as exc:
            print("".join(out) or "\n", end="")
            raise ManagerError(f"Template parsing error: {exc}", TEMPLATE_FAILED) from None
    print("".join(out) or "\n", end="")


def _parse(text: str, prefix: str, exit_code: int = TEMPLATE_FAILED) -> gotemplate.Template:
    try:
        return gotemplate.parse(text)
    except gotemplate.TemplateError as exc:
        raise ManagerError(f"{prefix}: {exc}", exit_code) from None


def row_renderer(fmt: str) -> Callable[[Any], str]:
    """A template parsed once for a command that prints rows as they come (``events``),
    so a bad one fails before the first row; no ``table`` and no ``\\t`` rewriting there, as
    in the docker CLI's ``events``."""
    tmpl = _parse(fmt, "template parsing error")

    def render(row: Any) -> str:
        try:
            return tmpl.execute(row)
        except gotemplate.TemplateError as exc:
            raise ManagerError(f"template parsing error: {exc}", TEMPLATE_FAILED) from None

    return render

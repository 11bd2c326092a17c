"""What a conformance case is and what it found: the suite's vocabulary, free of any runtime.

A case is a function of a ``Context`` registered with the spec section it checks (a file and
a heading of runtime-spec 1.3) and the requirement level of the sentence it checks. It passes
by returning, fails by raising ``Fail`` with what it observed and what the spec expects, and
is not applicable when the host lacks what the case needs (``NotApplicable`` with the reason).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ocirt.conformance.harness import Context

MUST, SHOULD = "MUST", "SHOULD"
PASS, FAIL, NA = "pass", "fail", "n/a"
SPEC_FILES = (
    "config.md",
    "config-linux.md",
    "runtime.md",
    "runtime-linux.md",
    "features.md",
    "features-linux.md",
)


class Fail(Exception):
    """The runtime did not do what the spec sentence asks."""

    def __init__(self, what: str, observed: Any, expected: Any) -> None:
        super().__init__(f"{what}: observed {observed!r}, expected {expected!r}")
        self.what, self.observed, self.expected = what, observed, expected


class NotApplicable(Exception):
    """The host lacks a kernel or system feature the case needs; the text says which."""


@dataclass(frozen=True)
class Case:
    id: str
    spec: str
    heading: str
    level: str
    func: Callable[[Context], None]

    @property
    def doc(self) -> str:
        return (self.func.__doc__ or "").strip()

    @property
    def section(self) -> str:
        return f"{self.spec} / {self.heading}"


@dataclass(frozen=True)
class Outcome:
    case: Case
    status: str
    detail: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.case.id,
            "section": self.case.section,
            "level": self.case.level,
            "status": self.status,
            "detail": self.detail,
            "seconds": round(self.seconds, 3),
        }


REGISTRY: list[Case] = []


def case(case_id: str, spec: str, heading: str, level: str = MUST) -> Callable[[Callable[..., None]], Any]:
    """Registers the decorated function as a case; ids are unique and spec files known."""

    def register(func: Callable[[Context], None]) -> Callable[[Context], None]:
        add(Case(case_id, spec, heading, level, func))
        return func

    return register


def add(new: Case) -> None:
    if new.spec not in SPEC_FILES:
        raise ValueError(f"{new.id}: unknown spec file {new.spec}")
    if new.level not in (MUST, SHOULD):
        raise ValueError(f"{new.id}: unknown level {new.level}")
    if any(c.id == new.id for c in REGISTRY):
        raise ValueError(f"duplicate case id {new.id}")
    REGISTRY.append(new)


def expect(what: str, observed: Any, expected: Any) -> None:
    if observed != expected:
        raise Fail(what, observed, expected)


def expect_true(what: str, ok: bool, observed: Any, expected: Any) -> None:
    if not ok:
        raise Fail(what, observed, expected)

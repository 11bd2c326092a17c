"""``linux.resources.devices``: the device cgroup rules, and how cgroup v1 is brought to them.

The rules follow runc. The list starts from "deny everything", the config's rules apply in
order, and runc's default rules are appended after them, so a container can always use
``/dev/null``, ``zero``, ``full``, ``random``, ``urandom``, ``tty``, ``ptmx``, its ptys
and mknod any node (``linux.devices`` entries get no rule of their own, as in runc). The
result is a ``State``: every device except some exceptions, or only some exceptions.

cgroup v1 is not reset and refilled on every call: ``devices.list`` gives the state in
force, and only the writes that lead from it to the wanted one are made, as runc's
emulator does. ``ocirt update`` re-applies the same rules to a running container, and a
reset would deny it ``/dev/null`` for a moment, or fail with EINVAL once the container has
made child cgroups. The kernel cannot punch a hole in a wildcard exception (denying
``c 4:1`` inside an allowed ``c 4:*`` is silently ignored), so such a rule is an error.

cgroup v2 controls devices with an eBPF program built from the same ``State`` (see ``bpf``),
so a config gets the same devices on either version, runc's default list included when it
gives no rules at all.
"""

from __future__ import annotations

import os

from ocirt.runtime.cgroups.base import read_file, write_file
from ocirt.runtime.errors import OcirtError, SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

F = "linux.resources.devices"
WILDCARD = -1
MAX_NUMBER = 0xFFFFFFFF  # the devices cgroup parses majors and minors as u32
ALL = "rwm"

Key = tuple[str, int, int]  # type, major, minor


class Rule:
    """One entry; ``index`` is its place in the config, None for runc's default rules."""

    __slots__ = ("access", "allow", "index", "key")

    def __init__(self, allow: bool, key: Key, access: str, index: int | None = None) -> None:
        self.allow = allow
        self.key = key
        self.access = access
        self.index = index

    def line(self) -> str:
        return line(self.key, self.access)


def _default(kind: str, major: int, minor: int, access: str = ALL) -> Rule:
    return Rule(True, (kind, major, minor), access)


# runc's specconv.AllowedDevices, in its order
DEFAULT_RULES = (
    _default("c", WILDCARD, WILDCARD, "m"),
    _default("b", WILDCARD, WILDCARD, "m"),
    _default("c", 1, 3),  # null
    _default("c", 1, 8),  # random
    _default("c", 1, 7),  # full
    _default("c", 5, 0),  # tty
    _default("c", 1, 5),  # zero
    _default("c", 1, 9),  # urandom
    _default("c", 136, WILDCARD),  # pts
    _default("c", 5, 2),  # ptmx
)


def parse(resources: dict[str, Any] | None) -> list[Rule]:
    """The config's own rules, checked."""
    raw = (resources or {}).get("devices")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise SpecError(F, "must be a list")
    return [_rule(entry, i) for i, entry in enumerate(raw)]


def _rule(entry: Any, i: int) -> Rule:
    where = f"{F}[{i}]"
    if not isinstance(entry, dict):
        raise SpecError(where, "must be an object")
    allow = entry.get("allow")
    if allow is None:
        raise SpecError(f"{where}.allow", "is required")
    if not isinstance(allow, bool):
        raise SpecError(f"{where}.allow", "must be true or false")
    kind = entry.get("type", "a")
    if kind not in ("a", "c", "b"):
        raise SpecError(f"{where}.type", f"must be a, c or b, got {kind!r}")
    major = _number(entry, "major", where)
    minor = _number(entry, "minor", where)
    access = _access(entry, where)
    if kind == "a":
        for key, value in (("major", major), ("minor", minor)):
            if value != WILDCARD:
                raise SpecError(f"{where}.{key}", "must be omitted or -1 with type a (every device)")
        if access != ALL:
            raise SpecError(
                f"{where}.access",
                "must be rwm with type a: the devices cgroup cannot single out an access mode "
                "for every device (use c and b rules)",
            )
    return Rule(allow, (kind, major, minor), access, i)


def _number(entry: dict[str, Any], key: str, where: str) -> int:
    value = entry.get(key)
    if value is None:
        return WILDCARD
    if not isinstance(value, int) or isinstance(value, bool):
        raise SpecError(f"{where}.{key}", "must be an integer")
    if value != WILDCARD and not 0 <= value <= MAX_NUMBER:
        raise SpecError(f"{where}.{key}", f"must be -1 (all) or between 0 and {MAX_NUMBER}")
    return value


def _access(entry: dict[str, Any], where: str) -> str:
    value = entry.get("access")
    if value is None:
        return ALL
    if not isinstance(value, str) or not value or value.strip(ALL):
        raise SpecError(f"{where}.access", f"must be a combination of r, w and m, got {value!r}")
    return _union(value, "")


def _union(a: str, b: str) -> str:
    """Access modes in the kernel's order, each once."""
    return "".join(c for c in ALL if c in a or c in b)


def _minus(a: str, b: str) -> str:
    return "".join(c for c in a if c not in b)


def _both(a: str, b: str) -> str:
    return "".join(c for c in a if c in b)


def line(key: Key, access: str) -> str:
    """The text the kernel takes and ``devices.list`` shows: ``c 1:3 rwm``, ``b 8:* r``, ``a``."""
    kind, major, minor = key
    if kind == "a":
        return "a"
    return f"{kind} {_star(major)}:{_star(minor)} {access}"


def _star(number: int) -> str:
    return "*" if number == WILDCARD else str(number)


class State:
    """Every device but ``exceptions`` (``allow_all``), or only ``exceptions``.

    ``exceptions`` maps (type, major, minor) to the access modes it grants or, with
    ``allow_all``, denies; it keeps the order in which rules created them.
    """

    __slots__ = ("allow_all", "exceptions")

    def __init__(self, allow_all: bool) -> None:
        self.allow_all = allow_all
        self.exceptions: dict[Key, str] = {}

    def apply(self, rule: Rule) -> None:
        """What the kernel does with the rule written to devices.allow or devices.deny."""
        if rule.key[0] == "a":
            self.allow_all = rule.allow
            self.exceptions = {}
        elif rule.allow != self.allow_all:
            self.exceptions[rule.key] = _union(self.exceptions.get(rule.key, ""), rule.access)
        else:
            self._remove(rule)

    def _remove(self, rule: Rule) -> None:
        kind, major, minor = rule.key
        for wider in ((kind, WILDCARD, minor), (kind, major, WILDCARD), (kind, WILDCARD, WILDCARD)):
            covered = self.exceptions.get(wider, "")
            if wider != rule.key and _both(rule.access, covered):
                raise _hole(rule, line(wider, covered))
        left = _minus(self.exceptions.get(rule.key, ""), rule.access)
        if left:
            self.exceptions[rule.key] = left
        else:
            self.exceptions.pop(rule.key, None)

    def allows_everything(self) -> bool:
        return self.allow_all and not self.exceptions


def _hole(rule: Rule, wider: str) -> SpecError:
    if rule.index is None:
        field, what = F, f"runc's default rule {rule.line()}"
    else:
        field, what = f"{F}[{rule.index}]", ("allowing " if rule.allow else "denying ") + rule.line()
    return SpecError(
        field, f"{what} would need a hole in the earlier rule {wider}, which the devices cgroup cannot make"
    )


def target(rules: list[Rule]) -> State:
    """The state a container gets: deny everything, the config's rules, runc's defaults."""
    state = State(False)
    for rule in (*rules, *DEFAULT_RULES):
        state.apply(rule)
    return state


def from_list(text: str) -> State:
    """The state of a v1 cgroup from its ``devices.list``.

    With everything allowed the file shows only ``a *:* rwm``, whatever exceptions deny:
    those cannot be known, which ``transition`` takes into account.
    """
    state = State(False)
    for entry in text.splitlines():
        kind, numbers, access = entry.split()
        if kind == "a":
            return State(True)
        major, minor = (WILDCARD if n == "*" else int(n) for n in numbers.split(":"))
        state.exceptions[(kind, major, minor)] = _union(access, "")
    return state


def transition(current: State, wanted: State) -> list[tuple[str, str]]:
    """(file, line) writes that take a v1 cgroup from ``current`` to ``wanted``.

    A reset (``a``) only when the default changes, or when the current state allows
    everything: its deny exceptions are not visible, so they cannot be compared.
    """
    writes = []
    old = current.exceptions
    if current.allow_all or wanted.allow_all != current.allow_all:
        writes.append(("devices.allow" if wanted.allow_all else "devices.deny", "a"))
        old = {}
    for key, access in old.items():
        dropped = _minus(access, wanted.exceptions.get(key, ""))
        if dropped:
            writes.append(("devices.deny", line(key, dropped)))
    grant = "devices.deny" if wanted.allow_all else "devices.allow"
    for key, access in wanted.exceptions.items():
        gained = _minus(access, old.get(key, ""))
        if gained:
            writes.append((grant, line(key, gained)))
    return writes


def set_v1(path: str, rules: list[Rule]) -> None:
    """Bring the v1 devices cgroup at ``path`` to the rules (see ``target``)."""
    wanted = target(rules)
    listing = os.path.join(path, "devices.list")
    try:
        current = from_list(read_file(listing))
    except OSError as exc:
        raise OcirtError(f"{F}: reading {listing}: {exc.strerror}") from None
    for name, text in transition(current, wanted):
        file = os.path.join(path, name)
        try:
            write_file(file, text)
        except OSError as exc:
            raise OcirtError(f"{F}: writing {text!r} to {file}: {exc.strerror}") from None


def require_open(rules: list[Rule], reason: str) -> None:
    """For a cgroup whose devices cannot be controlled: rules that restrict are refused."""
    if rules and not target(rules).allows_everything():
        raise OcirtError(f"{F}: {reason}")

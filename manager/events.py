"""Docker's events (Engine API v1.41 ``/events``), kept in the manager's database.

ocirtctl has no daemon to hold docker's in-memory ring of events, so every process that acts
on a container, image, network or volume appends a row, and ``ocirtctl events`` reads the
table and polls it to follow. Only the newest ``KEEP`` rows stay, so the table cannot grow
without bound (docker keeps 256 in memory).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ocirt.manager import db
from ocirt.manager.errors import ManagerError

if TYPE_CHECKING:
    from ocirt.manager.gotemplate import Record

KEEP = 10_000
TYPES = ("container", "image", "network", "volume", "daemon", "plugin", "service", "node", "secret", "config")
# the filters docker's daemon accepts (daemon/events/filter.go); a key outside them is refused
FILTERS = ("type", "event", "container", "image", "network", "volume", "label", "daemon", "plugin", "scope")
_FUZZY_ACTIONS = ("health_status", "exec_create", "exec_start")  # actions carrying ": detail"
_LEGACY = ("container", "image")  # types whose messages also carry status/id/from
_TAGS = {"Status": "status,omitempty", "ID": "id,omitempty", "From": "from,omitempty"}
_TAGS |= {"Scope": "scope", "Time": "time", "TimeNano": "timeNano"}


@dataclass(frozen=True)
class Event:
    seq: int
    type: str
    action: str
    actor_id: str
    attributes: dict[str, str]
    time_nano: int

    def message(self) -> Record:
        """docker's ``events.Message``: Go field names for templates, json tags for ``json``
        (the template engine is imported here: every container exit records an event)."""
        from ocirt.manager.gotemplate import Record

        legacy = self.type in _LEGACY
        fields = {
            "Status": self.action if legacy else "",
            "ID": self.actor_id if legacy else "",
            "From": self.attributes.get("image", "") if self.type == "container" else "",
            "Type": self.type,
            "Action": self.action,
            "Actor": Record("events.Actor", {"ID": self.actor_id, "Attributes": dict(self.attributes)}),
            "Scope": "local",
            "Time": self.time_nano // 1_000_000_000,
            "TimeNano": self.time_nano,
        }
        return Record("events.Message", fields, _TAGS)


def record(root: str, type_: str, action: str, actor_id: str, attributes: dict[str, str]) -> None:
    """Append one event (inside the caller's transaction, if any) and forget the oldest."""
    conn = db.connect(root)
    cur = conn.execute(
        "INSERT INTO events (time_nano, type, action, actor_id, attributes) VALUES (?, ?, ?, ?, ?)",
        (time.time_ns(), type_, action, actor_id, json.dumps(attributes, sort_keys=True)),
    )
    if cur.lastrowid is not None and cur.lastrowid % 100 == 0:
        conn.execute("DELETE FROM events WHERE seq <= ?", (cur.lastrowid - KEEP,))


def last_seq(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])


def after(conn: sqlite3.Connection, seq: int, since_ns: int = 0) -> list[Event]:
    """Events recorded after ``seq`` and stamped at or after ``since_ns``, in order."""
    rows = conn.execute(
        "SELECT * FROM events WHERE seq > ? AND time_nano >= ? ORDER BY seq", (seq, since_ns)
    ).fetchall()
    return [
        Event(r["seq"], r["type"], r["action"], r["actor_id"], json.loads(r["attributes"]), r["time_nano"])
        for r in rows
    ]


def parse_filters(texts: list[str]) -> dict[str, list[str]]:
    """``--filter key=value`` flags, values of one key OR-ed, keys AND-ed, as docker's."""
    out: dict[str, list[str]] = {}
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep:
            raise ManagerError(f"--filter {text!r}: bad format of filter (expected name=value)")
        key = key.strip().lower()
        if key not in FILTERS:
            raise ManagerError(f"--filter: invalid filter '{key}'")
        out.setdefault(key, []).append(value)
    return out


def _strip_tag(ref: str) -> str:
    head, sep, tail = ref.rpartition(":")
    return head if sep and "/" not in tail else ref


def _fuzzy(values: list[str] | None, *candidates: str) -> bool:
    return values is None or any(c and c.startswith(v) for v in values for c in candidates)


def matches(ev: Event, filters: dict[str, list[str]]) -> bool:
    """docker's ``events.Filter.Include``, key by key."""
    attrs = ev.attributes
    name = attrs.get("name", "")
    checks = [
        ("type", [ev.type]),
        ("scope", ["local"]),
        ("daemon", []),
        ("plugin", []),
    ]
    for key, allowed in checks:
        if key in filters and not set(filters[key]) & set(allowed):
            return False
    for kind in ("container", "network", "volume"):
        if kind in filters and not (ev.type == kind and _fuzzy(filters[kind], ev.actor_id, name)):
            return False
    if "image" in filters:
        image = name if ev.type == "image" else attrs.get("image", "")
        wanted = {ev.actor_id, image, _strip_tag(ev.actor_id), _strip_tag(image)}
        if not set(filters["image"]) & wanted:
            return False
    if "event" in filters and not _event_matches(filters["event"], ev.action):
        return False
    return all(_label(text, attrs) for text in filters.get("label", []))


def _event_matches(values: list[str], action: str) -> bool:
    if any(v in _FUZZY_ACTIONS for v in values):
        return any(action.startswith(v) for v in values)
    return action in values


def _label(text: str, attrs: dict[str, str]) -> bool:
    key, sep, value = text.partition("=")
    return key in attrs and (not sep or attrs[key] == value)


def stream(
    root: str,
    since_ns: int | None,
    until_ns: int | None,
    filters: dict[str, list[str]],
    poll: float = 0.1,
    wanted: Callable[[], bool] = lambda: True,
) -> Iterator[Event]:
    """The stored events from ``since_ns`` (none when neither bound is given), then new ones
    as they are recorded, until ``until_ns`` passes (forever without it) or ``wanted`` says
    the reader is gone (the API service's clients hang up between events)."""
    conn = db.connect(root)
    seq = last_seq(conn) if since_ns is None and until_ns is None else 0
    floor = since_ns or 0
    while True:
        done = until_ns is not None and time.time_ns() > until_ns
        for ev in after(conn, seq, floor):
            seq = ev.seq
            if (until_ns is None or ev.time_nano <= until_ns) and matches(ev, filters):
                yield ev
        if done or not wanted():
            return
        time.sleep(poll)


def text_line(ev: Event) -> str:
    """The docker CLI's line for an event without ``--format``: local time, nanoseconds."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(ev.time_nano // 1_000_000_000))
    zone = time.strftime("%z", time.localtime(ev.time_nano // 1_000_000_000))
    zone = "Z" if zone in ("+0000", "-0000") else f"{zone[:3]}:{zone[3:]}"
    line = f"{stamp}.{ev.time_nano % 1_000_000_000:09d}{zone} {ev.type} {ev.action} {ev.actor_id}"
    if ev.attributes:
        line += " (" + ", ".join(f"{k}={ev.attributes[k]}" for k in sorted(ev.attributes)) + ")"
    return line

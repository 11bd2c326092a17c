"""A container's state in the manager's record, and which moves between states are legal.

The values are Docker's state names, as ``docker inspect`` shows them in ``State.Status``;
as a ``StrEnum`` a state is also that string in JSON, templates and the database. Every
question a command asks of a state ("may it start?", "has it a process?") is answered here,
so adding a state (``restarting``, ``removing`` and ``dead`` are named for Docker's sake and
not produced yet) means changing this table and nothing scattered.
"""

from __future__ import annotations

import enum


class ContainerState(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    REMOVING = "removing"
    EXITED = "exited"
    DEAD = "dead"

    @property
    def live(self) -> bool:
        """An init process exists (Docker's ``State.Running`` is true while paused too)."""
        return self in (ContainerState.RUNNING, ContainerState.PAUSED)

    @property
    def can_start(self) -> bool:
        return self in (ContainerState.CREATED, ContainerState.EXITED)

    @property
    def can_stop(self) -> bool:
        return self.live

    @property
    def can_pause(self) -> bool:
        return self is ContainerState.RUNNING

    @property
    def can_unpause(self) -> bool:
        return self is ContainerState.PAUSED

    @property
    def can_exec(self) -> bool:
        """Exec and attach need a process that is not frozen."""
        return self is ContainerState.RUNNING

    @property
    def can_prune(self) -> bool:
        """What ``container prune`` removes: containers that never ran or are done."""
        return self in (ContainerState.CREATED, ContainerState.EXITED, ContainerState.DEAD)

    def can_remove(self, force: bool) -> bool:
        """A live container goes only by force (``rm -f`` stops it first)."""
        return force or not self.live

    def to(self, target: ContainerState) -> ContainerState:
        """``target``, if the record may move there from here (staying put is always legal);
        a refused move is a bug in the caller, so it is raised, never papered over."""
        if target is not self and target not in MOVES[self]:
            raise ValueError(f"container state cannot go from {self} to {target}")
        return target


MOVES: dict[ContainerState, frozenset[ContainerState]] = {
    ContainerState.CREATED: frozenset({ContainerState.RUNNING, ContainerState.REMOVING}),
    ContainerState.RUNNING: frozenset(
        {ContainerState.PAUSED, ContainerState.RESTARTING, ContainerState.EXITED, ContainerState.DEAD}
    ),
    ContainerState.PAUSED: frozenset({ContainerState.RUNNING, ContainerState.EXITED, ContainerState.DEAD}),
    ContainerState.RESTARTING: frozenset(
        {ContainerState.RUNNING, ContainerState.EXITED, ContainerState.DEAD}
    ),
    ContainerState.REMOVING: frozenset({ContainerState.DEAD}),
    ContainerState.EXITED: frozenset({ContainerState.RUNNING, ContainerState.REMOVING, ContainerState.DEAD}),
    ContainerState.DEAD: frozenset({ContainerState.REMOVING}),
}

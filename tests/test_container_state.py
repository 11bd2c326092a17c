"""The manager's container states are Docker's, and the moves between them are the ones
Docker allows (docker's container/state.go and the CLI reference): pause only what runs,
unpause only what is paused, start only what is not running, rm a live container only with
``-f``, prune what never ran or is done."""

from __future__ import annotations

import json

import pytest
from ocirt.manager.containers.state import ContainerState as S

# `docker ps --filter status=` lists exactly these (docker CLI reference, "status" filter)
DOCKER_STATES = {"created", "restarting", "running", "removing", "paused", "exited", "dead"}


def test_the_values_are_dockers_state_names_and_serialize_as_them() -> None:
    assert {s.value for s in S} == DOCKER_STATES
    assert json.dumps({"Status": S.PAUSED}) == '{"Status": "paused"}'
    assert f"{S.EXITED}" == "exited" and S("running") is S.RUNNING


@pytest.mark.parametrize("state", list(S))
def test_each_question_matches_docker(state: S) -> None:
    name = state.value
    assert state.live == (name in ("running", "paused"))
    assert state.can_start == (name in ("created", "exited"))
    assert state.can_stop == (name in ("running", "paused"))
    assert state.can_pause == (name == "running")
    assert state.can_unpause == (name == "paused")
    assert state.can_exec == (name == "running")
    assert state.can_prune == (name in ("created", "exited", "dead"))
    assert state.can_remove(force=True)
    assert state.can_remove(force=False) == (name not in ("running", "paused"))


@pytest.mark.parametrize(
    ("start", "end"),
    [("created", "running"), ("running", "paused"), ("paused", "running"), ("running", "exited"),
     ("paused", "exited"), ("exited", "running"), ("exited", "exited")],
)  # fmt: skip
def test_the_moves_the_manager_makes_are_legal(start: str, end: str) -> None:
    assert S(start).to(S(end)) is S(end)


@pytest.mark.parametrize(
    ("start", "end"),
    [("created", "paused"), ("exited", "paused"), ("created", "exited"), ("dead", "running"),
     ("removing", "running")],
)  # fmt: skip
def test_a_move_docker_never_makes_is_refused(start: str, end: str) -> None:
    with pytest.raises(ValueError, match=f"from {start} to {end}"):
        S(start).to(S(end))

"""The link's life cycle as a table (`link.TRANSITIONS`): its shape, and that the theory of operation draws it.

Every other test checks the moves a real link makes against the table (conftest's `_no_link_leaves_its_life_cycle`).
"""

from __future__ import annotations

import itertools
import re

from channels_rabbitmq_threaded._io import link
from channels_rabbitmq_threaded._io.link import TRANSITIONS, LinkState


def reachable_from(state: LinkState) -> set[LinkState]:
    seen, todo = set(), [state]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(TRANSITIONS[current])
    return seen


def test_every_state_has_a_row_and_is_reached_from_idle() -> None:
    assert set(TRANSITIONS) == set(LinkState)
    assert reachable_from(LinkState.IDLE) == set(LinkState)


def test_a_link_can_always_be_stopped_and_stopped_is_the_end() -> None:
    for state in LinkState:
        assert LinkState.STOPPED in reachable_from(state), state
    assert TRANSITIONS[LinkState.STOPPED] == frozenset()
    assert TRANSITIONS[LinkState.STOPPING] == {LinkState.STOPPED}  # closing never goes back to connecting


def test_the_theory_of_operation_draws_only_moves_of_the_table() -> None:
    assert link.__doc__ is not None
    drawn = set()
    for line in link.__doc__.splitlines():
        states = re.findall(r"\b(IDLE|CONNECTING|READY|WAITING|STOPPING|STOPPED)\b", line)
        drawn |= {(LinkState[a], LinkState[b]) for a, b in itertools.pairwise(states) if "->" in line}
    allowed = {(state, to) for state, targets in TRANSITIONS.items() for to in targets}
    assert drawn and drawn <= allowed, drawn - allowed

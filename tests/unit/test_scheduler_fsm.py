"""Every allowed and every forbidden transition of the task and peer state machines, and their side effects."""

from __future__ import annotations

import itertools

import pytest

from p2p.proto.values import HostInfo, HostType, TaskSpec
from p2p.scheduler.fsm import (
    PEER_TRANSITIONS,
    TASK_TRANSITIONS,
    InvalidTransitionError,
    PeerEvent,
    PeerState,
    StateMachine,
    TaskEvent,
    TaskState,
)
from p2p.scheduler.state import Resources
from p2p.types import HostID, PeerID, SourceStat, TaskID

T, P = TaskState, PeerState
TASK_ALLOWED = {
    (TaskEvent.DOWNLOAD, T.PENDING): T.RUNNING,
    (TaskEvent.DOWNLOAD, T.SUCCEEDED): T.RUNNING,
    (TaskEvent.DOWNLOAD, T.FAILED): T.RUNNING,
    (TaskEvent.DOWNLOAD, T.LEAVE): T.RUNNING,
    (TaskEvent.DOWNLOAD_SUCCEEDED, T.LEAVE): T.SUCCEEDED,
    (TaskEvent.DOWNLOAD_SUCCEEDED, T.RUNNING): T.SUCCEEDED,
    (TaskEvent.DOWNLOAD_SUCCEEDED, T.FAILED): T.SUCCEEDED,
    (TaskEvent.DOWNLOAD_FAILED, T.RUNNING): T.FAILED,
    (TaskEvent.LEAVE, T.PENDING): T.LEAVE,
    (TaskEvent.LEAVE, T.RUNNING): T.LEAVE,
    (TaskEvent.LEAVE, T.SUCCEEDED): T.LEAVE,
    (TaskEvent.LEAVE, T.FAILED): T.LEAVE,
}
RECEIVED = [P.RECEIVED_EMPTY, P.RECEIVED_TINY, P.RECEIVED_SMALL, P.RECEIVED_NORMAL]
PEER_ALLOWED = {
    (PeerEvent.REGISTER_EMPTY, P.PENDING): P.RECEIVED_EMPTY,
    (PeerEvent.REGISTER_TINY, P.PENDING): P.RECEIVED_TINY,
    (PeerEvent.REGISTER_SMALL, P.PENDING): P.RECEIVED_SMALL,
    (PeerEvent.REGISTER_NORMAL, P.PENDING): P.RECEIVED_NORMAL,
    **{(PeerEvent.DOWNLOAD, s): P.RUNNING for s in RECEIVED},
    **{(PeerEvent.DOWNLOAD_BACK_TO_SOURCE, s): P.BACK_TO_SOURCE for s in [*RECEIVED, P.RUNNING]},
    **{(PeerEvent.DOWNLOAD_SUCCEEDED, s): P.SUCCEEDED for s in [*RECEIVED, P.RUNNING, P.BACK_TO_SOURCE]},
    **{
        (PeerEvent.DOWNLOAD_FAILED, s): P.FAILED
        for s in [P.PENDING, *RECEIVED, P.RUNNING, P.BACK_TO_SOURCE, P.SUCCEEDED]
    },
    **{(PeerEvent.LEAVE, s): P.LEAVE for s in P if s is not P.LEAVE},
}


@pytest.mark.parametrize(("event", "state"), list(itertools.product(TaskEvent, TaskState)))
def test_task_transition(event: TaskEvent, state: TaskState) -> None:
    fsm: StateMachine[TaskState, TaskEvent] = StateMachine("t", state, TASK_TRANSITIONS)
    expected = TASK_ALLOWED.get((event, state))
    assert fsm.can(event) is (expected is not None)
    if expected is None:
        with pytest.raises(InvalidTransitionError):
            fsm.fire(event)
        assert fsm.current is state
    else:
        fsm.fire(event)
        assert fsm.current is expected


@pytest.mark.parametrize(("event", "state"), list(itertools.product(PeerEvent, PeerState)))
def test_peer_transition(event: PeerEvent, state: PeerState) -> None:
    fsm: StateMachine[PeerState, PeerEvent] = StateMachine("p", state, PEER_TRANSITIONS)
    expected = PEER_ALLOWED.get((event, state))
    assert fsm.can(event) is (expected is not None)
    if expected is None:
        with pytest.raises(InvalidTransitionError):
            fsm.fire(event)
        assert fsm.current is state
    else:
        fsm.fire(event)
        assert fsm.current is expected


SPEC = TaskSpec(url="dfs://b/k", stat=SourceStat(size=10 * 4, version="v"), piece_size=4)


def _world() -> tuple[Resources, list]:
    res = Resources(clock=lambda: 0.0)
    task = res.get_or_create_task(TaskID("t"), SPEC, back_to_source_limit=1)
    peers = []
    for i in range(3):
        info = HostInfo(id=HostID(f"h{i}"), ip="127.0.0.1", hostname=f"h{i}", download_port=1, type=HostType.NORMAL)
        host = res.upsert_host(info, upload_limit=4)
        peers.append(res.get_or_create_peer(PeerID(f"p{i}"), task, host))
    return res, peers


def test_back_to_source_side_effects() -> None:
    _, (a, b, _c) = _world()
    task = a.task
    a.fsm.fire(PeerEvent.REGISTER_NORMAL)
    b.fsm.fire(PeerEvent.REGISTER_NORMAL)
    task.add_edge(b, a)
    assert b.host.concurrent_upload_count == 1
    a.fsm.fire(PeerEvent.DOWNLOAD_BACK_TO_SOURCE)
    assert task.back_to_source_peers == {a.id}
    assert not a.parents and b.host.concurrent_upload_count == 0  # in-edges dropped, slot released
    assert not task.can_back_to_source()  # budget of 1 used (strict, unlike Dragonfly's <=)
    a.fsm.fire(PeerEvent.DOWNLOAD_FAILED)
    assert task.peer_failed_count == 1 and not task.back_to_source_peers


def test_succeeded_resets_failed_count_and_leave_drops_edges() -> None:
    _, (a, b, c) = _world()
    task = a.task
    for p in (a, b, c):
        p.fsm.fire(PeerEvent.REGISTER_NORMAL)
    task.peer_failed_count = 3
    a.fsm.fire(PeerEvent.DOWNLOAD_BACK_TO_SOURCE)
    a.fsm.fire(PeerEvent.DOWNLOAD_SUCCEEDED)
    assert task.peer_failed_count == 0 and not task.back_to_source_peers
    task.add_edge(a, c)
    c.fsm.fire(PeerEvent.LEAVE)
    assert not c.parents and a.host.concurrent_upload_count == 0


def test_dag_refuses_cycles_and_duplicates() -> None:
    _, (a, b, c) = _world()
    task = a.task
    task.add_edge(a, b)
    task.add_edge(b, c)
    assert not task.can_add_edge(c, a)  # a -> b -> c -> a
    assert not task.can_add_edge(a, b)  # already an edge
    assert not task.can_add_edge(a, a)
    assert task.can_add_edge(a, c)

"""Explicit state machines for tasks and peers (Dragonfly v2.1 scheduler/resource), as transition tables."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar


class TaskState(enum.StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    LEAVE = "Leave"


class TaskEvent(enum.StrEnum):
    DOWNLOAD = "Download"
    DOWNLOAD_SUCCEEDED = "DownloadSucceeded"
    DOWNLOAD_FAILED = "DownloadFailed"
    LEAVE = "Leave"


class PeerState(enum.StrEnum):
    PENDING = "Pending"
    RECEIVED_EMPTY = "ReceivedEmpty"
    RECEIVED_TINY = "ReceivedTiny"
    RECEIVED_SMALL = "ReceivedSmall"
    RECEIVED_NORMAL = "ReceivedNormal"
    RUNNING = "Running"
    BACK_TO_SOURCE = "BackToSource"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    LEAVE = "Leave"


class PeerEvent(enum.StrEnum):
    REGISTER_EMPTY = "RegisterEmpty"
    REGISTER_TINY = "RegisterTiny"
    REGISTER_SMALL = "RegisterSmall"
    REGISTER_NORMAL = "RegisterNormal"
    DOWNLOAD = "Download"
    DOWNLOAD_BACK_TO_SOURCE = "DownloadBackToSource"
    DOWNLOAD_SUCCEEDED = "DownloadSucceeded"
    DOWNLOAD_FAILED = "DownloadFailed"
    LEAVE = "Leave"


T = TaskState
TASK_TRANSITIONS: Mapping[TaskEvent, tuple[frozenset[TaskState], TaskState]] = {
    TaskEvent.DOWNLOAD: (frozenset({T.PENDING, T.SUCCEEDED, T.FAILED, T.LEAVE}), T.RUNNING),
    TaskEvent.DOWNLOAD_SUCCEEDED: (frozenset({T.LEAVE, T.RUNNING, T.FAILED}), T.SUCCEEDED),
    TaskEvent.DOWNLOAD_FAILED: (frozenset({T.RUNNING}), T.FAILED),
    TaskEvent.LEAVE: (frozenset({T.PENDING, T.RUNNING, T.SUCCEEDED, T.FAILED}), T.LEAVE),
}

P = PeerState
RECEIVED = frozenset({P.RECEIVED_EMPTY, P.RECEIVED_TINY, P.RECEIVED_SMALL, P.RECEIVED_NORMAL})
PEER_TRANSITIONS: Mapping[PeerEvent, tuple[frozenset[PeerState], PeerState]] = {
    PeerEvent.REGISTER_EMPTY: (frozenset({P.PENDING}), P.RECEIVED_EMPTY),
    PeerEvent.REGISTER_TINY: (frozenset({P.PENDING}), P.RECEIVED_TINY),
    PeerEvent.REGISTER_SMALL: (frozenset({P.PENDING}), P.RECEIVED_SMALL),
    PeerEvent.REGISTER_NORMAL: (frozenset({P.PENDING}), P.RECEIVED_NORMAL),
    PeerEvent.DOWNLOAD: (RECEIVED, P.RUNNING),
    PeerEvent.DOWNLOAD_BACK_TO_SOURCE: (RECEIVED | {P.RUNNING}, P.BACK_TO_SOURCE),
    PeerEvent.DOWNLOAD_SUCCEEDED: (RECEIVED | {P.RUNNING, P.BACK_TO_SOURCE}, P.SUCCEEDED),
    PeerEvent.DOWNLOAD_FAILED: (
        RECEIVED | {P.PENDING, P.RUNNING, P.BACK_TO_SOURCE, P.SUCCEEDED},
        P.FAILED,
    ),
    PeerEvent.LEAVE: (frozenset(P) - {P.LEAVE}, P.LEAVE),
}


class InvalidTransitionError(Exception):
    def __init__(self, what: str, event: str, state: str) -> None:
        super().__init__(f"{what}: event {event} is not allowed in state {state}")
        self.event = event
        self.state = state


S = TypeVar("S", bound=enum.StrEnum)
E = TypeVar("E", bound=enum.StrEnum)


class StateMachine(Generic[S, E]):
    """A current state plus a transition table; `on_enter` runs after each transition (src, dst)."""

    def __init__(
        self,
        what: str,
        initial: S,
        table: Mapping[E, tuple[frozenset[S], S]],
        on_enter: Callable[[S, S], None] | None = None,
    ) -> None:
        self.what = what
        self.current = initial
        self._table = table
        self._on_enter = on_enter

    def can(self, event: E) -> bool:
        return self.current in self._table[event][0]

    def is_(self, *states: S) -> bool:
        return self.current in states

    def fire(self, event: E) -> None:
        sources, target = self._table[event]
        if self.current not in sources:
            raise InvalidTransitionError(self.what, event, self.current)
        src, self.current = self.current, target
        if self._on_enter is not None:
            self._on_enter(src, target)

"""Parent selection: filter chain, scoring, bad-node detection, and the limit applied after scoring."""

from __future__ import annotations

import random

from p2p.proto.values import HostInfo, HostType, TaskSpec
from p2p.scheduler import evaluator
from p2p.scheduler.fsm import PeerEvent
from p2p.scheduler.state import Peer, Resources, Task
from p2p.types import HostID, PeerID, SourceStat, TaskID

SPEC = TaskSpec(url="dfs://b/k", stat=SourceStat(size=10 * 4, version="v"), piece_size=4)  # 10 pieces


class World:
    def __init__(self) -> None:
        self.res = Resources(clock=lambda: 0.0)
        self.task: Task = self.res.get_or_create_task(TaskID("t"), SPEC, back_to_source_limit=3)

    def peer(
        self,
        name: str,
        *,
        host: str | None = None,
        seed: bool = False,
        limit: int = 4,
        idc: str = "",
        loc: str = "",
    ) -> Peer:
        info = HostInfo(
            id=HostID(host or f"h-{name}"),
            ip="127.0.0.1",
            hostname=name,
            download_port=1,
            type=HostType.SUPER_SEED if seed else HostType.NORMAL,
            idc=idc,
            location=loc,
        )
        h = self.res.upsert_host(info, upload_limit=limit)
        p = self.res.get_or_create_peer(PeerID(name), self.task, h)
        p.fsm.fire(PeerEvent.REGISTER_NORMAL)
        return p


def running(p: Peer) -> Peer:
    p.fsm.fire(PeerEvent.DOWNLOAD)
    return p


def bts(p: Peer) -> Peer:
    p.fsm.fire(PeerEvent.DOWNLOAD_BACK_TO_SOURCE)
    return p


def find(child: Peer, blocklist: set[PeerID] | None = None, limit: int = 4, seed_children: int = 0) -> list[Peer]:
    return evaluator.find_candidate_parents(
        child, blocklist or set(), limit=limit, sample_size=40, rng=random.Random(1), seed_task_children=seed_children
    )


def test_filters() -> None:
    w = World()
    child = running(w.peer("child"))
    source = bts(w.peer("source"))
    blocked = bts(w.peer("blocked"))
    same_host = bts(w.peer("same", host="h-child"))
    idle = running(w.peer("idle"))  # normal, no parents, not at the origin: has nothing to give
    registered = w.peer("registered")  # still ReceivedNormal: a bad node
    full = bts(w.peer("full", limit=1))
    other = running(w.peer("other"))
    w.task.add_edge(source, other)
    w.task.add_edge(full, other)  # full's host has one slot, now taken
    seed = running(w.peer("seed", seed=True))  # seed hosts serve even without parents
    found = {p.id for p in find(child, {blocked.id})}
    assert full.id not in found
    assert found == {source.id, other.id, seed.id}
    assert same_host.id not in found and idle.id not in found and registered.id not in found


def test_cycle_filtered() -> None:
    w = World()
    a = bts(w.peer("a"))
    b = running(w.peer("b"))
    w.task.add_edge(a, b)
    assert [p.id for p in find(a)] == []  # b is a's child: b -> a would close a cycle


def test_limit_applies_after_scoring() -> None:
    w = World()
    child = running(w.peer("child"))
    parents = [bts(w.peer(f"p{i}")) for i in range(8)]
    for i, p in enumerate(parents):
        p.finished_pieces = set(range(i + 1))  # p7 has the most pieces
    got = find(child, limit=3)
    assert [p.id for p in got] == ["p7", "p6", "p5"]


def test_limit_applies_after_filtering() -> None:
    w = World()
    child = running(w.peer("child"))
    blocked = [bts(w.peer(f"b{i}")) for i in range(5)]
    for p in blocked:
        p.finished_pieces = set(range(10))
    good = bts(w.peer("good"))
    got = find(child, {p.id for p in blocked}, limit=2)
    assert [p.id for p in got] == [good.id]


def test_scores() -> None:
    w = World()
    child = running(w.peer("child", idc="x", loc="a|b|c|d|e"))
    p = bts(w.peer("p", idc="x", loc="a|b|z"))
    p.finished_pieces = {0, 1}
    assert evaluator.piece_score(p, child, 10) == 0.2
    assert evaluator.piece_score(p, child, 0) == 2.0
    assert evaluator.idc_score(p, child) == 1.0
    assert evaluator.location_score(p, child) == 2 / 5
    assert evaluator.upload_success_score(p) == 1.0
    p.host.upload_count, p.host.upload_failed_count = 4, 1
    assert evaluator.upload_success_score(p) == 0.75
    p.host.upload_failed_count = 5
    assert evaluator.upload_success_score(p) == 0.0
    assert evaluator.free_upload_score(p) == 1.0
    assert evaluator.host_type_score(p) == 0.5
    seed = running(w.peer("seed", seed=True))
    assert evaluator.host_type_score(seed) == 1.0
    seed.fsm.fire(PeerEvent.DOWNLOAD_SUCCEEDED)
    assert evaluator.host_type_score(seed) == 0.0


def test_bad_node() -> None:
    w = World()
    p = bts(w.peer("p"))
    assert not evaluator.is_bad_node(p)
    p.piece_costs_ms = [10, 10, 10, 199]
    assert not evaluator.is_bad_node(p)
    p.piece_costs_ms = [10, 10, 10, 201]
    assert evaluator.is_bad_node(p)
    p.piece_costs_ms = [10.0 + (i % 2) for i in range(40)] + [13.0]  # mean 10.5, stdev 0.5
    assert evaluator.is_bad_node(p)
    p.piece_costs_ms[-1] = 11.9
    assert not evaluator.is_bad_node(p)
    q = w.peer("q")  # ReceivedNormal
    assert evaluator.is_bad_node(q)


def test_peers_cut_off_from_any_source_cannot_serve() -> None:
    w = World()
    root = bts(w.peer("root"))
    a = running(w.peer("a"))
    b = running(w.peer("b"))
    w.task.add_edge(root, a)
    w.task.add_edge(a, b)
    child = running(w.peer("child"))
    assert {p.id for p in find(child)} == {root.id, a.id, b.id}
    root.fsm.fire(PeerEvent.DOWNLOAD_FAILED)  # the root is gone; a and b only have each other upstream
    w.task.add_edge(b, a)  # even a loop of running peers does not make data appear
    assert find(child) == []


def test_a_seed_at_the_origin_feeds_only_a_few_children_of_a_task() -> None:
    w = World()
    seed = bts(w.peer("seed", seed=True, limit=300))
    first, second = running(w.peer("first")), running(w.peer("second"))
    w.task.add_edge(seed, first)
    w.task.add_edge(seed, second)
    third = running(w.peer("third"))
    assert {p.id for p in find(third, seed_children=2)} == {first.id, second.id}  # they forward to it
    assert seed.id in {p.id for p in find(third, seed_children=3)}
    assert seed.id in {p.id for p in find(third, seed_children=0)}  # 0: only the host's upload limit
    seed.fsm.fire(PeerEvent.DOWNLOAD_SUCCEEDED)  # done: a finished parent like any other
    assert seed.id in {p.id for p in find(third, seed_children=2)}

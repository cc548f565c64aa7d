"""Consistent hashing of task ids over schedulers: stable, spread, and minimal movement."""

from __future__ import annotations

from collections import Counter

from p2p.clients.hashring import HashRing

KEYS = [f"task-{i}" for i in range(3000)]


def test_same_members_same_answer_in_any_order() -> None:
    a = HashRing(["s1:8002", "s2:8002", "s3:8002"])
    b = HashRing(["s3:8002", "s1:8002", "s2:8002"])
    assert [a.pick(k) for k in KEYS] == [b.pick(k) for k in KEYS]


def test_spread() -> None:
    ring = HashRing(["s1", "s2", "s3"])
    counts = Counter(ring.pick(k) for k in KEYS)
    assert set(counts) == {"s1", "s2", "s3"}
    assert min(counts.values()) > len(KEYS) / 3 * 0.6


def test_removing_a_member_moves_only_its_keys() -> None:
    before = HashRing(["s1", "s2", "s3"])
    after = HashRing(["s1", "s3"])
    for key in KEYS:
        old = before.pick(key)
        if old != "s2":
            assert after.pick(key) == old
        assert after.pick(key) == before.pick(key, exclude=["s2"])


def test_empty_and_all_excluded() -> None:
    assert HashRing([]).pick("t") is None
    assert HashRing(["s1"]).pick("t", exclude=["s1"]) is None

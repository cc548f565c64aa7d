"""Parent selection, pure: sample candidates -> filter -> score -> keep the best `limit`.

Weights and rules follow Dragonfly v2.1's base evaluator. With network topology on, the scheduler
passes an RTT lookup and the weights become Dragonfly's network-topology evaluator's (v2.1.31+), with
a probe term keyed by the two HOST ids (Dragonfly looked it up by peer ids and never found it).
The limit is applied after filtering and scoring, never to the sample (which would drop good
parents before they are looked at).
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable, Collection

from p2p.scheduler.fsm import PeerState
from p2p.scheduler.state import Peer
from p2p.types import HostID, PeerID

# (host a, host b) -> the average RTT between them in ns, None when never probed.
RTTLookup = Callable[[HostID, HostID], int | None]
PROBE_RTT_CEILING_NS = 1_000_000_000  # an RTT of 1 s or more scores 0

MAX_LOCATION_ELEMENTS = 5
BAD_NODE_MIN_SAMPLES = 30
BAD_NODE_RATIO = 20

UNSERVING = {
    PeerState.FAILED,
    PeerState.LEAVE,
    PeerState.PENDING,
    PeerState.RECEIVED_EMPTY,
    PeerState.RECEIVED_TINY,
    PeerState.RECEIVED_SMALL,
    PeerState.RECEIVED_NORMAL,
}


def is_bad_node(peer: Peer) -> bool:
    """A peer that cannot serve, or whose last piece took far longer than its usual pieces."""
    if peer.state in UNSERVING:
        return True
    costs = peer.piece_costs_ms
    if len(costs) < 2:
        return False
    last, history = costs[-1], costs[:-1]
    mean = statistics.fmean(history)
    if len(costs) < BAD_NODE_MIN_SAMPLES:
        return last > BAD_NODE_RATIO * mean
    return last > mean + 3 * statistics.pstdev(history)


def piece_score(parent: Peer, child: Peer, total_piece_count: int) -> float:
    if total_piece_count > 0:
        return len(parent.finished_pieces) / total_piece_count
    return float(len(parent.finished_pieces) - len(child.finished_pieces))


def upload_success_score(parent: Peer) -> float:
    host = parent.host
    if host.upload_count == 0 and host.upload_failed_count == 0:
        return 1.0
    if host.upload_count < host.upload_failed_count:
        return 0.0
    return (host.upload_count - host.upload_failed_count) / host.upload_count


def free_upload_score(parent: Peer) -> float:
    host = parent.host
    free = host.free_upload_count()
    if free > 0 and host.upload_limit > 0:
        return free / host.upload_limit
    return 0.0


def host_type_score(parent: Peer) -> float:
    # A seed still downloading is the best parent; once done, normal peers outrank it to spread load.
    if parent.host.is_seed:
        return 1.0 if parent.state in (PeerState.RECEIVED_NORMAL, PeerState.RUNNING) else 0.0
    return 0.5


def idc_score(parent: Peer, child: Peer) -> float:
    a, b = parent.host.info.idc, child.host.info.idc
    return 1.0 if a and b and a == b else 0.0


def location_score(parent: Peer, child: Peer) -> float:
    a, b = parent.host.info.location, child.host.info.location
    if not a or not b:
        return 0.0
    if a == b:
        return 1.0
    matched = 0
    for x, y in zip(a.split("|")[:MAX_LOCATION_ELEMENTS], b.split("|")[:MAX_LOCATION_ELEMENTS], strict=False):
        if x != y:
            break
        matched += 1
    return matched / MAX_LOCATION_ELEMENTS


def probe_score(parent: Peer, child: Peer, rtt: RTTLookup) -> float:
    """(1 s - average RTT) / 1 s between the two hosts; 0 without probes (and for 1 s or more)."""
    avg = rtt(child.host.id, parent.host.id)
    if avg is None:
        return 0.0
    return max(0.0, (PROBE_RTT_CEILING_NS - avg) / PROBE_RTT_CEILING_NS)


def evaluate(parent: Peer, child: Peer, total_piece_count: int, rtt: RTTLookup | None = None) -> float:
    if rtt is None:
        return (
            0.20 * piece_score(parent, child, total_piece_count)
            + 0.20 * upload_success_score(parent)
            + 0.15 * free_upload_score(parent)
            + 0.15 * host_type_score(parent)
            + 0.15 * idc_score(parent, child)
            + 0.15 * location_score(parent, child)
        )
    return (
        0.20 * piece_score(parent, child, total_piece_count)
        + 0.20 * upload_success_score(parent)
        + 0.15 * free_upload_score(parent)
        + 0.12 * probe_score(parent, child, rtt)
        + 0.11 * host_type_score(parent)
        + 0.11 * idc_score(parent, child)
        + 0.11 * location_score(parent, child)
    )


def can_serve(candidate: Peer, child: Peer, blocklist: Collection[PeerID], seed_task_children: int = 0) -> bool:
    """The filter chain, in Dragonfly's order, plus our per-task fan-out of a seed still at the origin."""
    task = child.task
    if candidate.id in blocklist:
        return False
    if not task.can_add_edge(candidate, child):
        return False
    if candidate.host is child.host:
        return False
    if is_bad_node(candidate):
        return False
    if candidate.id not in task.peers:
        return False
    if not candidate.host.is_seed and not has_source_path(candidate):
        return False
    if candidate.host.is_seed and seed_task_children and candidate.state is not PeerState.SUCCEEDED:
        # Every child pulling the newest pieces from the seed would make the seed's upload link carry
        # each piece many times; a few children fed at origin speed forward to the others instead.
        if len(candidate.children) >= seed_task_children:
            return False
    return candidate.host.free_upload_count() > 0


def has_source_path(peer: Peer) -> bool:
    """Whether data reaches `peer`: it (or an ancestor) is done, at the origin, or a running seed.

    Dragonfly only asks "has parents"; peers that lost their root would then feed each other pieces
    none of them has, and never go to the origin.
    """
    stack, seen = [peer], set()
    while stack:
        node = stack.pop()
        if node.state in (PeerState.BACK_TO_SOURCE, PeerState.SUCCEEDED):
            return True
        if node.host.is_seed and node.state is PeerState.RUNNING:
            return True
        if node in seen:
            continue
        seen.add(node)
        stack.extend(node.parents)
    return False


def find_candidate_parents(
    child: Peer,
    blocklist: Collection[PeerID],
    *,
    limit: int,
    sample_size: int,
    rng: random.Random,
    rtt: RTTLookup | None = None,
    seed_task_children: int = 0,
) -> list[Peer]:
    """Best-first parents for `child`, at most `limit`, chosen from a random sample of the task's peers."""
    others = [p for p in child.task.peers.values() if p is not child]
    sample = rng.sample(others, min(sample_size, len(others)))
    survivors = [p for p in sample if can_serve(p, child, blocklist, seed_task_children)]
    total = child.task.total_piece_count
    survivors.sort(key=lambda p: evaluate(p, child, total, rtt), reverse=True)
    return survivors[:limit]

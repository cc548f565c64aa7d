"""Clusters, scheduler clusters, seed-peer clusters, schedulers and seed peers.

Synchronous rules over the database (the REST layer calls them in a worker thread). They raise
only p2p.manager.errors; rows leave as plain dicts (schemas.render_*).
"""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from p2p.manager import schemas as s
from p2p.manager.db import Database
from p2p.manager.errors import Conflict, NotFound
from p2p.manager.models import Scheduler, SchedulerCluster, SeedPeer, SeedPeerCluster, utcnow

T = TypeVar("T")


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total: int


def paginate(session: Session, query: Select[Any], page: int, per_page: int) -> tuple[list[Any], int]:
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    rows = session.scalars(query.limit(per_page).offset((page - 1) * per_page)).all()
    return list(rows), total


def get_or_404(session: Session, model: type[T], ident: int, what: str) -> T:
    row = session.get(model, ident)
    if row is None:
        raise NotFound(f"{what} {ident} not found")
    return row


@dataclass
class Snapshot:
    tasks: list[dict[str, Any]]
    peers: list[dict[str, Any]]
    topology: list[dict[str, Any]] = field(default_factory=list)


class ClusterService:
    def __init__(self, db: Database, *, keepalive_timeout_s: float) -> None:
        self.db = db
        self.keepalive_timeout_s = keepalive_timeout_s
        # Latest task/peer snapshot each scheduler sent with its keepalive; console only, not persisted.
        self._snapshots: dict[int, Snapshot] = {}
        self._lock = threading.Lock()

    # --- clusters (one scheduler cluster + one seed-peer cluster) -----------------------------

    def _pair(self, session: Session, cluster_id: int) -> tuple[SchedulerCluster, SeedPeerCluster]:
        sc = get_or_404(session, SchedulerCluster, cluster_id, "cluster")
        spc = session.scalar(select(SeedPeerCluster).where(SeedPeerCluster.scheduler_cluster_id == sc.id))
        if spc is None:
            raise NotFound(f"cluster {cluster_id} not found (scheduler cluster has no seed-peer cluster)")
        return sc, spc

    def _counts(self, session: Session, sc: SchedulerCluster, spc: SeedPeerCluster) -> dict[str, int]:
        def count(q: Select[Any]) -> int:
            return session.scalar(select(func.count()).select_from(q.subquery())) or 0

        return {
            "scheduler_count": count(select(Scheduler.id).where(Scheduler.scheduler_cluster_id == sc.id)),
            "active_scheduler_count": count(
                select(Scheduler.id).where(Scheduler.scheduler_cluster_id == sc.id, Scheduler.state == "active")
            ),
            "seed_peer_count": count(select(SeedPeer.id).where(SeedPeer.seed_peer_cluster_id == spc.id)),
            "active_seed_peer_count": count(
                select(SeedPeer.id).where(SeedPeer.seed_peer_cluster_id == spc.id, SeedPeer.state == "active")
            ),
        }

    def create_cluster(self, body: s.ClusterCreate) -> dict[str, Any]:
        with self.db.tx() as session:
            if body.is_default:
                session.execute(update(SchedulerCluster).values(is_default=False))
            sc = SchedulerCluster(
                name=body.name, bio=body.bio, scopes=body.scopes.model_dump(), is_default=body.is_default,
                config=body.scheduler_cluster_config.model_dump(),
                client_config=body.peer_cluster_config.model_dump(),
            )
            session.add(sc)
            session.flush()
            spc = SeedPeerCluster(
                name=body.name, bio=body.bio, config=body.seed_peer_cluster_config.model_dump(),
                scheduler_cluster_id=sc.id,
            )
            session.add(spc)
            session.flush()
            return s.render_cluster(sc, spc, self._counts(session, sc, spc))

    def update_cluster(self, cluster_id: int, body: s.ClusterUpdate) -> dict[str, Any]:
        with self.db.tx() as session:
            sc, spc = self._pair(session, cluster_id)
            if body.name is not None:
                sc.name = spc.name = body.name
            if body.bio is not None:
                sc.bio = spc.bio = body.bio
            if body.scopes is not None:
                sc.scopes = body.scopes.model_dump()
            if body.scheduler_cluster_config is not None:
                sc.config = body.scheduler_cluster_config.model_dump()
            if body.peer_cluster_config is not None:
                sc.client_config = body.peer_cluster_config.model_dump()
            if body.seed_peer_cluster_config is not None:
                spc.config = body.seed_peer_cluster_config.model_dump()
            if body.is_default:
                session.execute(update(SchedulerCluster).where(SchedulerCluster.id != sc.id).values(is_default=False))
            if body.is_default is not None:
                sc.is_default = body.is_default
            session.flush()
            return s.render_cluster(sc, spc, self._counts(session, sc, spc))

    def delete_cluster(self, cluster_id: int) -> None:
        with self.db.tx() as session:
            sc, spc = self._pair(session, cluster_id)
            counts = self._counts(session, sc, spc)
            if counts["scheduler_count"] or counts["seed_peer_count"]:
                raise Conflict(
                    f"cluster {cluster_id} still has {counts['scheduler_count']} schedulers and "
                    f"{counts['seed_peer_count']} seed peers"
                )
            session.delete(spc)
            session.flush()
            session.delete(sc)
        with self._lock:
            self._snapshots.pop(cluster_id, None)

    def get_cluster(self, cluster_id: int) -> dict[str, Any]:
        with self.db.tx() as session:
            sc, spc = self._pair(session, cluster_id)
            return s.render_cluster(sc, spc, self._counts(session, sc, spc))

    def list_clusters(self, page: int, per_page: int, name: str = "") -> Page:
        with self.db.tx() as session:
            q = select(SchedulerCluster).join(
                SeedPeerCluster, SeedPeerCluster.scheduler_cluster_id == SchedulerCluster.id
            )
            if name:
                q = q.where(SchedulerCluster.name == name)
            rows, total = paginate(session, q.order_by(SchedulerCluster.id), page, per_page)
            items = []
            for sc in rows:
                sc, spc = self._pair(session, sc.id)
                items.append(s.render_cluster(sc, spc, self._counts(session, sc, spc)))
            return Page(items, total)

    # --- scheduler clusters and seed-peer clusters on their own --------------------------------

    def _seed_cluster_of(self, session: Session, sc_id: int) -> int | None:
        return session.scalar(select(SeedPeerCluster.id).where(SeedPeerCluster.scheduler_cluster_id == sc_id))

    def create_scheduler_cluster(self, body: s.SchedulerClusterCreate) -> dict[str, Any]:
        with self.db.tx() as session:
            row = SchedulerCluster(
                name=body.name, bio=body.bio, config=body.config.model_dump(),
                client_config=body.client_config.model_dump(), scopes=body.scopes.model_dump(),
                is_default=body.is_default,
            )
            session.add(row)
            session.flush()
            return s.render_scheduler_cluster(row, None)

    def update_scheduler_cluster(self, ident: int, body: s.SchedulerClusterUpdate) -> dict[str, Any]:
        with self.db.tx() as session:
            row = get_or_404(session, SchedulerCluster, ident, "scheduler cluster")
            for key, value in body.model_dump(exclude_none=True).items():
                setattr(row, key, value)
            session.flush()
            return s.render_scheduler_cluster(row, self._seed_cluster_of(session, row.id))

    def delete_scheduler_cluster(self, ident: int) -> None:
        with self.db.tx() as session:
            row = get_or_404(session, SchedulerCluster, ident, "scheduler cluster")
            if session.scalar(select(func.count(Scheduler.id)).where(Scheduler.scheduler_cluster_id == ident)):
                raise Conflict(f"scheduler cluster {ident} still has schedulers")
            if self._seed_cluster_of(session, ident) is not None:
                raise Conflict(f"scheduler cluster {ident} belongs to a cluster; delete the cluster")
            session.delete(row)

    def get_scheduler_cluster(self, ident: int) -> dict[str, Any]:
        with self.db.tx() as session:
            row = get_or_404(session, SchedulerCluster, ident, "scheduler cluster")
            return s.render_scheduler_cluster(row, self._seed_cluster_of(session, ident))

    def list_scheduler_clusters(self, page: int, per_page: int) -> Page:
        with self.db.tx() as session:
            rows, total = paginate(session, select(SchedulerCluster).order_by(SchedulerCluster.id), page, per_page)
            return Page([s.render_scheduler_cluster(r, self._seed_cluster_of(session, r.id)) for r in rows], total)

    def create_seed_peer_cluster(self, body: s.SeedPeerClusterCreate) -> dict[str, Any]:
        with self.db.tx() as session:
            row = SeedPeerCluster(name=body.name, bio=body.bio, config=body.config.model_dump())
            session.add(row)
            session.flush()
            return s.render_seed_peer_cluster(row)

    def update_seed_peer_cluster(self, ident: int, body: s.SeedPeerClusterUpdate) -> dict[str, Any]:
        with self.db.tx() as session:
            row = get_or_404(session, SeedPeerCluster, ident, "seed peer cluster")
            for key, value in body.model_dump(exclude_none=True).items():
                setattr(row, key, value)
            session.flush()
            return s.render_seed_peer_cluster(row)

    def delete_seed_peer_cluster(self, ident: int) -> None:
        with self.db.tx() as session:
            row = get_or_404(session, SeedPeerCluster, ident, "seed peer cluster")
            if session.scalar(select(func.count(SeedPeer.id)).where(SeedPeer.seed_peer_cluster_id == ident)):
                raise Conflict(f"seed peer cluster {ident} still has seed peers")
            if row.scheduler_cluster_id is not None:
                raise Conflict(f"seed peer cluster {ident} belongs to a cluster; delete the cluster")
            session.delete(row)

    def get_seed_peer_cluster(self, ident: int) -> dict[str, Any]:
        with self.db.tx() as session:
            return s.render_seed_peer_cluster(get_or_404(session, SeedPeerCluster, ident, "seed peer cluster"))

    def list_seed_peer_clusters(self, page: int, per_page: int) -> Page:
        with self.db.tx() as session:
            rows, total = paginate(session, select(SeedPeerCluster).order_by(SeedPeerCluster.id), page, per_page)
            return Page([s.render_seed_peer_cluster(r) for r in rows], total)

    # --- schedulers ---------------------------------------------------------------------------

    def create_scheduler(self, body: s.SchedulerCreate) -> dict[str, Any]:
        with self.db.tx() as session:
            get_or_404(session, SchedulerCluster, body.scheduler_cluster_id, "scheduler cluster")
            row = Scheduler(**body.model_dump(), state="inactive")
            row.features = sorted(set(body.features))
            session.add(row)
            session.flush()
            return s.render_scheduler(row)

    def update_scheduler(self, ident: int, body: s.SchedulerUpdate) -> dict[str, Any]:
        with self.db.tx() as session:
            row = get_or_404(session, Scheduler, ident, "scheduler")
            for key, value in body.model_dump(exclude_none=True).items():
                setattr(row, key, sorted(set(value)) if key == "features" else value)
            session.flush()
            return s.render_scheduler(row)

    def delete_scheduler(self, ident: int) -> None:
        with self.db.tx() as session:
            session.delete(get_or_404(session, Scheduler, ident, "scheduler"))
        with self._lock:
            self._snapshots.pop(ident, None)

    def get_scheduler(self, ident: int) -> dict[str, Any]:
        with self.db.tx() as session:
            return s.render_scheduler(get_or_404(session, Scheduler, ident, "scheduler"))

    def list_schedulers(self, page: int, per_page: int, filters: dict[str, Any]) -> Page:
        with self.db.tx() as session:
            q = select(Scheduler).order_by(Scheduler.id)
            for key in ("scheduler_cluster_id", "host_name", "ip", "state"):
                if filters.get(key) not in (None, ""):
                    q = q.where(getattr(Scheduler, key) == filters[key])
            rows, total = paginate(session, q, page, per_page)
            return Page([s.render_scheduler(r) for r in rows], total)

    def register_scheduler(self, body: s.SchedulerRegister) -> dict[str, Any]:
        """Upsert by uk_scheduler and mark active: what a scheduler calls at start."""
        with self.db.tx() as session:
            get_or_404(session, SchedulerCluster, body.scheduler_cluster_id, "scheduler cluster")
            row = session.scalar(
                select(Scheduler).where(
                    Scheduler.host_name == body.host_name, Scheduler.ip == body.ip,
                    Scheduler.scheduler_cluster_id == body.scheduler_cluster_id,
                )
            )
            if row is None:
                row = Scheduler(
                    host_name=body.host_name, ip=body.ip, scheduler_cluster_id=body.scheduler_cluster_id,
                    port=body.port, features=sorted(body.features if body.features is not None else s.FEATURES),
                )
                session.add(row)
            elif body.features is not None:
                row.features = sorted(set(body.features))
            row.port, row.idc, row.location = body.port, body.idc, body.location
            row.state, row.last_keepalive_at = "active", utcnow()
            session.flush()
            return s.render_scheduler(row)

    def keepalive_scheduler(self, ident: int, body: s.KeepAlive) -> dict[str, Any]:
        with self.db.tx() as session:
            row = get_or_404(session, Scheduler, ident, "scheduler")
            row.state, row.last_keepalive_at = "active", utcnow()
            session.flush()
            out = s.render_scheduler(row)
        if body.tasks is not None or body.peers is not None or body.topology is not None:
            snap = Snapshot(
                [t.model_dump() for t in body.tasks or []],
                [p.model_dump() for p in body.peers or []],
                [e.model_dump() for e in body.topology or []],
            )
            with self._lock:
                self._snapshots[ident] = snap
        return out

    # --- seed peers ---------------------------------------------------------------------------

    def create_seed_peer(self, body: s.SeedPeerCreate) -> dict[str, Any]:
        with self.db.tx() as session:
            get_or_404(session, SeedPeerCluster, body.seed_peer_cluster_id, "seed peer cluster")
            row = SeedPeer(**body.model_dump(), state="inactive")
            session.add(row)
            session.flush()
            return s.render_seed_peer(row)

    def update_seed_peer(self, ident: int, body: s.SeedPeerUpdate) -> dict[str, Any]:
        with self.db.tx() as session:
            row = get_or_404(session, SeedPeer, ident, "seed peer")
            for key, value in body.model_dump(exclude_none=True).items():
                setattr(row, key, value)
            session.flush()
            return s.render_seed_peer(row)

    def delete_seed_peer(self, ident: int) -> None:
        with self.db.tx() as session:
            session.delete(get_or_404(session, SeedPeer, ident, "seed peer"))

    def get_seed_peer(self, ident: int) -> dict[str, Any]:
        with self.db.tx() as session:
            return s.render_seed_peer(get_or_404(session, SeedPeer, ident, "seed peer"))

    def list_seed_peers(self, page: int, per_page: int, filters: dict[str, Any]) -> Page:
        with self.db.tx() as session:
            q = select(SeedPeer).order_by(SeedPeer.id)
            for key in ("seed_peer_cluster_id", "host_name", "ip", "state"):
                if filters.get(key) not in (None, ""):
                    q = q.where(getattr(SeedPeer, key) == filters[key])
            rows, total = paginate(session, q, page, per_page)
            return Page([s.render_seed_peer(r) for r in rows], total)

    def register_seed_peer(self, body: s.SeedPeerRegister) -> dict[str, Any]:
        with self.db.tx() as session:
            get_or_404(session, SeedPeerCluster, body.seed_peer_cluster_id, "seed peer cluster")
            row = session.scalar(
                select(SeedPeer).where(
                    SeedPeer.host_name == body.host_name, SeedPeer.ip == body.ip,
                    SeedPeer.seed_peer_cluster_id == body.seed_peer_cluster_id,
                )
            )
            if row is None:
                row = SeedPeer(host_name=body.host_name, ip=body.ip, seed_peer_cluster_id=body.seed_peer_cluster_id)
                session.add(row)
            for key in ("type", "idc", "location", "port", "download_port", "object_storage_port"):
                setattr(row, key, getattr(body, key))
            row.state, row.last_keepalive_at = "active", utcnow()
            session.flush()
            return s.render_seed_peer(row)

    def keepalive_seed_peer(self, ident: int) -> dict[str, Any]:
        with self.db.tx() as session:
            row = get_or_404(session, SeedPeer, ident, "seed peer")
            row.state, row.last_keepalive_at = "active", utcnow()
            session.flush()
            return s.render_seed_peer(row)

    def sweep_inactive(self) -> int:
        """Mark schedulers and seed peers without a recent keepalive inactive; return how many changed."""
        cutoff = utcnow() - timedelta(seconds=self.keepalive_timeout_s)
        changed = 0
        with self.db.tx() as session:
            for model in (Scheduler, SeedPeer):
                result = session.execute(
                    update(model)
                    .where(model.state == "active", model.last_keepalive_at < cutoff)
                    .values(state="inactive")
                )
                changed += result.rowcount  # type: ignore[attr-defined]
        return changed

    # --- what peers and the console read ------------------------------------------------------

    def discover_schedulers(self, ip: str = "", idc: str = "", location: str = "") -> list[dict[str, Any]]:
        """Schedulers a peer should use: active, with `schedule`, best-matching cluster first.

        Cluster score as Dragonfly's searcher: 0.40 CIDR + 0.35 IDC + 0.24 location prefix + 0.01 default.
        """
        with self.db.tx() as session:
            schedulers = session.scalars(
                select(Scheduler).where(Scheduler.state == "active").order_by(Scheduler.id)
            ).all()
            usable = [r for r in schedulers if "schedule" in (r.features or [])]
            cluster_ids = {r.scheduler_cluster_id for r in usable}
            clusters = {
                c.id: c for c in session.scalars(select(SchedulerCluster).where(SchedulerCluster.id.in_(cluster_ids)))
            }
            ranked = sorted(cluster_ids, key=lambda cid: (-_cluster_score(clusters[cid], ip, idc, location), cid))
            return [
                {**s.render_scheduler(r), "cluster_score": round(_cluster_score(clusters[cid], ip, idc, location), 4)}
                for cid in ranked
                for r in usable
                if r.scheduler_cluster_id == cid
            ]

    def cluster_snapshot(self, cluster_id: int) -> Snapshot:
        with self.db.tx() as session:
            get_or_404(session, SchedulerCluster, cluster_id, "cluster")
            ids = session.scalars(select(Scheduler.id).where(Scheduler.scheduler_cluster_id == cluster_id)).all()
        tasks: list[dict[str, Any]] = []
        peers: list[dict[str, Any]] = []
        topology: list[dict[str, Any]] = []
        with self._lock:
            for ident in ids:
                snap = self._snapshots.get(ident)
                if snap is not None:
                    tasks.extend({**t, "scheduler_id": ident} for t in snap.tasks)
                    peers.extend({**p, "scheduler_id": ident} for p in snap.peers)
                    topology.extend({**e, "scheduler_id": ident} for e in snap.topology)
        return Snapshot(tasks, peers, topology)


def _cluster_score(cluster: SchedulerCluster, ip: str, idc: str, location: str) -> float:
    scopes = cluster.scopes or {}
    score = 0.0
    if ip and _ip_in(ip, scopes.get("cidrs") or []):
        score += 0.40
    if idc and idc in [x for x in str(scopes.get("idc", "")).split("|") if x]:
        score += 0.35
    score += 0.24 * _location_prefix(location, str(scopes.get("location", "")))
    if cluster.is_default:
        score += 0.01
    return score


def _ip_in(ip: str, cidrs: list[str]) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
        return any(addr in ipaddress.ip_network(c, strict=False) for c in cidrs)
    except ValueError:
        return False


def _location_prefix(peer: str, scope: str, max_elements: int = 5) -> float:
    """Share of the leading '|'-separated elements the two locations have in common."""
    if not peer or not scope:
        return 0.0
    if peer == scope:
        return 1.0
    a, b = peer.split("|")[:max_elements], scope.split("|")[:max_elements]
    same = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        same += 1
    return same / max_elements


"""Preheat jobs: choose one scheduler per cluster, hand the run to it, collect its result.

Contract with schedulers (docs/manager.md): a scheduler's keepalive answer carries the runs
assigned to it (each is handed out once: PENDING -> RUNNING), and the scheduler reports
its result with the gRPC `ReportJobResult`. A run not finished within `job.timeout_s` fails.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from p2p.manager import schemas as s
from p2p.manager.db import Database
from p2p.manager.errors import Invalid, NotFound
from p2p.manager.models import Job, JobRun, Scheduler, SchedulerCluster, utcnow
from p2p.manager.service import Page, get_or_404, paginate

TERMINAL = ("SUCCESS", "FAILURE")


def _runs(session: Session, job_id: int) -> list[JobRun]:
    return list(session.scalars(select(JobRun).where(JobRun.job_id == job_id).order_by(JobRun.id)))


def _aggregate(runs: list[JobRun]) -> str:
    states = [r.state for r in runs]
    if states and all(st in TERMINAL for st in states):
        return "SUCCESS" if all(st == "SUCCESS" for st in states) else "FAILURE"
    if any(st != "PENDING" for st in states):
        return "RUNNING"
    return "PENDING"


class JobService:
    def __init__(self, db: Database, *, timeout_s: float) -> None:
        self.db = db
        self.timeout = timedelta(seconds=timeout_s)

    def create_job(self, body: s.JobCreate, user_id: int | None) -> dict[str, Any]:
        with self.db.tx() as session:
            if body.scheduler_cluster_ids:
                cluster_ids = list(dict.fromkeys(body.scheduler_cluster_ids))
                for cid in cluster_ids:
                    get_or_404(session, SchedulerCluster, cid, "scheduler cluster")
            else:
                cluster_ids = list(session.scalars(select(SchedulerCluster.id).order_by(SchedulerCluster.id)))
            chosen: list[tuple[int, int]] = []
            for cid in cluster_ids:
                # Dragonfly's rule: the first active scheduler of the cluster that has `preheat`.
                for sched in session.scalars(
                    select(Scheduler)
                    .where(Scheduler.scheduler_cluster_id == cid, Scheduler.state == "active")
                    .order_by(Scheduler.id)
                ):
                    if "preheat" in (sched.features or []):
                        chosen.append((cid, sched.id))
                        break
            if not chosen:
                raise Invalid("candidate schedulers not found: no active scheduler with the preheat feature")
            job = Job(type=body.type, bio=body.bio, state="PENDING", args=body.args.model_dump(), user_id=user_id)
            session.add(job)
            session.flush()
            runs = [JobRun(job_id=job.id, scheduler_cluster_id=cid, scheduler_id=sid) for cid, sid in chosen]
            session.add_all(runs)
            session.flush()
            return s.render_job(job, runs)

    def get_job(self, ident: int) -> dict[str, Any]:
        with self.db.tx() as session:
            job = get_or_404(session, Job, ident, "job")
            return s.render_job(job, _runs(session, ident))

    def list_jobs(self, page: int, per_page: int, filters: dict[str, Any]) -> Page:
        with self.db.tx() as session:
            q = select(Job).order_by(Job.id.desc())
            for key in ("type", "state", "user_id"):
                if filters.get(key) not in (None, ""):
                    q = q.where(getattr(Job, key) == filters[key])
            rows, total = paginate(session, q, page, per_page)
            return Page([s.render_job(j, _runs(session, j.id)) for j in rows], total)

    def update_job(self, ident: int, body: s.JobUpdate) -> dict[str, Any]:
        with self.db.tx() as session:
            job = get_or_404(session, Job, ident, "job")
            job.bio = body.bio
            session.flush()
            return s.render_job(job, _runs(session, ident))

    def delete_job(self, ident: int) -> None:
        with self.db.tx() as session:
            job = get_or_404(session, Job, ident, "job")
            for run in _runs(session, ident):
                session.delete(run)
            session.delete(job)

    def claim(self, scheduler_id: int) -> list[dict[str, Any]]:
        """Hand the scheduler its pending runs, once each (PENDING -> RUNNING)."""
        out: list[dict[str, Any]] = []
        with self.db.tx() as session:
            sched = get_or_404(session, Scheduler, scheduler_id, "scheduler")
            # Row locks (PostgreSQL/MySQL) so two overlapping keepalives cannot both take a run.
            runs = session.scalars(
                select(JobRun)
                .where(JobRun.scheduler_id == scheduler_id, JobRun.state == "PENDING")
                .with_for_update()
            ).all()
            for run in runs:
                job = session.get(Job, run.job_id)
                if job is None:
                    continue
                if "preheat" not in (sched.features or []):
                    run.state, run.message = "FAILURE", "scheduler has the preheat feature disabled"
                else:
                    run.state, run.started_at = "RUNNING", utcnow()
                    out.append({"id": job.id, "type": job.type, "args": job.args,
                                "scheduler_cluster_id": run.scheduler_cluster_id})
                session.flush()
                job.state = _aggregate(_runs(session, job.id))
        return out

    def report(self, ident: int, body: s.JobResult) -> dict[str, Any]:
        with self.db.tx() as session:
            job = get_or_404(session, Job, ident, "job")
            run = session.scalar(
                select(JobRun).where(JobRun.job_id == ident, JobRun.scheduler_id == body.scheduler_id)
            )
            if run is None:
                raise NotFound(f"job {ident} has no run for scheduler {body.scheduler_id}")
            if run.state not in TERMINAL:  # a late report after a timeout does not resurrect the run
                run.state, run.message = body.state, body.message
            session.flush()
            runs = _runs(session, ident)
            job.state = _aggregate(runs)
            session.flush()
            return s.render_job(job, runs)

    def sweep_timeouts(self) -> int:
        cutoff = utcnow() - self.timeout
        changed = 0
        with self.db.tx() as session:
            stale = session.scalars(
                select(JobRun).where(
                    or_(
                        (JobRun.state == "PENDING") & (JobRun.created_at < cutoff),
                        (JobRun.state == "RUNNING") & (JobRun.started_at < cutoff),
                    )
                )
            ).all()
            for run in stale:
                run.state, run.message = "FAILURE", "timed out"
                changed += 1
            session.flush()
            for job_id in {r.job_id for r in stale}:
                job = session.get(Job, job_id)
                if job is not None:
                    job.state = _aggregate(_runs(session, job_id))
        return changed

"""Every REST route of the manager, declared once. Handlers are thin: bind, call one service
method in a worker thread, render. Auth per route: none | session (any signed-in user) | root |
pat (Open API personal access token). Schedulers, seed peers and daemons do not use REST: they call
the gRPC component API (`rpc.py`), which calls the same service methods.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from p2p.manager import schemas as s
from p2p.manager.auth import AuthService
from p2p.manager.errors import Forbidden
from p2p.manager.jobs import JobService
from p2p.manager.service import ClusterService, Page
from p2p.manager.web import Auth, Call, Handler, Reply, Route, run

ID = r"{id:\d+}"


@dataclass(frozen=True)
class Services:
    clusters: ClusterService
    auth: AuthService
    jobs: JobService


def build_routes(svc: Services) -> list[Route]:
    c, a, j = svc.clusters, svc.auth, svc.jobs

    # --- users ----------------------------------------------------------------------------------
    async def signin(x: Call) -> Reply:
        return Reply(await run(a.sign_in, x.body))

    async def signout(x: Call) -> Reply:
        await run(a.sign_out, x.token)
        return Reply(status=204)

    async def me(x: Call) -> Reply:
        assert x.user is not None
        return Reply(await run(a.get_user, x.user.user_id))

    async def list_users(x: Call) -> Reply:
        return Reply(page=await run(a.list_users, x.page, x.per_page))

    async def create_user(x: Call) -> Reply:
        return Reply(await run(a.create_user, x.body), 201)

    async def get_user(x: Call) -> Reply:
        _self_or_root(x)
        return Reply(await run(a.get_user, x.id()))

    async def reset_password(x: Call) -> Reply:
        _self_or_root(x)
        await run(a.reset_password, x.id(), x.body)
        return Reply(status=204)

    # --- clusters -------------------------------------------------------------------------------
    async def create_cluster(x: Call) -> Reply:
        return Reply(await run(c.create_cluster, x.body), 201)

    async def update_cluster(x: Call) -> Reply:
        return Reply(await run(c.update_cluster, x.id(), x.body))

    async def delete_cluster(x: Call) -> Reply:
        await run(c.delete_cluster, x.id())
        return Reply(status=204)

    async def get_cluster(x: Call) -> Reply:
        return Reply(await run(c.get_cluster, x.id()))

    async def list_clusters(x: Call) -> Reply:
        return Reply(page=await run(c.list_clusters, x.page, x.per_page, x.query("name")))

    async def cluster_tasks(x: Call) -> Reply:
        snap = await run(c.cluster_snapshot, x.id())
        return Reply(page=_slice(snap.tasks, x))

    async def cluster_peers(x: Call) -> Reply:
        snap = await run(c.cluster_snapshot, x.id())
        return Reply(page=_slice(snap.peers, x))

    async def cluster_topology(x: Call) -> Reply:
        snap = await run(c.cluster_snapshot, x.id())
        return Reply(page=_slice(snap.topology, x))

    # --- scheduler clusters / seed-peer clusters ------------------------------------------------
    async def create_sc(x: Call) -> Reply:
        return Reply(await run(c.create_scheduler_cluster, x.body), 201)

    async def update_sc(x: Call) -> Reply:
        return Reply(await run(c.update_scheduler_cluster, x.id(), x.body))

    async def delete_sc(x: Call) -> Reply:
        await run(c.delete_scheduler_cluster, x.id())
        return Reply(status=204)

    async def get_sc(x: Call) -> Reply:
        return Reply(await run(c.get_scheduler_cluster, x.id()))

    async def list_sc(x: Call) -> Reply:
        return Reply(page=await run(c.list_scheduler_clusters, x.page, x.per_page))

    async def create_spc(x: Call) -> Reply:
        return Reply(await run(c.create_seed_peer_cluster, x.body), 201)

    async def update_spc(x: Call) -> Reply:
        return Reply(await run(c.update_seed_peer_cluster, x.id(), x.body))

    async def delete_spc(x: Call) -> Reply:
        await run(c.delete_seed_peer_cluster, x.id())
        return Reply(status=204)

    async def get_spc(x: Call) -> Reply:
        return Reply(await run(c.get_seed_peer_cluster, x.id()))

    async def list_spc(x: Call) -> Reply:
        return Reply(page=await run(c.list_seed_peer_clusters, x.page, x.per_page))

    # --- schedulers -----------------------------------------------------------------------------
    async def create_scheduler(x: Call) -> Reply:
        return Reply(await run(c.create_scheduler, x.body), 201)

    async def update_scheduler(x: Call) -> Reply:
        return Reply(await run(c.update_scheduler, x.id(), x.body))

    async def delete_scheduler(x: Call) -> Reply:
        await run(c.delete_scheduler, x.id())
        return Reply(status=204)

    async def get_scheduler(x: Call) -> Reply:
        return Reply(await run(c.get_scheduler, x.id()))

    async def list_schedulers(x: Call) -> Reply:
        filters = {"scheduler_cluster_id": x.query_int("scheduler_cluster_id"), "host_name": x.query("host_name"),
                   "ip": x.query("ip"), "state": x.query("state")}
        return Reply(page=await run(c.list_schedulers, x.page, x.per_page, filters))

    # --- seed peers -----------------------------------------------------------------------------
    async def create_seed_peer(x: Call) -> Reply:
        return Reply(await run(c.create_seed_peer, x.body), 201)

    async def update_seed_peer(x: Call) -> Reply:
        return Reply(await run(c.update_seed_peer, x.id(), x.body))

    async def delete_seed_peer(x: Call) -> Reply:
        await run(c.delete_seed_peer, x.id())
        return Reply(status=204)

    async def get_seed_peer(x: Call) -> Reply:
        return Reply(await run(c.get_seed_peer, x.id()))

    async def list_seed_peers(x: Call) -> Reply:
        filters = {"seed_peer_cluster_id": x.query_int("seed_peer_cluster_id"), "host_name": x.query("host_name"),
                   "ip": x.query("ip"), "state": x.query("state")}
        return Reply(page=await run(c.list_seed_peers, x.page, x.per_page, filters))

    # --- personal access tokens -----------------------------------------------------------------
    async def create_token(x: Call) -> Reply:
        assert x.user is not None
        return Reply(await run(a.create_token, x.body, x.user), 201)

    async def update_token(x: Call) -> Reply:
        await _own_token(x)
        return Reply(await run(a.update_token, x.id(), x.body))

    async def delete_token(x: Call) -> Reply:
        await _own_token(x)
        await run(a.delete_token, x.id())
        return Reply(status=204)

    async def get_token(x: Call) -> Reply:
        return Reply(await _own_token(x))

    async def list_tokens(x: Call) -> Reply:
        assert x.user is not None
        owner = None if x.user.role == "root" else x.user.user_id
        return Reply(page=await run(a.list_tokens, x.page, x.per_page, owner))

    async def _own_token(x: Call) -> dict[str, object]:
        assert x.user is not None
        token = await run(a.get_token, x.id())
        if x.user.role != "root" and token["user_id"] != x.user.user_id:
            raise Forbidden("not your token")
        return token

    # --- jobs -----------------------------------------------------------------------------------
    async def create_job(x: Call) -> Reply:
        return Reply(await run(j.create_job, x.body, x.user.user_id if x.user else None), 201)

    async def update_job(x: Call) -> Reply:
        return Reply(await run(j.update_job, x.id(), x.body))

    async def delete_job(x: Call) -> Reply:
        await run(j.delete_job, x.id())
        return Reply(status=204)

    async def get_job(x: Call) -> Reply:
        return Reply(await run(j.get_job, x.id()))

    async def list_jobs(x: Call) -> Reply:
        filters = {"type": x.query("type"), "state": x.query("state"), "user_id": x.query_int("user_id")}
        return Reply(page=await run(j.list_jobs, x.page, x.per_page, filters))

    def crud(
        prefix: str, tag: str, handlers: tuple[Handler, Handler, Handler, Handler, Handler],
        bodies: tuple[type[BaseModel], type[BaseModel]], *, read: Auth = "session", write: Auth = "root",
        query: tuple[str, ...] = (),
    ) -> list[Route]:
        create, update, delete, get, lst = handlers
        return [
            Route("POST", prefix, create, f"Create a {tag}", tag, write, bodies[0], status=201),
            Route("DELETE", f"{prefix}/{ID}", delete, f"Delete a {tag}", tag, write, status=204),
            Route("PATCH", f"{prefix}/{ID}", update, f"Update a {tag}", tag, write, bodies[1]),
            Route("GET", f"{prefix}/{ID}", get, f"Get a {tag}", tag, read),
            Route("GET", prefix, lst, f"List {tag}s", tag, read, paginated=True, query=query),
        ]

    cluster_h = (create_cluster, update_cluster, delete_cluster, get_cluster, list_clusters)
    job_h = (create_job, update_job, delete_job, get_job, list_jobs)
    api = "/api/v1"
    routes = [
        Route("POST", f"{api}/users/signin", signin, "Sign in; returns a session token", "user", "none", s.SignIn),
        Route("POST", f"{api}/users/signout", signout, "Sign out this session", "user", status=204),
        Route("GET", f"{api}/users/me", me, "The signed-in user", "user"),
        Route("GET", f"{api}/users", list_users, "List users", "user", "root", paginated=True),
        Route("POST", f"{api}/users", create_user, "Create a user", "user", "root", s.UserCreate, status=201),
        Route("GET", f"{api}/users/{ID}", get_user, "Get a user", "user"),
        Route("POST", f"{api}/users/{ID}/reset_password", reset_password, "Change a password", "user",
              body=s.ResetPassword, status=204),
        *crud(f"{api}/clusters", "cluster", cluster_h, (s.ClusterCreate, s.ClusterUpdate), query=("name",)),
        Route("GET", f"{api}/clusters/{ID}/tasks", cluster_tasks, "Tasks the cluster's schedulers reported",
              "cluster", paginated=True),
        Route("GET", f"{api}/clusters/{ID}/peers", cluster_peers, "Peers the cluster's schedulers reported",
              "cluster", paginated=True),
        Route("GET", f"{api}/clusters/{ID}/topology", cluster_topology,
              "Network topology edges (RTTs between hosts) the cluster's schedulers reported", "cluster",
              paginated=True),
        *crud(f"{api}/scheduler-clusters", "scheduler cluster", (create_sc, update_sc, delete_sc, get_sc, list_sc),
              (s.SchedulerClusterCreate, s.SchedulerClusterUpdate)),
        *crud(f"{api}/seed-peer-clusters", "seed peer cluster",
              (create_spc, update_spc, delete_spc, get_spc, list_spc),
              (s.SeedPeerClusterCreate, s.SeedPeerClusterUpdate)),
        *crud(f"{api}/schedulers", "scheduler",
              (create_scheduler, update_scheduler, delete_scheduler, get_scheduler, list_schedulers),
              (s.SchedulerCreate, s.SchedulerUpdate), query=("scheduler_cluster_id", "host_name", "ip", "state")),
        *crud(f"{api}/seed-peers", "seed peer",
              (create_seed_peer, update_seed_peer, delete_seed_peer, get_seed_peer, list_seed_peers),
              (s.SeedPeerCreate, s.SeedPeerUpdate), query=("seed_peer_cluster_id", "host_name", "ip", "state")),
        *crud(f"{api}/personal-access-tokens", "personal access token",
              (create_token, update_token, delete_token, get_token, list_tokens), (s.TokenCreate, s.TokenUpdate),
              write="session"),
        *crud(f"{api}/jobs", "job", job_h, (s.JobCreate, s.JobUpdate), query=("type", "state", "user_id")),
        # The Open API: the same handlers behind personal access tokens (scope from the path).
        *crud("/oapi/v1/jobs", "job", job_h, (s.JobCreate, s.JobUpdate), read="pat", write="pat",
              query=("type", "state", "user_id")),
        *crud("/oapi/v1/clusters", "cluster", cluster_h, (s.ClusterCreate, s.ClusterUpdate), read="pat", write="pat",
              query=("name",)),
    ]
    return routes


def _self_or_root(x: Call) -> None:
    assert x.user is not None
    if x.user.role != "root" and x.user.user_id != x.id():
        raise Forbidden("root role required")


def _slice(items: list[dict[str, object]], x: Call) -> Page:
    start = (x.page - 1) * x.per_page
    return Page(items[start:start + x.per_page], len(items))

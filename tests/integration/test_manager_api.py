"""The manager's REST API (and the components' gRPC calls it serves) against a real process, on SQLite,
PostgreSQL and MariaDB."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from p2p.clients.manager import ManagerClient, ManagerRequestError
from tests.integration.manager_proc import Api, ManagerProc, database_config, manager_process


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "mariadb"])
def manager(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagerProc]:
    tmp = tmp_path_factory.mktemp(f"manager-{request.param}")
    with database_config(request.param, tmp) as db, manager_process(tmp, db) as proc:
        yield proc


@pytest.fixture
async def api(manager: ManagerProc) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        client = Api(manager.url, session)
        await client.sign_in()
        yield client


@pytest.fixture
async def mc(manager: ManagerProc) -> AsyncIterator[ManagerClient]:
    async with ManagerClient(manager.grpc) as client:
        yield client


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def new_cluster(api: Api, **extra: object) -> dict:
    status, data, _ = await api.call("POST", "/api/v1/clusters", {"name": uid("c"), **extra})
    assert status == 201, data
    return data


# --- users and sessions ---------------------------------------------------------------------------


async def test_sign_in_and_session(api: Api) -> None:
    status, data, headers = await api.call("POST", "/api/v1/users/signin", {"name": "root", "password": "nope"},
                                           token="")
    assert status == 401 and data["message"] and "Bearer" in headers["WWW-Authenticate"]
    status, me, _ = await api.call("GET", "/api/v1/users/me")
    assert status == 200 and me["name"] == "root" and me["role"] == "root" and "password_hash" not in me
    assert (await api.call("GET", "/api/v1/clusters", token=""))[0] == 401
    assert (await api.call("GET", "/api/v1/clusters", token="dfs_forged"))[0] == 401
    token = api.token
    assert (await api.call("POST", "/api/v1/users/signout"))[0] == 204
    assert (await api.call("GET", "/api/v1/users/me", token=token))[0] == 401


async def test_guest_user_reads_but_cannot_write(api: Api) -> None:
    name = uid("guest")
    status, user, _ = await api.call("POST", "/api/v1/users", {"name": name, "password": "guest-password"})
    assert status == 201 and user["role"] == "guest"
    assert (await api.call("POST", "/api/v1/users", {"name": name, "password": "guest-password"}))[0] == 409
    guest = Api(api.url, api.session)
    await guest.sign_in(name, "guest-password")
    assert (await guest.call("GET", "/api/v1/clusters"))[0] == 200
    assert (await guest.call("POST", "/api/v1/clusters", {"name": uid("c")}))[0] == 403
    assert (await guest.call("GET", "/api/v1/users"))[0] == 403


# --- clusters ---------------------------------------------------------------------------------------


async def test_cluster_crud_is_one_scheduler_cluster_plus_one_seed_peer_cluster(api: Api) -> None:
    c = await new_cluster(api, scopes={"idc": "idc-a", "location": "cn|hz", "cidrs": ["10.0.0.0/8"]},
                          seed_peer_cluster_config={"load_limit": 123})
    assert c["scheduler_cluster_id"] == c["id"]
    status, sc, _ = await api.call("GET", f"/api/v1/scheduler-clusters/{c['id']}")
    assert status == 200 and sc["seed_peer_cluster_id"] == c["seed_peer_cluster_id"]
    status, spc, _ = await api.call("GET", f"/api/v1/seed-peer-clusters/{c['seed_peer_cluster_id']}")
    assert status == 200 and spc["scheduler_cluster_id"] == c["id"] and spc["config"]["load_limit"] == 123

    # The name is unique: a second cluster with it is refused and leaves no half-created pair.
    status, data, _ = await api.call("POST", "/api/v1/clusters", {"name": c["name"]})
    assert status == 409 and "message" in data
    status, page, _ = await api.call("GET", "/api/v1/seed-peer-clusters?per_page=1000")
    assert [p["name"] for p in page].count(c["name"]) == 1

    new_name = uid("renamed")
    status, upd, _ = await api.call("PATCH", f"/api/v1/clusters/{c['id']}",
                                    {"name": new_name, "peer_cluster_config": {"load_limit": 7}})
    assert status == 200 and upd["name"] == new_name and upd["peer_cluster_config"]["load_limit"] == 7
    spc = (await api.call("GET", f"/api/v1/seed-peer-clusters/{c['seed_peer_cluster_id']}"))[1]
    assert spc["name"] == new_name  # renamed together

    assert (await api.call("DELETE", f"/api/v1/clusters/{c['id']}"))[0] == 204
    assert (await api.call("GET", f"/api/v1/clusters/{c['id']}"))[0] == 404
    assert (await api.call("GET", f"/api/v1/seed-peer-clusters/{c['seed_peer_cluster_id']}"))[0] == 404
    # Hard delete: the name is free again.
    status, again, _ = await api.call("POST", "/api/v1/clusters", {"name": new_name})
    assert status == 201
    assert (await api.call("DELETE", f"/api/v1/clusters/{again['id']}"))[0] == 204


async def test_cluster_with_members_cannot_be_deleted(api: Api) -> None:
    c = await new_cluster(api)
    status, sp, _ = await api.call("POST", "/api/v1/seed-peers", {
        "host_name": uid("seed"), "ip": "10.1.0.1", "port": 65000, "seed_peer_cluster_id": c["seed_peer_cluster_id"]})
    assert status == 201, sp
    status, data, _ = await api.call("DELETE", f"/api/v1/clusters/{c['id']}")
    assert status == 409 and "seed peers" in data["message"]
    assert (await api.call("GET", f"/api/v1/clusters/{c['id']}"))[0] == 200
    assert (await api.call("DELETE", f"/api/v1/seed-peers/{sp['id']}"))[0] == 204
    assert (await api.call("DELETE", f"/api/v1/clusters/{c['id']}"))[0] == 204


async def test_validation_and_not_found_are_json(api: Api) -> None:
    status, data, headers = await api.call("POST", "/api/v1/clusters", {"name": ""})
    assert status == 422 and headers["Content-Type"].startswith("application/json") and "name" in data["message"]
    assert (await api.call("POST", "/api/v1/clusters", {"name": uid("c"), "bogus": 1}))[0] == 422
    status, data, _ = await api.call("POST", "/api/v1/clusters", {"name": uid("c"), "scopes": {"cidrs": ["x"]}})
    assert status == 422
    status, data, _ = await api.call("GET", "/api/v1/clusters/999999")
    assert status == 404 and "not found" in data["message"]
    assert (await api.call("GET", "/api/v1/clusters?per_page=0"))[0] == 422
    assert (await api.call("GET", "/api/v1/clusters?page=x"))[0] == 422
    status, data, _ = await api.call("GET", "/api/v1/no-such-thing")
    assert status == 404 and "message" in data


async def test_pagination_link_header(api: Api) -> None:
    prefix = uid("page")
    ids = []
    for i in range(5):
        status, data, _ = await api.call("POST", "/api/v1/scheduler-clusters", {"name": f"{prefix}-{i}"})
        assert status == 201
        ids.append(data["id"])
    status, all_rows, headers = await api.call("GET", "/api/v1/scheduler-clusters?per_page=1000")
    total = int(headers["X-Total-Count"])
    assert total == len(all_rows) >= 5
    status, rows, headers = await api.call("GET", "/api/v1/scheduler-clusters?page=2&per_page=2")
    assert status == 200 and len(rows) == 2 and [r["id"] for r in rows] == [r["id"] for r in all_rows[2:4]]
    link = headers["Link"]
    last = -(-total // 2)
    assert 'page=1&per_page=2>; rel="first"' in link and 'page=1&per_page=2>; rel="prev"' in link
    assert 'page=3&per_page=2>; rel="next"' in link and f'page={last}&per_page=2>; rel="last"' in link
    for ident in ids:
        assert (await api.call("DELETE", f"/api/v1/scheduler-clusters/{ident}"))[0] == 204


# --- schedulers and seed peers ----------------------------------------------------------------------


async def test_unique_indexes_answer_409(api: Api) -> None:
    c1, c2 = await new_cluster(api), await new_cluster(api)
    host = uid("sched")
    body = {"host_name": host, "ip": "10.2.0.1", "port": 8002, "scheduler_cluster_id": c1["id"]}
    status, s1, _ = await api.call("POST", "/api/v1/schedulers", body)
    assert status == 201 and s1["state"] == "inactive" and s1["features"] == ["preheat", "schedule"]
    status, data, _ = await api.call("POST", "/api/v1/schedulers", body)
    assert status == 409 and "duplicate" in data["message"]
    # Another IP or another cluster is another scheduler.
    assert (await api.call("POST", "/api/v1/schedulers", {**body, "ip": "10.2.0.2"}))[0] == 201
    assert (await api.call("POST", "/api/v1/schedulers", {**body, "scheduler_cluster_id": c2["id"]}))[0] == 201
    assert (await api.call("POST", "/api/v1/schedulers", {**body, "scheduler_cluster_id": 999999}))[0] == 404

    seed = {"host_name": host, "ip": "10.2.0.1", "port": 65000, "seed_peer_cluster_id": c1["seed_peer_cluster_id"]}
    status, p1, _ = await api.call("POST", "/api/v1/seed-peers", seed)
    assert status == 201
    assert (await api.call("POST", "/api/v1/seed-peers", seed))[0] == 409
    # Hard delete: the same host registers again after a delete.
    assert (await api.call("DELETE", f"/api/v1/seed-peers/{p1['id']}"))[0] == 204
    assert (await api.call("POST", "/api/v1/seed-peers", seed))[0] == 201
    for c in (c1, c2):
        for s in (await api.call("GET", f"/api/v1/schedulers?scheduler_cluster_id={c['id']}"))[1]:
            assert (await api.call("DELETE", f"/api/v1/schedulers/{s['id']}"))[0] == 204
        for p in (await api.call("GET", f"/api/v1/seed-peers?seed_peer_cluster_id={c['seed_peer_cluster_id']}"))[1]:
            assert (await api.call("DELETE", f"/api/v1/seed-peers/{p['id']}"))[0] == 204
        assert (await api.call("DELETE", f"/api/v1/clusters/{c['id']}"))[0] == 204


async def test_registration_keepalive_and_state(api: Api, mc: ManagerClient) -> None:
    c = await new_cluster(api)
    host = uid("sched")
    # The advertised port (what peers dial) is what is stored, whatever the scheduler listens on.
    s = await mc.register_scheduler(host_name=host, ip="10.3.0.1", port=18002, scheduler_cluster_id=c["id"])
    assert s.state == "active" and s.port == 18002 and s.features == {"schedule", "preheat"}
    again = await mc.register_scheduler(host_name=host, ip="10.3.0.1", port=18003, scheduler_cluster_id=c["id"])
    assert again.id == s.id and again.port == 18003  # upsert by uk_scheduler
    seed = await mc.register_seed_peer(host_name=host, ip="10.3.0.1", port=65000, download_port=65002,
                                       seed_peer_cluster_id=c["seed_peer_cluster_id"])
    assert seed.state == "active" and seed.download_port == 65002
    status, cl, _ = await api.call("GET", f"/api/v1/clusters/{c['id']}")
    assert cl["active_scheduler_count"] == 1 and cl["active_seed_peer_count"] == 1

    # Features are set in the manager and reach the scheduler with its next keepalive.
    status, _, _ = await api.call("PATCH", f"/api/v1/schedulers/{s.id}", {"features": ["schedule"]})
    assert status == 200
    reply = await mc.keepalive_scheduler(s.id)
    assert reply.features == {"schedule"} and reply.jobs == ()
    assert (await api.call("GET", f"/api/v1/schedulers/{s.id}"))[1]["features"] == ["schedule"]
    assert (await api.call("PATCH", f"/api/v1/schedulers/{s.id}", {"features": ["fly"]}))[0] == 422

    # No keepalive for longer than keepalive.timeout_s (3 s) -> inactive; a keepalive revives it.
    for _ in range(100):
        state = (await api.call("GET", f"/api/v1/schedulers/{s.id}"))[1]["state"]
        if state == "inactive":
            break
        await asyncio.sleep(0.1)
    assert state == "inactive"
    assert (await api.call("GET", f"/api/v1/seed-peers/{seed.id}"))[1]["state"] == "inactive"
    assert (await mc.keepalive_scheduler(s.id)).scheduler.state == "active"
    assert (await mc.keepalive_seed_peer(seed.id)).state == "active"
    with pytest.raises(ManagerRequestError) as err:
        await mc.keepalive_scheduler(999999)
    assert err.value.status == 404
    await api.call("DELETE", f"/api/v1/schedulers/{s.id}")
    await api.call("DELETE", f"/api/v1/seed-peers/{seed.id}")
    assert (await api.call("DELETE", f"/api/v1/clusters/{c['id']}"))[0] == 204


async def test_discovery_hands_out_only_active_schedulers_with_schedule(api: Api, mc: ManagerClient) -> None:
    near = await new_cluster(api, scopes={"idc": "idc-near", "location": "", "cidrs": []})
    far = await new_cluster(api)
    a = await mc.register_scheduler(host_name=uid("a"), ip="10.4.0.1", port=8002, scheduler_cluster_id=far["id"])
    b = await mc.register_scheduler(host_name=uid("b"), ip="10.4.0.2", port=8002, scheduler_cluster_id=near["id"])
    off = await mc.register_scheduler(host_name=uid("off"), ip="10.4.0.3", port=8002,
                                      scheduler_cluster_id=near["id"], features=["preheat"])
    found = await mc.list_schedulers(idc="idc-near")
    ids = [r.id for r in found]
    assert off.id not in ids  # no `schedule` feature: never handed to peers
    assert b.id in ids and a.id in ids and ids.index(b.id) < ids.index(a.id)  # IDC match ranks first
    for r in (a, b, off):
        await api.call("DELETE", f"/api/v1/schedulers/{r.id}")
    for c in (near, far):
        assert (await api.call("DELETE", f"/api/v1/clusters/{c['id']}"))[0] == 204


# --- personal access tokens and the Open API --------------------------------------------------------


async def make_token(api: Api, scopes: list[str], expires_in: timedelta = timedelta(days=1)) -> dict:
    status, data, _ = await api.call("POST", "/api/v1/personal-access-tokens", {
        "name": uid("pat"), "scopes": scopes, "expired_at": iso(datetime.now(UTC) + expires_in)})
    assert status == 201, data
    return data


async def test_token_is_shown_once_and_stored_hashed(api: Api) -> None:
    tok = await make_token(api, ["job"])
    assert tok["token"].startswith("dfp_") and tok["state"] == "active"
    status, got, _ = await api.call("GET", f"/api/v1/personal-access-tokens/{tok['id']}")
    assert status == 200 and "token" not in got and got["token_hint"] == tok["token"][-4:]
    status, rows, _ = await api.call("GET", "/api/v1/personal-access-tokens?per_page=1000")
    assert all("token" not in r for r in rows)
    assert (await api.call("POST", "/api/v1/personal-access-tokens", {
        "name": uid("pat"), "scopes": [], "expired_at": iso(datetime.now(UTC) + timedelta(days=1))}))[0] == 422
    assert (await api.call("POST", "/api/v1/personal-access-tokens", {
        "name": uid("pat"), "scopes": ["job"], "expired_at": iso(datetime.now(UTC) - timedelta(days=1))}))[0] == 422
    assert (await api.call("DELETE", f"/api/v1/personal-access-tokens/{tok['id']}"))[0] == 204
    assert (await api.call("GET", "/oapi/v1/jobs", token=tok["token"]))[0] == 401  # deleted = unknown


async def test_open_api_token_enforcement(api: Api) -> None:
    assert (await api.call("GET", "/oapi/v1/jobs", token=""))[0] == 401
    assert (await api.call("GET", "/oapi/v1/jobs", token="dfp_unknown"))[0] == 401
    # A session token is not a personal access token.
    assert (await api.call("GET", "/oapi/v1/jobs", token=api.token))[0] == 401

    cluster_only = await make_token(api, ["cluster"])
    status, data, _ = await api.call("GET", "/oapi/v1/jobs", token=cluster_only["token"])
    assert status == 403 and "job" in data["message"]
    assert (await api.call("GET", "/oapi/v1/clusters", token=cluster_only["token"]))[0] == 200

    expired = await make_token(api, ["job"])
    assert (await api.call("GET", "/oapi/v1/jobs", token=expired["token"]))[0] == 200
    await api.call("PATCH", f"/api/v1/personal-access-tokens/{expired['id']}",
                   {"expired_at": iso(datetime.now(UTC) - timedelta(seconds=5))})
    status, data, _ = await api.call("GET", "/oapi/v1/jobs", token=expired["token"])
    assert status == 403 and "expired" in data["message"]

    revoked = await make_token(api, ["job"])
    status, upd, _ = await api.call("PATCH", f"/api/v1/personal-access-tokens/{revoked['id']}", {"state": "inactive"})
    assert status == 200 and upd["state"] == "inactive"
    status, data, _ = await api.call("GET", "/oapi/v1/jobs", token=revoked["token"])
    assert status == 403 and "inactive" in data["message"]


# --- preheat jobs -----------------------------------------------------------------------------------


async def test_preheat_job_through_open_api_completes(api: Api, mc: ManagerClient) -> None:
    c = await new_cluster(api)
    sched = await mc.register_scheduler(host_name=uid("s"), ip="10.5.0.1", port=8002, scheduler_cluster_id=c["id"])
    tok = await make_token(api, ["job"])
    body = {"type": "preheat", "args": {"type": "file", "url": "dfs://models/llama.bin"},
            "scheduler_cluster_ids": [c["id"]]}
    status, job, _ = await api.call("POST", "/oapi/v1/jobs", body, token=tok["token"])
    assert status == 201, job
    assert job["state"] == "PENDING" and job["result"]["scheduler_clusters"][0]["scheduler_id"] == sched.id

    reply = await mc.keepalive_scheduler(sched.id)
    assert [(r.job_id, r.url) for r in reply.jobs] == [(job["id"], "dfs://models/llama.bin")]
    assert (await mc.keepalive_scheduler(sched.id)).jobs == ()  # handed out once
    assert (await api.call("GET", f"/oapi/v1/jobs/{job['id']}", token=tok["token"]))[1]["state"] == "RUNNING"

    assert await mc.report_job(job["id"], scheduler_id=sched.id, state="SUCCESS") == "SUCCESS"
    status, done, _ = await api.call("GET", f"/api/v1/jobs/{job['id']}")
    run = done["result"]["scheduler_clusters"][0]
    assert done["state"] == "SUCCESS" and run == {**run, "scheduler_cluster_id": c["id"], "state": "SUCCESS"}
    with pytest.raises(ManagerRequestError):
        await mc.report_job(job["id"], scheduler_id=999999, state="SUCCESS")

    status, _, _ = await api.call("POST", "/api/v1/jobs", {**body, "args": {"url": "ftp://x/y"}})
    assert status == 422
    status, _, _ = await api.call("POST", "/api/v1/jobs", {**body, "type": "sync"})
    assert status == 422
    assert (await api.call("DELETE", f"/api/v1/jobs/{job['id']}"))[0] == 204
    await api.call("DELETE", f"/api/v1/schedulers/{sched.id}")
    await api.call("DELETE", f"/api/v1/clusters/{c['id']}")


async def test_preheat_skips_schedulers_without_the_feature(api: Api, mc: ManagerClient) -> None:
    c = await new_cluster(api)
    off = await mc.register_scheduler(host_name=uid("off"), ip="10.6.0.1", port=8002, scheduler_cluster_id=c["id"],
                                      features=["schedule"])
    body = {"type": "preheat", "args": {"url": "https://example.invalid/a"}, "scheduler_cluster_ids": [c["id"]]}
    status, data, _ = await api.call("POST", "/api/v1/jobs", body)
    assert status == 422 and "candidate schedulers not found" in data["message"]

    on = await mc.register_scheduler(host_name=uid("on"), ip="10.6.0.2", port=8002, scheduler_cluster_id=c["id"])
    status, job, _ = await api.call("POST", "/api/v1/jobs", body)
    assert status == 201 and job["result"]["scheduler_clusters"][0]["scheduler_id"] == on.id
    # The feature is withdrawn before the scheduler picks the run up: the run fails, it is not handed out.
    await api.call("PATCH", f"/api/v1/schedulers/{on.id}", {"features": ["schedule"]})
    assert (await mc.keepalive_scheduler(on.id)).jobs == ()
    status, job, _ = await api.call("GET", f"/api/v1/jobs/{job['id']}")
    assert job["state"] == "FAILURE" and "disabled" in job["result"]["scheduler_clusters"][0]["message"]
    for s in (off, on):
        await api.call("DELETE", f"/api/v1/schedulers/{s.id}")
    await api.call("DELETE", f"/api/v1/jobs/{job['id']}")
    assert (await api.call("DELETE", f"/api/v1/clusters/{c['id']}"))[0] == 204


async def test_cluster_tasks_and_peers_from_scheduler_snapshots(api: Api, mc: ManagerClient) -> None:
    c = await new_cluster(api)
    s = await mc.register_scheduler(host_name=uid("s"), ip="10.7.0.1", port=8002, scheduler_cluster_id=c["id"])
    tasks = [{"id": f"t{i}", "url": f"dfs://b/k{i}", "state": "Succeeded", "content_length": i, "peer_count": 1}
             for i in range(3)]
    await mc.keepalive_scheduler(s.id, tasks=tasks, peers=[{"id": "p1", "task_id": "t0", "state": "Running"}])
    status, rows, headers = await api.call("GET", f"/api/v1/clusters/{c['id']}/tasks?per_page=2")
    assert status == 200 and [r["id"] for r in rows] == ["t0", "t1"] and headers["X-Total-Count"] == "3"
    status, peers, _ = await api.call("GET", f"/api/v1/clusters/{c['id']}/peers")
    assert peers == [{"id": "p1", "task_id": "t0", "host_name": "", "ip": "", "state": "Running",
                      "scheduler_id": s.id}]
    await api.call("DELETE", f"/api/v1/schedulers/{s.id}")
    assert (await api.call("DELETE", f"/api/v1/clusters/{c['id']}"))[0] == 204


async def test_every_documented_operation_is_served_as_documented(api: Api) -> None:
    status, doc, _ = await api.call("GET", "/api/v1/openapi.json", token="")
    assert status == 200 and doc["openapi"].startswith("3.")
    checked = 0
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if path == "/api/v1/users/signout":
                continue  # would end this test's session
            url = path.replace("{id}", "999999")
            body = {} if "requestBody" in op else None
            status, data, _ = await api.call(method.upper(), url, body)
            assert str(status) in op["responses"], (method, path, status, data)
            if status >= 400:
                assert isinstance(data, dict) and data["message"], (method, path)
            checked += 1
    assert checked >= 54  # the components' calls are gRPC (test_manager_grpc.py), not REST

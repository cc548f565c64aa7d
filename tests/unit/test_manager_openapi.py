"""The OpenAPI document describes exactly the routes the manager serves, and the schema migrates."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, select

from p2p.manager.app import _open_services, build_app
from p2p.manager.config import DatabaseSection, ManagerConfig, SqliteSection
from p2p.manager.db import make_engine
from p2p.manager.migrations import MIGRATIONS, migrate, schema_migrations
from p2p.manager.openapi import build_openapi, openapi_path
from p2p.manager.routes import build_routes

UNDOCUMENTED = {"/", "/healthy", "/_ping", "/api/v1/openapi.json"}


def _config(tmp_path: Path) -> ManagerConfig:
    return ManagerConfig(database=DatabaseSection(sqlite=SqliteSection(path=str(tmp_path / "m.db"))))


def test_openapi_matches_the_router(tmp_path: Path) -> None:
    db, services, generated = _open_services(_config(tmp_path))
    try:
        assert generated and len(generated) >= 12  # no root password configured: one was generated
        app = build_app(_config(tmp_path), services)
        served = set()
        for route in app.router.routes():
            info = route.resource.get_info() if route.resource else {}
            path = info.get("path") or info.get("formatter") or info.get("prefix", "")
            if route.method in ("HEAD", "*") or path in UNDOCUMENTED or path.startswith("/console"):
                continue
            served.add((route.method.lower(), openapi_path(path)))
        doc = build_openapi(build_routes(services), version="test")
        documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
        assert served == documented
        assert ("post", "/oapi/v1/jobs") in documented and ("get", "/api/v1/clusters/{id}") in documented
        # Schedulers, seed peers and daemons use the gRPC component API only: no REST route of theirs is left.
        for component in ("/api/v1/schedulers/register", "/api/v1/schedulers/discovery",
                          "/api/v1/schedulers/{id}/keepalive", "/api/v1/schedulers/{id}/features",
                          "/api/v1/seed-peers/register", "/api/v1/seed-peers/{id}/keepalive",
                          "/api/v1/jobs/{id}/results"):
            assert component not in doc["paths"], component
        assert "component" not in doc["components"]["securitySchemes"]
        for path, ops in doc["paths"].items():
            for method, op in ops.items():
                if "requestBody" in op:
                    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                    assert ref.split("/")[-1] in doc["components"]["schemas"], (method, path)
                names = [p["name"] for p in op["parameters"] if p["in"] == "path"]
                assert names == [seg[1:-1] for seg in path.split("/") if seg.startswith("{")]
        assert doc["paths"]["/oapi/v1/jobs"]["post"]["security"] == [{"personalAccessToken": []}]
        assert doc["paths"]["/api/v1/clusters"]["get"]["responses"]["200"]["headers"]["Link"]
    finally:
        db.close()


def test_migrations_apply_once_and_create_the_unique_indexes(tmp_path: Path) -> None:
    engine = make_engine(DatabaseSection(sqlite=SqliteSection(path=str(tmp_path / "m.db"))), tmp_path)
    try:
        assert migrate(engine) == len(MIGRATIONS)
        assert migrate(engine) == len(MIGRATIONS)  # idempotent
        with engine.connect() as conn:
            versions = [r[0] for r in conn.execute(select(schema_migrations.c.version))]
        assert versions == list(range(1, len(MIGRATIONS) + 1))
        insp = inspect(engine)
        indexes = {i["name"]: i for t in ("schedulers", "seed_peers") for i in insp.get_indexes(t)}
        assert indexes["uk_scheduler"]["unique"] and indexes["uk_scheduler"]["column_names"] == [
            "host_name", "ip", "scheduler_cluster_id"]
        assert indexes["uk_seed_peer"]["unique"] and indexes["uk_seed_peer"]["column_names"] == [
            "host_name", "ip", "seed_peer_cluster_id"]
        assert "is_del" not in {c["name"] for c in insp.get_columns("schedulers")}  # hard deletes
    finally:
        engine.dispose()

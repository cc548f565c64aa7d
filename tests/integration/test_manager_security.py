"""REST and the gRPC component API over TLS, the component token, and logs that never show credentials."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import grpc
import pytest

from p2p.clients.manager import ManagerClient, ManagerRequestError, ManagerUnavailable
from tests.cluster import fs_origin, start_daemon
from tests.integration.manager_link_procs import log_has, wait_for_log, wait_until
from tests.integration.manager_proc import ROOT_PASSWORD, Api, database_config, manager_process
from tests.integration.test_p2p_cluster import start_scheduler


def self_signed(tmp: Path) -> tuple[Path, Path]:
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    try:
        from cryptography import x509  # noqa: F401 - prefer the library when installed
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("neither cryptography nor openssl available")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
             "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, capture_output=True, timeout=60,
        )
        return cert, key
    return _cryptography_cert(cert, key)


def _cryptography_cert(cert: Path, key: Path) -> tuple[Path, Path]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    pk = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    crt = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(pk.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(pk, hashes.SHA256())
    )
    cert.write_bytes(crt.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(pk.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    return cert, key


async def test_rest_over_tls(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with database_config("sqlite", tmp_path) as db, \
            manager_process(tmp_path, db, server={"work_home": str(tmp_path / "home"),
                                                  "rest": {"port": 0, "tls": {"cert": str(cert), "key": str(key)}}}
                            ) as mgr:
        assert mgr.url.startswith("https://127.0.0.1:")
        trust = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession() as session:
            async with session.get(mgr.url + "/healthy", ssl=trust) as resp:
                assert resp.status == 200 and await resp.text() == "OK"
            with pytest.raises(aiohttp.ClientError):  # plain HTTP is not served on the TLS port
                async with session.get(mgr.url.replace("https://", "http://") + "/healthy") as resp:
                    await resp.read()
            with pytest.raises(aiohttp.ClientConnectorCertificateError):  # an untrusted cert is refused
                async with session.get(mgr.url + "/healthy") as resp:
                    await resp.read()
        # The gRPC service uses the same certificate; a plain-text client is refused.
        async with ManagerClient(mgr.grpc, root_certificates=cert.read_bytes()) as mc:
            s = await mc.register_scheduler(host_name="tls-s", ip="127.0.0.1", port=8002)
            assert s.state == "active"
            assert (await mc.keepalive_scheduler(s.id)).scheduler.state == "active"
        async with ManagerClient(mgr.grpc, timeout_s=5) as plain:
            with pytest.raises(ManagerUnavailable):
                await plain.list_schedulers()


async def test_components_reach_a_tls_manager_from_their_config(tmp_path: Path) -> None:
    """A scheduler (`manager.ca_file`) and a daemon (`scheduler.manager_ca_file`) started from config files
    register and discover over the manager's TLS gRPC port; a daemon without the CA finds nothing."""
    cert, key = self_signed(tmp_path)
    with database_config("sqlite", tmp_path) as db, \
            manager_process(tmp_path, db, server={"work_home": str(tmp_path / "home"),
                                                  "rest": {"port": 0, "tls": {"cert": str(cert), "key": str(key)}}}
                            ) as mgr:
        manager = {"address": mgr.grpc, "ca_file": str(cert), "host_name": "tls-sched", "keepalive_interval_s": 0.3}
        sched = await asyncio.to_thread(start_scheduler, tmp_path, {"manager": manager}, "tls-sched")
        daemons = []
        try:
            async with ManagerClient(mgr.grpc, root_certificates=cert.read_bytes()) as mc:
                await wait_until(lambda: _listed(mc, "tls-sched"), what="the scheduler registered over TLS")
            for name, ca in (("trusting", str(cert)), ("untrusting", "")):
                link = {"manager": mgr.grpc, "manager_ca_file": ca, "manager_refresh_interval_s": 0.3,
                        "health_interval_s": 0.3}
                extra = {"daemon": {"host": {"hostname": name}, "scheduler": link}}
                daemons.append(await asyncio.to_thread(start_daemon, tmp_path, fs_origin(tmp_path), name=name,
                                                       extra=extra))
            trusting, untrusting = daemons
            await wait_for_log(trusting, f"healthy schedulers: ['{sched.ready['address']}']")
            assert not log_has(untrusting, "healthy schedulers: ['")  # plain text to a TLS port finds nothing
        finally:
            for child in (*daemons, sched):
                child.stop()


async def _listed(client: ManagerClient, host_name: str) -> bool:
    return any(r.host_name == host_name for r in await client.list_schedulers())


def component_calls(client: ManagerClient, scheduler_id: int) -> Iterator[Coroutine[object, object, object]]:
    """Every call of the component API, one coroutine at a time (each is awaited before the next is made)."""
    yield client.list_schedulers()
    yield client.register_scheduler(host_name="s", ip="127.0.0.1", port=8002)
    yield client.keepalive_scheduler(scheduler_id)
    yield client.keepalive_seed_peer(1)
    yield client.report_job(1, scheduler_id=scheduler_id, state="SUCCESS")
    yield client.register_seed_peer(host_name="sp", ip="127.0.0.1", port=65000)


async def test_component_token_and_logs_never_show_credentials(tmp_path: Path) -> None:
    component = "component-Secret-7781"
    s3_secret = "S3-Secret-Key-9c1f0e"
    cookie = "sid=Cookie-Value-42aa"
    with database_config("sqlite", tmp_path) as db, manager_process(
        tmp_path, db,
        auth={"root_password": ROOT_PASSWORD, "component_token": component},
        object_storage={"enable": True, "endpoint": "http://127.0.0.1:9", "access_key": "AK-visible-ok",
                        "secret_key": s3_secret},
    ) as mgr:
        async with aiohttp.ClientSession() as session:
            api = Api(mgr.url, session)
            await api.call("POST", "/api/v1/users/signin", {"name": "root", "password": "Wrong-Passw0rd-x"}, token="")
            session_token = await api.sign_in()
            status, tok, _ = await api.call("POST", "/api/v1/personal-access-tokens", {
                "name": "ci", "scopes": ["job"], "expired_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()},
                headers={"Cookie": cookie})
            assert status == 201
            pat = tok["token"]
            assert (await api.call("GET", "/oapi/v1/jobs", token=pat))[0] == 200
            assert (await api.call("GET", "/oapi/v1/clusters", token=pat))[0] == 403
            assert (await api.call("GET", "/oapi/v1/jobs", token=pat + "x"))[0] == 401
            # Registration is not served over REST any more (the gRPC component API has it).
            body = {"host_name": "s", "ip": "127.0.0.1", "port": 8002}
            assert (await api.call("POST", "/api/v1/schedulers/register", body, token=component))[0] in (404, 405)
        # The gRPC component API needs the component token when one is configured.
        async with ManagerClient(mgr.grpc, token=component) as mc:
            s = await mc.register_scheduler(**body)  # type: ignore[arg-type]
            assert s.state == "active"
            assert (await mc.keepalive_scheduler(s.id)).scheduler.state == "active"
            assert [r.id for r in await mc.list_schedulers()] == [s.id]
        for wrong in (None, "nope", component + "x"):
            async with ManagerClient(mgr.grpc, token=wrong) as other:
                for call in component_calls(other, s.id):
                    with pytest.raises(ManagerRequestError) as err:
                        await call
                    assert err.value.status == 401 and err.value.code == grpc.StatusCode.UNAUTHENTICATED
    log = mgr.log_text()
    assert "POST /api/v1/users/signin" in log and "/oapi/v1/jobs" in log  # the log did record the calls
    assert "effective config" in log and "127.0.0.1:9" in log
    for secret in (ROOT_PASSWORD, "Wrong-Passw0rd-x", session_token, pat, pat[4:], component, s3_secret,
                   "Cookie-Value-42aa"):
        assert secret not in log, f"a credential leaked into the log: {secret[:3]}..."


async def test_client_reports_unreachable_manager() -> None:
    async with ManagerClient("127.0.0.1:9", timeout_s=2) as mc:
        with pytest.raises(ManagerUnavailable):
            await mc.list_schedulers()
        with pytest.raises(ManagerUnavailable):
            await mc.keepalive_scheduler(1)

"""Console flows in headless Chromium (Debian `chromium`, driven by Playwright), with screenshots.

Skipped when Chromium or Playwright is absent, unless CI=true, where they must be there.
Screenshots of each page go to a temp dir, so a test run leaves the work tree clean; with
DFLY_UPDATE_SCREENSHOTS=1 they replace the ones checked into docs/console/.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from p2p.clients.manager import ManagerClient
from tests.integration.manager_proc import ROOT_PASSWORD, Api, database_config, manager_process

CHROMIUM = "/usr/bin/chromium"
SHOTS = (
    Path(__file__).resolve().parents[2] / "docs" / "console"
    if os.environ.get("DFLY_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "dfly-console-screenshots"
)
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

pytestmark = pytest.mark.slow


def _need(ok: bool, why: str) -> None:
    if not ok:
        if IN_CI:
            pytest.fail(f"{why} (required under CI)")
        pytest.skip(why)


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[Any]:
    _need(Path(CHROMIUM).exists() or shutil.which("chromium") is not None, "chromium is not installed")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _need(False, "playwright is not installed")
        return
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists()
                                           else shutil.which("chromium"), args=LAUNCH_ARGS)
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        pg = await context.new_page()
        pg.set_default_timeout(15_000)
        yield pg
        await context.close()
        await browser.close()


async def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.wait_for_timeout(150)  # let the last paint settle
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    assert (SHOTS / f"{name}.png").stat().st_size > 1000, f"empty screenshot of {name}"


async def test_console_flows(page: Any, tmp_path: Path) -> None:
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    with database_config("sqlite", tmp_path) as db, manager_process(
        tmp_path, db, keepalive={"timeout_s": 60, "sweep_interval_s": 1}
    ) as mgr:
        async with aiohttp.ClientSession() as session, ManagerClient(mgr.grpc) as mc:
            api = Api(mgr.url, session)
            await api.sign_in()
            sched = await mc.register_scheduler(host_name="scheduler-a", ip="127.0.0.1", port=8002,
                                                idc="idc-1", location="eu|de|fra")
            await mc.register_seed_peer(host_name="seed-a", ip="127.0.0.1", port=65000, download_port=65002)
            await mc.keepalive_scheduler(sched.id, tasks=[
                {"id": "7d1b" * 16, "url": "dfs://models/llama-3-8b/model.safetensors", "state": "Succeeded",
                 "content_length": 16_060_522_496, "peer_count": 3},
                {"id": "a0c3" * 16, "url": "dfs://datasets/imagenet/train-00001.tar", "state": "Running",
                 "content_length": 1_073_741_824, "peer_count": 1},
            ], peers=[
                {"id": "peer-node-1", "task_id": "7d1b" * 16, "host_name": "node-1", "ip": "127.0.0.2",
                 "state": "Succeeded"},
                {"id": "peer-node-2", "task_id": "a0c3" * 16, "host_name": "node-2", "ip": "127.0.0.3",
                 "state": "Running"},
            ], topology=[
                {"src_host_id": "1f" * 32, "src_host_name": "node-1", "src_address": "127.0.0.2:65002",
                 "dest_host_id": "2e" * 32, "dest_host_name": "node-2", "dest_address": "127.0.0.3:65002",
                 "average_rtt_ns": 412_000, "probe_count": 5, "updated_at_ns": 1_767_225_600_000_000_000},
                {"src_host_id": "2e" * 32, "src_host_name": "node-2", "src_address": "127.0.0.3:65002",
                 "dest_host_id": "1f" * 32, "dest_host_name": "node-1", "dest_address": "127.0.0.2:65002",
                 "average_rtt_ns": 1_730_000, "probe_count": 3, "updated_at_ns": 1_767_225_600_000_000_000},
            ])

            # Sign in: a wrong password is refused on the page, the right one lands on the clusters.
            await page.goto(mgr.url + "/")
            await page.wait_for_url("**/#/signin")
            await page.fill("#password", "wrong-password")
            await page.click("button[type=submit]")
            await page.wait_for_selector("[data-testid=signin-error]:has-text('incorrect')")
            await page.fill("#password", "")
            await shot(page, "signin")
            await page.fill("#password", ROOT_PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_selector("[data-testid=clusters] tr:has-text('cluster-1')")
            assert "1 active / 1" in await page.inner_text("[data-testid=clusters]")
            await shot(page, "clusters")

            # Create a cluster with the form.
            await page.click("[data-testid=new-cluster]")
            await page.fill("#cname", "cluster-eu")
            await page.fill("#bio", "Frankfurt racks")
            await page.fill("#idc", "idc-1|idc-2")
            await page.fill("#cidrs", "10.10.0.0/16")
            await shot(page, "cluster-create")
            await page.click("button[type=submit]")
            await page.wait_for_selector("h1:has-text('cluster-eu')")
            (status, clusters, _) = await api.call("GET", "/api/v1/clusters?name=cluster-eu")
            assert status == 200 and clusters[0]["scopes"]["cidrs"] == ["10.10.0.0/16"]
            new_id = clusters[0]["id"]

            # Edit it.
            await page.goto(f"{mgr.url}/#/clusters/{new_id}/edit")
            await page.fill("#bio", "Frankfurt racks, row 2")
            await page.fill("#seed_load_limit", "500")
            await page.click("button[type=submit]")
            await page.wait_for_selector("text=Frankfurt racks, row 2")
            c = (await api.call("GET", f"/api/v1/clusters/{new_id}"))[1]
            assert c["bio"] == "Frankfurt racks, row 2" and c["seed_peer_cluster_config"]["load_limit"] == 500

            # Delete it (it has no members).
            page.once("dialog", lambda d: d.accept())
            await page.click("[data-testid=delete-cluster]")
            await page.wait_for_url("**/#/clusters")
            assert (await api.call("GET", f"/api/v1/clusters/{new_id}"))[0] == 404

            # Cluster 1: live state of its scheduler and seed peer, and its features.
            await page.goto(mgr.url + "/#/clusters/1")
            await page.wait_for_selector("[data-testid=schedulers] tr:has-text('scheduler-a') [data-state=active]")
            await page.wait_for_selector("[data-testid=seed-peers] tr:has-text('seed-a') [data-state=active]")
            await page.uncheck("[data-testid=schedulers] input[data-feature=preheat]")
            await page.wait_for_selector("#toast:has-text('preheat disabled')")
            assert (await mc.keepalive_scheduler(sched.id)).features == {"schedule"}
            await page.check("[data-testid=schedulers] input[data-feature=preheat]")
            await page.wait_for_selector("#toast:has-text('preheat enabled')")
            assert (await mc.keepalive_scheduler(sched.id)).features == {"schedule", "preheat"}
            await shot(page, "cluster")

            await page.click("text=Tasks and peers")
            await page.wait_for_selector("[data-testid=tasks] tr:has-text('llama-3-8b')")
            await page.wait_for_selector("[data-testid=peers] tr:has-text('peer-node-2')")
            await page.wait_for_selector("[data-testid=topology] tr:has-text('1.73 ms')")
            assert "412 µs" in await page.inner_text("[data-testid=topology]")
            await shot(page, "cluster-tasks")

            # Tokens: created, shown once, copied, working, revoked.
            await page.click("#nav a[data-nav=tokens]")
            await page.fill("#tname", "ci-preheat")
            await page.fill("#tbio", "used by the release pipeline")
            await page.click("form button[type=submit]")
            token = (await page.inner_text("[data-testid=token-value]")).strip()
            assert token.startswith("dfp_")
            await page.click("[data-testid=copy-token]")
            await page.wait_for_selector("[data-testid=copy-token]:has-text('Copied')")
            await shot(page, "tokens")
            assert (await api.call("GET", "/oapi/v1/jobs", token=token))[0] == 200
            await page.click("#nav a[data-nav=clusters]")
            await page.click("#nav a[data-nav=tokens]")
            await page.wait_for_selector("[data-testid=tokens] tr:has-text('ci-preheat')")
            assert token not in await page.content()  # shown once only
            await page.click("[data-testid=tokens] tr:has-text('ci-preheat') [data-testid=revoke]")
            await page.wait_for_selector("[data-testid=tokens] tr:has-text('ci-preheat') [data-state=inactive]")
            assert (await api.call("GET", "/oapi/v1/jobs", token=token))[0] == 403

            # Preheat: start it, watch it progress as the scheduler takes and finishes it.
            await page.click("#nav a[data-nav=jobs]")
            await page.fill("#purl", "dfs://models/llama-3-8b/model.safetensors")
            await page.check("input[name=cluster][value='1']")
            await page.click("form button[type=submit]")
            await page.wait_for_selector("[data-testid=job-runs] [data-state=PENDING]")
            job_id = int(page.url.rsplit("/", 1)[1])
            reply = await mc.keepalive_scheduler(sched.id)
            assert [r.job_id for r in reply.jobs] == [job_id]
            await page.wait_for_selector("[data-testid=job-runs] [data-state=RUNNING]")
            await mc.report_job(job_id, scheduler_id=sched.id, state="SUCCESS", message="seed peer has 4 pieces")
            await page.wait_for_selector("h1 [data-state=SUCCESS]")
            await shot(page, "job")
            await page.click("text=All jobs")
            await page.wait_for_selector("[data-testid=jobs] [data-state=SUCCESS]")
            await shot(page, "jobs")

            # Sign out returns to the sign-in page and the session no longer works.
            await page.click("#signout")
            await page.wait_for_url("**/#/signin")
    # The console fetched nothing from anywhere but the manager.
    assert requests and all(u.startswith(mgr.url) or u.startswith("data:") for u in requests), requests

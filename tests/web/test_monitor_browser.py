"""The monitor page in a real headless Chromium against a real server, broker and local agent.

Screenshots are kept in ``test-artifacts/monitor/`` (CI artifacts).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from argo_client.local_stack import LocalStack
from argobalsam.argo.v1 import argo_service_pb2 as svc
from argobalsam.argo.v1 import argo_service_pb2_grpc, job_pb2

CHROMIUM = os.environ.get("ARGO_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "monitor"

pytestmark = pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                                reason="chromium and chromedriver are installed by scripts/install-deps")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,900", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def monitored(tmp_path: Path, amqp_url: str, amqp_prefix: str) -> Iterator[LocalStack]:
    site_bin = tmp_path / "site-bin"
    site_bin.mkdir()
    (site_bin / "sleeper").write_text("#!/bin/sh\nsleep \"$1\"\n")
    (site_bin / "sleeper").chmod(0o755)
    stack = LocalStack(tmp_path / "stack", amqp_url=amqp_url, amqp_prefix=amqp_prefix, monitor=True)
    try:
        stack.start_server()
        stack.start_agent("local", site_options={"allowed_exec_dir": str(site_bin),
                                                 "work_root": str(tmp_path / "work")})
        yield stack
    finally:
        stack.stop()


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def rows(driver, selector: str = "#jobs tbody tr") -> list[str]:  # type: ignore[no-untyped-def]
    """The rows' job ids (or texts), read in one script call: the page replaces rows as it refreshes."""
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(r => r.dataset.job || r.textContent);",
        selector)


def shot(driver, name: str) -> None:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def test_filters_live_updates_and_job_page(monitored: LocalStack, browser) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    with grpc.insecure_channel(monitored.address) as channel:
        stub = argo_service_pb2_grpc.ArgoServiceStub(channel)

        def create(owner: str, group: str, seconds: str) -> str:
            job = job_pb2.Job(owner=owner, group_identifier=group, steps=[job_pb2.Step(
                target_site="local", executable="sleeper", executable_args=[seconds], nodes=1,
                processes_per_node=1, wall_minutes=5)])
            return stub.CreateJob(svc.CreateJobRequest(job=job)).job.name.removeprefix("jobs/")

        alice = [create("alice", "zjets", "0") for _ in range(3)]
        bob_long = create("bob", "wjets", "4")

        browser.get(f"http://127.0.0.1:{monitored.monitor_port}/")
        wait_for(lambda: len(rows(browser)) == 4, "4 jobs in the table")
        shot(browser, "jobs-all")

        # the owner filter changes the rows
        browser.find_element(By.ID, "f-owner").send_keys("alice")
        wait_for(lambda: sorted(rows(browser)) == sorted(alice), "only alice's jobs")
        browser.find_element(By.ID, "f-owner").clear()
        browser.find_element(By.ID, "f-group").send_keys("wjets")
        wait_for(lambda: rows(browser) == [bob_long], "only the wjets job")
        browser.find_element(By.ID, "f-group").clear()
        Select(browser.find_element(By.ID, "f-state")).select_by_visible_text("running")
        wait_for(lambda: rows(browser) == [bob_long], "only the running job")
        shot(browser, "jobs-filtered-running")
        Select(browser.find_element(By.ID, "f-state")).select_by_visible_text("any")
        browser.find_element(By.ID, "f-q").send_keys(bob_long[-6:])
        wait_for(lambda: rows(browser) == [bob_long], "free text finds the job by id")

        # the job page shows its steps, and the running job's state changes without a reload
        browser.get(f"http://127.0.0.1:{monitored.monitor_port}/#/jobs/{bob_long}")
        state = lambda: browser.execute_script(  # noqa: E731
            "const e = document.getElementById('job-state'); return e ? e.textContent : '';")
        wait_for(lambda: state() == "RUNNING", "the job page to show RUNNING")
        step_rows = rows(browser, "#steps tbody tr")
        assert len(step_rows) == 1 and "local" in step_rows[0] and "sleeper" in step_rows[0]
        shot(browser, "job-running")
        marker = browser.execute_script("window.__noReload = 1; return window.__noReload;")
        assert marker == 1
        wait_for(lambda: state() == "SUCCEEDED", "the page to show SUCCEEDED by itself", timeout=60)
        assert browser.execute_script("return window.__noReload;") == 1, "the page was reloaded"
        assert rows(browser, "#events tbody tr"), "history is empty"
        shot(browser, "job-succeeded")

        # the sites page shows the agent online
        browser.get(f"http://127.0.0.1:{monitored.monitor_port}/#/sites")
        wait_for(lambda: "online" in " ".join(rows(browser, "#sites tbody tr")), "local site online")
        shot(browser, "sites")

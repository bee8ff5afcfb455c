"""A teacher refreshes a class from the platform in a real Chromium: the button queues a sync, the
status polls in place while the worker runs it, and ends in a result or in what to do about a failure.

No qcluster runs in tests: the test thread plays the worker by calling the task the queue would run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django_q.models import OrmQ
from playwright.sync_api import Browser, Page, expect, sync_playwright

from classroom import tasks
from classroom.models import SyncRun
from tests import factories
from tests.platform_fixtures import demo_class

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
POLL_SECONDS = 1


@pytest.fixture(scope="module", autouse=True)
def _allow_orm_beside_playwright() -> Iterator[None]:
    """Playwright's sync API runs an event loop in the test thread; the test thread also plays the
    worker through the ORM, which Django refuses there unless told no async code runs in it."""
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if previous is None:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        if os.environ.get("BROWSER_TESTS_REQUIRED"):
            pytest.fail(
                f"BROWSER_TESTS_REQUIRED is set but {CHROMIUM} is missing: apt-get install chromium",
                pytrace=False,
            )
        pytest.skip("Debian chromium is not installed: apt-get install chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, live_server) -> Iterator[Page]:
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(10_000)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture
def class_page(transactional_db, school, platform, page: Page) -> Page:
    """The teacher, logged in through the form, on the page of a class of 5 demo students."""
    school_class = demo_class(school, size=5).school_class
    page.goto("/accounts/login/")
    page.fill("input[name=username]", school.teacher.username)
    page.fill("input[name=password]", factories.PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).not_to_have_url(re.compile(r"/accounts/login/"))
    page.goto(f"/classes/{school_class.pk}/")
    expect(page.locator("h1")).to_have_text(school_class.name)
    return page


def _refresh_and_run_the_job(page: Page) -> SyncRun:
    """Click Refresh, see it queued in place, then do the worker's job on the queued run."""
    status = page.locator("#sync-status")
    expect(status).not_to_contain_text("Refresh queued")
    page.evaluate("window.__marker = 1")
    page.get_by_role("button", name="Refresh from the platform").click()

    expect(status).to_contain_text("Refresh queued")
    expect(status.locator("progress")).to_be_visible()
    expect(status.locator(".sync-run[hx-trigger]")).to_have_count(1)
    assert page.evaluate("window.__marker") == 1, "queuing the refresh reloaded the page"

    run = SyncRun.objects.get(status=SyncRun.Status.QUEUED, trigger=SyncRun.Trigger.BUTTON)
    assert OrmQ.objects.count() == 1, "the refresh was not handed to the queue"
    assert OrmQ.objects.get().func() == "classroom.tasks.sync_run"
    tasks.sync_run(run.pk)
    return run


def _assert_polling_stopped(page: Page) -> None:
    status = page.locator("#sync-status")
    expect(status.locator(".sync-run")).to_have_count(1)
    expect(status.locator(".sync-run[hx-trigger]")).to_have_count(0)
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if "/sync-runs/" in request.url else None)
    # Not time.sleep: Playwright only delivers request events while its own calls run.
    page.wait_for_timeout(POLL_SECONDS * 1500)
    assert polls == [], f"the page kept polling after the run finished: {polls}"
    assert page.evaluate("window.__marker") == 1, "the page reloaded instead of polling in place"


def test_refresh_shows_progress_and_ends_in_success_in_place(class_page: Page) -> None:
    page = class_page
    run = _refresh_and_run_the_job(page)
    run.refresh_from_db()
    assert run.status == SyncRun.Status.SUCCEEDED, (run.status, run.error)

    status = page.locator("#sync-status")
    expect(status).to_contain_text("Synced 5 students from the platform", timeout=5_000)
    expect(status).not_to_contain_text("Refresh queued")
    expect(status.get_by_role("link", name="Reload to see the new numbers")).to_be_visible()
    _assert_polling_stopped(page)


def test_refresh_failure_says_what_to_do(class_page: Page, settings) -> None:
    page = class_page
    settings.PLATFORM_TOKEN = "revoked"
    run = _refresh_and_run_the_job(page)
    run.refresh_from_db()
    assert run.status == SyncRun.Status.FAILED, (run.status, run.error)

    status = page.locator("#sync-status")
    expect(status.locator(".error")).to_contain_text("Sync failed", timeout=5_000)
    expect(status.locator(".hint")).to_contain_text("renew PLATFORM_TOKEN")
    expect(status).to_contain_text("Nothing already stored was changed.")
    _assert_polling_stopped(page)

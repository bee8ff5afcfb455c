"""A teacher refreshes a class from the platform in a real Chromium: the button queues a sync, the
status polls in place while the worker runs it, and ends in a result or in what to do about a failure.

No qcluster runs in tests: the test thread plays the worker by calling the task the queue would run.
"""

from __future__ import annotations

import pytest
from django_q.models import OrmQ
from playwright.sync_api import Page, expect

from classroom import tasks
from classroom.models import SyncRun
from tests.browser.pages import log_in
from tests.platform_fixtures import demo_class

pytestmark = pytest.mark.browser

POLL_SECONDS = 1


@pytest.fixture
def class_page(transactional_db, school, platform, page: Page) -> Page:
    """The teacher, logged in through the form, on the page of a class of 5 demo students."""
    school_class = demo_class(school, size=5).school_class
    log_in(page, school.teacher.username)
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

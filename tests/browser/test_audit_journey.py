"""A compliance reviewer's journey through the audit pages in a real Chromium: narrowing the log with
the filter form in place, reading one failed event in the context of its whole job, exporting what
the filters show, and resolving the failure with a note; and a teacher who sees only their classes.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from audit import context
from audit.models import ActivityEvent, Failure
from audit.services import record, record_failure
from classroom.models import User
from tests import factories
from tests.audit.test_search import DOCUMENTED_COLUMNS
from tests.browser.pages import log_in, mark_for_swap, wait_for_swap

pytestmark = pytest.mark.browser

JOB = "job-20260502-nightly"
REMEDIATION = "Check the platform's status page, then press Refresh on the class."


@dataclass
class AuditLog:
    compliance: User
    started: ActivityEvent
    mine_failed: ActivityEvent
    theirs_failed: ActivityEvent
    finished: ActivityEvent
    acknowledged: ActivityEvent
    undelivered: ActivityEvent
    outsider_failed: ActivityEvent


@pytest.fixture
def audit_log(transactional_db, school) -> AuditLog:
    """A nightly sync job that failed for two students of the school, a teacher's acknowledgement
    and a failed nudge from other requests, a failure in another school, and a compliance reviewer."""
    org = school.organisation.pk

    def student_failed(student, why: str) -> ActivityEvent:
        return record_failure(
            verb="sync.student_failed",
            actor_name="system:sync",
            target_type="classroom.student",
            target_id=student.pk,
            organisation_id=student.organisation_id,
            student_id=student.pk,
            why=why,
            remediation=REMEDIATION,
            severity=Failure.Severity.HIGH,
        )

    with context.bind(source="worker", correlation_id=JOB):
        started = record(verb="sync.started", actor_name="system:sync", organisation_id=org, why="nightly")
        mine_failed = student_failed(school.student, "platform returned 503 for this student")
        theirs_failed = student_failed(school.colleague_student, "platform timed out after 15 s")
        finished = record(
            verb="sync.finished", actor_name="system:sync", organisation_id=org, why="synced 38 of 40"
        )
    with context.bind(source="page"):
        acknowledged = record(
            verb="alert.acknowledged",
            actor=school.colleague,
            student_id=school.colleague_student.pk,
            why="called home, homework plan agreed",
        )
    with context.bind(source="worker"):
        undelivered = record_failure(
            verb="dispatch.failed",
            actor_name="system:dispatch",
            organisation_id=org,
            student_id=school.colleague_student.pk,
            why="the platform refused the nudge",
            remediation="Check the student's messaging settings on the platform.",
        )
    with context.bind(source="worker", correlation_id="job-elsewhere"):
        outsider_failed = student_failed(school.outsider_student, "another school's outage")
    compliance = factories.UserFactory(
        username="c.okafor", organisation=school.organisation, role=User.Role.COMPLIANCE
    )
    return AuditLog(
        compliance=compliance,
        started=started,
        mine_failed=mine_failed,
        theirs_failed=theirs_failed,
        finished=finished,
        acknowledged=acknowledged,
        undelivered=undelivered,
        outsider_failed=outsider_failed,
    )


def _row(table: Locator, text: str) -> Locator:
    return table.locator("tbody tr").filter(has_text=text)


def _filter_to_the_failed_sync(page: Page, log: AuditLog) -> Locator:
    page.goto("/audit/")
    expect(page.locator("h1")).to_have_text("Audit log")
    results = page.locator("#results")
    for event in (log.acknowledged, log.undelivered, log.mine_failed, log.finished):
        expect(results).to_contain_text(event.why)
    expect(results).not_to_contain_text(log.outsider_failed.why)

    mark_for_swap(page, "#results")
    page.get_by_label("Status").select_option(label="Failed")
    wait_for_swap(page, "#results")
    expect(page).to_have_url(re.compile(r"[?&]status=failed(&|$)"))
    expect(results).not_to_contain_text(log.acknowledged.why)
    expect(results).to_contain_text(log.undelivered.why)
    expect(results.locator("tbody tr")).to_have_count(3)

    mark_for_swap(page, "#results")
    # Typing is enough: the results follow the text fields as they change, without Enter.
    page.get_by_label("Action").press_sequentially("sync")
    wait_for_swap(page, "#results")
    # The address bar keeps only the filters in use, so the link can be shared as it is.
    expect(page).to_have_url(re.compile(r"/audit/\?action=sync&status=failed$"))
    expect(results).not_to_contain_text(log.undelivered.why)
    expect(results.get_by_text("Showing 2 events")).to_be_visible()
    expect(results.locator("tbody tr")).to_have_count(2)
    return results


def _event_page_shows_the_whole_job(page: Page, log: AuditLog) -> None:
    event = log.mine_failed
    expect(page).to_have_url(re.compile(rf"/audit/events/{event.pk}/$"))
    expect(page.locator("h1")).to_contain_text("sync.student_failed")
    expect(page.locator("h1")).to_contain_text("Failed")
    expect(page.locator("dl")).to_contain_text(event.why)
    expect(page.locator("dl")).to_contain_text(JOB)
    failure = page.locator("section").filter(
        has=page.get_by_role("heading", name=re.compile(r"^Failure open · High severity"))
    )
    expect(failure).to_contain_text(f"Remediation: {REMEDIATION}")

    job = page.locator("section").filter(
        has=page.get_by_role("heading", name="The whole request or job (4 events with this correlation id)")
    )
    rows = job.locator("tbody tr")
    expect(rows.locator("td code")).to_have_text(
        ["sync.started", "sync.student_failed", "sync.student_failed", "sync.finished"]
    )
    expect(rows.nth(1)).to_contain_text("(this event)")
    expect(_row(job, log.theirs_failed.why).get_by_role("link")).to_have_attribute(
        "href", f"/audit/events/{log.theirs_failed.pk}/"
    )
    expect(job).not_to_contain_text(log.acknowledged.why)


def _download_csv(page: Page, results: Locator) -> tuple[str, list[str], list[dict[str, str]]]:
    """Click the export link and read the file the browser saved: its name, header and rows."""
    with page.expect_download() as download_info:
        results.get_by_role("link", name="Export these as CSV").click()
    download = download_info.value
    with Path(download.path()).open(newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
    return download.suggested_filename, list(reader.fieldnames or []), rows


def test_compliance_filters_reads_the_job_exports_and_resolves(page: Page, audit_log: AuditLog) -> None:
    log = audit_log
    log_in(page, log.compliance.username)
    results = _filter_to_the_failed_sync(page, log)

    _row(results, log.mine_failed.why).get_by_role("link").first.click()
    _event_page_shows_the_whole_job(page, log)

    page.go_back()
    expect(page).to_have_url(re.compile(r"[?&]action=sync(&|$)"))
    expect(results.locator("tbody tr")).to_have_count(2)
    filename, header, rows = _download_csv(page, results)
    assert re.fullmatch(r"audit-\d{8}-\d{6}\.csv", filename), filename
    assert header == DOCUMENTED_COLUMNS
    assert [int(row["id"]) for row in rows] == [log.theirs_failed.pk, log.mine_failed.pk]
    assert {(row["verb"], row["status"], row["correlation_id"]) for row in rows} == {
        ("sync.student_failed", "failed", JOB)
    }
    export = ActivityEvent.objects.get(verb="audit.exported")
    assert export.actor_id == log.compliance.pk
    assert export.details["filters"] == {"action": "sync", "status": "failed"}

    page.goto("/audit/?action=audit.exported")
    expect(_row(page.locator("#results"), log.compliance.username)).to_contain_text("CSV export")

    page.get_by_role("link", name="Open failures").click()
    expect(page.locator("h1")).to_have_text("Open failures")
    failures = page.locator("table")
    expect(failures.locator("tbody tr")).to_have_count(3)
    mine = _row(failures, log.mine_failed.why)
    expect(mine).to_contain_text(REMEDIATION)
    expect(failures).not_to_contain_text(log.outsider_failed.why)

    note = "Platform outage confirmed by their status page; class refreshed at 09:10."
    mine.get_by_label("Resolution note").fill(note)
    mine.get_by_role("button", name="Resolve").click()

    expect(page).to_have_url(re.compile(r"/audit/failures/$"))
    expect(page.get_by_role("status")).to_contain_text(f"Resolved: {log.mine_failed.why}")
    expect(mine).to_have_count(0)
    expect(failures.locator("tbody tr")).to_have_count(2)
    resolved = ActivityEvent.objects.get(verb="failure.resolved")
    assert (resolved.actor_id, resolved.why, resolved.student_id) == (
        log.compliance.pk,
        note,
        log.mine_failed.student_id,
    )

    page.goto(f"/audit/events/{log.mine_failed.pk}/")
    failure = page.locator("section").filter(has=page.get_by_role("heading", name=re.compile(r"^Failure")))
    expect(failure.get_by_role("heading")).to_contain_text("Failure resolved")
    expect(failure).to_contain_text(note)


def test_a_teacher_sees_only_their_own_students_events(page: Page, school, audit_log: AuditLog) -> None:
    log_in(page, school.teacher.username)
    page.goto("/audit/")
    results = page.locator("#results")
    expect(results).to_contain_text(audit_log.mine_failed.why)
    expect(results).not_to_contain_text(audit_log.acknowledged.why)
    expect(results).not_to_contain_text(audit_log.theirs_failed.why)
    response = page.goto(f"/audit/events/{audit_log.acknowledged.pk}/")
    assert response is not None and response.status == 404

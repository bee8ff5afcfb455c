"""A teacher's journey through the console in a real Chromium: from the dashboard to a student at
risk in one or two clicks, filtering and sorting the roster with htmx, acknowledging an alert."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from classroom.demo import demo_school_seed
from tests.browser.pages import log_in, mark_for_swap, wait_for_swap

pytestmark = pytest.mark.browser

TEACHER, PASSWORD = "ms.rivera", "demo-teacher"
MAX_CLICKS_TO_A_STUDENT = 2


@pytest.fixture
def demo_school(transactional_db) -> None:
    demo_school_seed(class_size=25)


def _log_in_to_dashboard(page: Page) -> None:
    log_in(page, TEACHER, PASSWORD)
    expect(page).to_have_url(re.compile(r"/dashboard/$"))
    expect(page.locator("h1")).to_have_text("Classroom health")


def _first_widget_alert(page: Page) -> Locator:
    alert = page.locator("article.widget li.alert-item").first
    expect(alert).to_be_visible()
    return alert


def _student_page_shows(page: Page, *, href: str, name: str) -> None:
    expect(page).to_have_url(re.compile(re.escape(href) + "$"))
    expect(page.locator("h1")).to_have_text(name)


def test_alerted_student_is_one_click_from_the_dashboard(page: Page, demo_school: None) -> None:
    _log_in_to_dashboard(page)
    alert = _first_widget_alert(page)
    link = alert.locator("a.alert-student")
    name, href = link.inner_text().strip(), link.get_attribute("href")
    summary = alert.locator(".alert-summary").inner_text().strip()
    assert name and summary

    clicks = 0
    link.click()
    clicks += 1

    _student_page_shows(page, href=href, name=name)
    alerts_section = page.locator("section").filter(
        has=page.get_by_role("heading", name="Alerts", exact=True)
    )
    expect(alerts_section.locator(".alert-summary").filter(has_text=summary)).to_be_visible()
    assert clicks <= MAX_CLICKS_TO_A_STUDENT


def test_alerted_student_is_two_clicks_away_through_their_class(page: Page, demo_school: None) -> None:
    _log_in_to_dashboard(page)
    link = _first_widget_alert(page).locator("a.alert-student")
    name, href = link.inner_text().strip(), link.get_attribute("href")
    # The dashboard roster names each student's classes: reading it tells which card to open.
    roster_cell = page.locator(f"#roster td:has(a[href='{href}'])")
    class_name = roster_cell.locator("small").inner_text().split(", ")[0]

    clicks = 0
    page.locator("a.class-card").filter(has_text=class_name).click()
    clicks += 1
    expect(page).to_have_url(re.compile(r"/classes/\d+/$"))
    expect(page.locator("h1")).to_have_text(class_name)

    page.locator(f"#roster table.roster-table tbody a[href='{href}']").click()
    clicks += 1

    _student_page_shows(page, href=href, name=name)
    expect(page.locator("p.crumbs")).to_contain_text(class_name)
    assert clicks <= MAX_CLICKS_TO_A_STUDENT


def _students_with_open_alerts_on_cards(page: Page) -> int:
    total = 0
    for text in page.locator("a.class-card").all_inner_texts():
        total += int(re.search(r"(\d+) with open alerts", text).group(1))
    return total


def test_roster_filters_and_sorts_in_place(page: Page, demo_school: None) -> None:
    _log_in_to_dashboard(page)
    roster = page.locator("#roster")
    rows = roster.locator("table.roster-table tbody tr")
    everyone = rows.count()
    at_risk = _students_with_open_alerts_on_cards(page)
    assert 0 < at_risk < everyone, "the demo school should have students with and without alerts"

    mark_for_swap(page, "#roster")
    roster.locator("select[name=status]").select_option(label="With open alerts")
    wait_for_swap(page, "#roster")

    expect(page).to_have_url(re.compile(r"[?&]status=at_risk(&|$)"))
    expect(roster.locator(".roster-count")).to_have_text(f"{at_risk} students")
    expect(rows).to_have_count(at_risk)
    for row in rows.all():
        expect(row.locator("span.badge.risk").first).to_be_visible()

    mark_for_swap(page, "#roster")
    roster.get_by_role("link", name="Student", exact=True).click()
    wait_for_swap(page, "#roster")

    expect(page).to_have_url(re.compile(r"[?&]sort=name(&|$)"))
    expect(page).to_have_url(re.compile(r"[?&]status=at_risk(&|$)"))
    expect(rows).to_have_count(at_risk)
    names = rows.locator("td:first-child > a").all_inner_texts()
    # Names read "First Last" and the roster orders by last name, then first name.
    keys = [tuple(reversed(n.rsplit(" ", 1))) for n in names]
    assert keys[0] <= keys[1], f"{names[0]!r} is listed before {names[1]!r}"
    assert keys == sorted(keys), names


def test_acknowledge_marks_the_alert_in_place_and_sticks(page: Page, demo_school: None) -> None:
    _log_in_to_dashboard(page)
    alert = page.locator("article.widget li.alert-item.state-open").first
    expect(alert).to_be_visible()
    alert_id = alert.get_attribute("id")
    item = page.locator(f"#{alert_id}")
    expect(item.locator(".badge", has_text="acknowledged")).to_have_count(0)

    page.evaluate("window.__marker = 1")
    item.get_by_role("button", name="Acknowledge").click()

    expect(item.locator(".badge", has_text="acknowledged")).to_be_visible()
    expect(item.get_by_role("button", name="Acknowledge")).to_have_count(0)
    expect(item.get_by_role("button", name="Resolve")).to_be_visible()
    assert page.evaluate("window.__marker") == 1, "acknowledging reloaded the whole page"

    page.reload()
    assert page.evaluate("window.__marker") is None
    expect(item.locator(".badge", has_text="acknowledged")).to_be_visible()
    expect(item.get_by_role("button", name="Acknowledge")).to_have_count(0)

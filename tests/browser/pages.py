"""What every browser journey does the same way: log in through the form, and tell an htmx swap
of a part of the page from a full reload."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests import factories


def log_in(page: Page, username: str, password: str = factories.PASSWORD) -> None:
    """Through the login form, as a person would; lands wherever the form sends them."""
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page).not_to_have_url(re.compile(r"/accounts/login/"))


def mark_for_swap(page: Page, selector: str) -> None:
    """Tag the loaded document and the element at `selector`: a full reload drops the window
    marker, and an htmx swap replaces the tagged element with an untagged one."""
    page.evaluate("window.__marker = 1")
    page.evaluate(f"document.querySelector({selector!r}).dataset.stale = '1'")


def wait_for_swap(page: Page, selector: str) -> None:
    """After `mark_for_swap`: the element was swapped in place, and the page did not reload."""
    expect(page.locator(f"{selector}:not([data-stale])")).to_have_count(1)
    assert page.evaluate("window.__marker") == 1, f"the page reloaded instead of swapping {selector}"

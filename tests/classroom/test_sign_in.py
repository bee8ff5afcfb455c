"""Sign-in throttling: by account and by address, the lock-out page, and what compliance staff see.

Every request goes through the real middleware stack with its own REMOTE_ADDR, as a browser
behind a different address would."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta
from io import StringIO
from pathlib import Path

from axes.models import AccessAttempt
from django.core.management import call_command
from django.db.models import F
from django.test import Client

from audit.models import ActivityEvent
from classroom.models import User
from tests import factories
from tests.conftest import login
from tests.factories import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"
HOME = "198.51.100.7"


def _sign_in(username: str, password: str, address: str = HOME, path: str = LOGIN, **headers: str):
    """A fresh browser (no session) posting the login form from `address`."""
    return Client().post(path, {"username": username, "password": password}, REMOTE_ADDR=address, **headers)


def _signed_in(response) -> bool:
    return response.status_code == 302 and "_auth_user_id" in response.client.session


def _fail(username: str, times: int, address: str = HOME) -> list[int]:
    return [_sign_in(username, "wrong-password", address).status_code for _ in range(times)]


def _main(response) -> str:
    """The page's own content, without the CSRF token that differs per request."""
    return response.content.decode().partition("<main>")[2].partition("</main>")[0]


def test_wrong_passwords_lock_the_account_and_then_even_the_right_one_is_refused(school):
    assert _fail(school.teacher.username, 4) == [200, 200, 200, 200]
    assert _fail(school.teacher.username, 1) == [429]
    refused = _sign_in(school.teacher.username, PASSWORD)
    assert refused.status_code == 429
    assert not _signed_in(refused)


def test_an_account_locks_whatever_addresses_the_guesses_come_from(school):
    for i in range(5):
        _fail(school.teacher.username, 1, address=f"192.0.2.{i + 1}")
    refused = _sign_in(school.teacher.username, PASSWORD, address="192.0.2.200")
    assert refused.status_code == 429
    # The colleague's account was not tried from that address, so it is not locked.
    assert _signed_in(_sign_in(school.colleague.username, PASSWORD, address="192.0.2.201"))


def test_one_address_trying_many_accounts_is_locked(school):
    for username in ["someone-0", "someone-1", school.colleague.username, "someone-3"]:
        assert _fail(username, 1) == [200]
    assert _fail("someone-4", 1) == [429]
    # Not even a right password for an account never tried gets in from that address...
    assert _sign_in(school.teacher.username, PASSWORD).status_code == 429
    # ...while the same account signs in from anywhere else.
    assert _signed_in(_sign_in(school.teacher.username, PASSWORD, address="192.0.2.50"))


def test_a_successful_sign_in_resets_the_accounts_count(school):
    assert _fail(school.teacher.username, 4) == [200] * 4
    assert _signed_in(_sign_in(school.teacher.username, PASSWORD))
    assert _fail(school.teacher.username, 4) == [200] * 4
    assert _fail(school.teacher.username, 1) == [429]


def test_signing_in_to_ones_own_account_does_not_clear_the_guesses_at_another(school):
    """An attacker who owns an account must not reset the counts of the accounts they attack."""
    assert _fail(school.colleague.username, 4) == [200] * 4
    assert _signed_in(_sign_in(school.teacher.username, PASSWORD))
    assert _fail(school.colleague.username, 1, address="192.0.2.9") == [429]


def test_the_lock_out_page_says_when_to_try_again_and_how_to_be_unlocked_sooner(school):
    _fail(school.teacher.username, 4)
    response = _sign_in(school.teacher.username, "wrong-password")
    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    page = response.content.decode()
    assert 'class="topbar"' in page  # the site's layout
    assert "Too many failed sign-ins" in page
    assert re.search(r"try again after <strong>\d\d:\d\d UTC</strong>", page)
    assert "15 minutes" in page
    assert "manage.py axes_reset_username " + school.teacher.username in page
    assert "Access attempts" in page
    assert "wrong-password" not in page


def test_the_lock_out_page_does_not_tell_whether_the_username_exists(school):
    _fail(school.teacher.username, 4)
    known = _sign_in(school.teacher.username, "wrong-password")
    _fail("nobody-by-that-name", 4, address="192.0.2.77")
    unknown = _sign_in("nobody-by-that-name", "wrong-password", address="192.0.2.77")
    assert known.status_code == unknown.status_code == 429

    def same(response, username: str, address: str) -> str:
        page = _main(response).replace(username, "NAME").replace(address, "ADDRESS")
        return re.sub(r"\d\d:\d\d", "HH:MM", page)

    assert same(known, school.teacher.username, HOME) == same(unknown, "nobody-by-that-name", "192.0.2.77")


def test_the_lock_out_ends_after_the_cool_off(school):
    _fail(school.teacher.username, 5)
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=16))
    assert _signed_in(_sign_in(school.teacher.username, PASSWORD))


def test_an_admin_unlocks_an_account_at_once_with_axes_reset_username(school):
    _fail(school.teacher.username, 5)
    call_command("axes_reset_username", school.teacher.username, stdout=StringIO())
    assert _signed_in(_sign_in(school.teacher.username, PASSWORD))


def test_the_admin_sign_in_is_throttled_the_same_way(school):
    admin = factories.UserFactory(is_staff=True, is_superuser=True)
    statuses = [_sign_in(admin.username, "wrong-password", path=ADMIN_LOGIN).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]
    refused = _sign_in(admin.username, PASSWORD, path=ADMIN_LOGIN)
    assert refused.status_code == 429
    assert "Too many failed sign-ins" in refused.content.decode()


def test_the_limit_and_the_cool_off_are_settings(school, settings):
    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = timedelta(minutes=1)
    assert _fail(school.teacher.username, 2) == [200, 429]
    assert _sign_in(school.teacher.username, PASSWORD)["Retry-After"] == "60"


def test_the_settings_come_from_the_environment():
    environment = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    environment.update(AXES_FAILURE_LIMIT="7", AXES_COOLOFF_MINUTES="30", TRUSTED_PROXY_COUNT="2")
    show = (
        "from django.conf import settings as s; "
        "print(s.AXES_FAILURE_LIMIT, s.AXES_COOLOFF_TIME, s.TRUSTED_PROXY_COUNT)"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", show],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.split() == ["7", "0:30:00", "2"], result.stderr


def test_failed_sign_ins_and_the_lock_out_are_in_the_audit_log_of_the_accounts_organisation(client, school):
    compliance = factories.UserFactory(organisation=school.organisation, role=User.Role.COMPLIANCE)
    elsewhere = factories.UserFactory(organisation=school.outsider.organisation, role=User.Role.COMPLIANCE)
    _fail(school.teacher.username, 6, address="203.0.113.7")
    _fail("nobody-by-that-name", 1, address="203.0.113.8")

    page = login(client, compliance).get("/audit/", {"action": "user"}).content.decode()
    assert page.count("<code>user.login_failed</code>") == 6
    assert page.count("<code>user.locked_out</code>") == 1
    assert "from 203.0.113.7" in page
    assert "refused while sign-in is locked" in page  # the sixth: its password was never checked
    assert "nobody-by-that-name" not in page and "203.0.113.8" not in page

    other = login(Client(), elsewhere).get("/audit/", {"action": "user"}).content.decode()
    assert "<code>user.login_failed</code>" not in other

    failed = ActivityEvent.objects.filter(verb="user.login_failed").order_by("id")
    assert [e.organisation_id for e in failed] == [school.organisation.pk] * 6 + [None]
    assert {e.details["address"] for e in failed} == {"203.0.113.7", "203.0.113.8"}
    assert "wrong-password" not in str(list(ActivityEvent.objects.values_list("details", "why")))
    locked = ActivityEvent.objects.get(verb="user.locked_out")
    assert locked.actor_name == school.teacher.username
    assert locked.details["address"] == "203.0.113.7"
    assert locked.details["failures"] == 5


def test_x_forwarded_for_is_ignored_unless_proxies_are_trusted(school):
    """Rotating the header does not escape the address's count: it is REMOTE_ADDR's."""
    statuses = [
        _sign_in(f"someone-{i}", "wrong-password", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}").status_code
        for i in range(5)
    ]
    assert statuses == [200, 200, 200, 200, 429]
    addresses = ActivityEvent.objects.filter(verb="user.login_failed").values_list(
        "details__address", flat=True
    )
    assert set(addresses) == {HOME}


def test_behind_trusted_proxies_the_address_is_the_one_the_outermost_proxy_saw(school, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = "10.0.0.2"
    for i in range(5):
        _sign_in(f"someone-{i}", "wrong-password", address=proxy, HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.5")
    # That client is locked; another behind the same proxy is not.
    locked = _sign_in(school.teacher.username, PASSWORD, proxy, HTTP_X_FORWARDED_FOR="203.0.113.5")
    assert locked.status_code == 429
    assert _signed_in(_sign_in(school.teacher.username, PASSWORD, proxy, HTTP_X_FORWARDED_FOR="203.0.113.6"))
    # A header that is not an address falls back to the proxy's own.
    _sign_in("someone-else", "wrong-password", address=proxy, HTTP_X_FORWARDED_FOR="unknown")
    addresses = ActivityEvent.objects.filter(verb="user.login_failed").values_list(
        "details__address", flat=True
    )
    assert set(addresses) == {"203.0.113.5", proxy}

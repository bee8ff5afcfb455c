"""API tokens: expiry, last use, revocation (admin, command, password change) and the 401s that say why."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import ActivityEvent
from classroom.api_auth import api_token_create
from classroom.models import ApiToken
from tests import factories
from tests.conftest import login
from tests.factories import PASSWORD

URL = "/api/schedules"
REVOKED_FOR_PASSWORD = "revoked because the password changed"


def _call(token: str, client: Client | None = None):
    return (client or Client()).get(URL, HTTP_AUTHORIZATION=f"Bearer {token}", REMOTE_ADDR="198.51.100.7")


def _row(token: str) -> ApiToken:
    return ApiToken.objects.get(prefix=token[:10])


def _close(when, expected) -> bool:
    return abs(when - expected) < timedelta(minutes=1)


def _revocations() -> list[tuple[str, int | None, str]]:
    return list(
        ActivityEvent.objects.filter(verb="api_token.revoked")
        .order_by("id")
        .values_list("target_id", "organisation_id", "why")
    )


def test_a_new_token_expires_after_api_token_ttl_days(school, settings):
    assert _close(_row(api_token_create(user=school.teacher)).expires_at, timezone.now() + timedelta(days=90))
    settings.API_TOKEN_TTL_DAYS = 30
    assert _close(_row(api_token_create(user=school.teacher)).expires_at, timezone.now() + timedelta(days=30))


def test_create_api_token_takes_days_and_says_when_the_token_expires(school, capsys):
    call_command("create_api_token", school.teacher.username, "--name", "learner app", "--days", "7")
    out, err = capsys.readouterr()
    token = out.strip()
    assert token.startswith("pt_") and "\n" not in token  # stdout stays the token alone, for scripts
    row = _row(token)
    assert row.name == "learner app"
    assert _close(row.expires_at, timezone.now() + timedelta(days=7))
    assert f"expires {row.expires_at:%Y-%m-%d %H:%M} UTC (in 7 days)" in err
    with pytest.raises(CommandError, match="--days must be at least 1"):
        call_command("create_api_token", school.teacher.username, "--days", "0")


def test_an_expired_token_is_401_with_a_detail_that_says_so_and_how_to_get_another(school):
    token = api_token_create(user=school.teacher)
    assert _call(token).status_code == 200
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    response = _call(token)
    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "unauthorized" and body["fields"] == {}
    assert f"{token[:10]}… expired on" in body["detail"]
    assert "create_api_token" in body["detail"]


def test_a_revoked_token_is_401_with_a_detail_that_says_so(school):
    token = api_token_create(user=school.teacher)
    call_command("revoke_api_token", token[:10], stdout=StringIO())
    body = _call(token).json()
    assert body["error"] == "unauthorized" and body["fields"] == {}
    assert f"{token[:10]}… was revoked on" in body["detail"]
    assert "create_api_token" in body["detail"]


def test_an_unknown_token_keeps_the_general_401(school):
    body = _call("pt_not-a-token").json()
    assert body == {
        "error": "unauthorized",
        "detail": "send Authorization: Bearer <token> (manage.py create_api_token USERNAME)",
        "fields": {},
    }


def test_the_last_use_is_written_at_most_every_five_minutes(school):
    token = api_token_create(user=school.teacher)
    assert _row(token).last_used_at is None
    _call(token)
    first = _row(token).last_used_at
    assert first is not None
    _call(token)
    assert _row(token).last_used_at == first
    ApiToken.objects.update(last_used_at=first - timedelta(minutes=6))
    _call(token)
    assert _row(token).last_used_at > first


def test_revoke_api_token_by_prefix_revokes_that_token_and_records_it(school, capsys):
    token = api_token_create(user=school.teacher)
    other = api_token_create(user=school.teacher)
    call_command("revoke_api_token", token[:10])
    assert f"revoked {token[:10]}…" in capsys.readouterr().out
    assert _call(token).status_code == 401
    assert _call(other).status_code == 200
    row = _row(token)
    assert _revocations() == [
        (
            str(row.pk),
            school.organisation.pk,
            f"API token {token[:10]}… of {school.teacher.username} revoked with manage.py revoke_api_token",
        ),
    ]
    call_command("revoke_api_token", token[:10])
    assert "already revoked" in capsys.readouterr().out
    assert len(_revocations()) == 1


def test_revoke_api_token_user_revokes_all_of_that_users_active_tokens(school, capsys):
    mine = [api_token_create(user=school.teacher) for _ in range(2)]
    theirs = api_token_create(user=school.colleague)
    call_command("revoke_api_token", "--user", school.teacher.username)
    assert "revoked 2 token(s)" in capsys.readouterr().out
    assert [_call(token).status_code for token in mine] == [401, 401]
    assert _call(theirs).status_code == 200
    assert len(_revocations()) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pt_unknown"], "no API token with prefix 'pt_unknown'"),
        (["--user", "ghost"], "no user 'ghost'"),
        ([], "give a token's PREFIX or --user USERNAME"),
    ],
)
def test_revoke_api_token_refuses_what_it_cannot_find_in_one_line(school, args, message):
    api_token_create(user=school.teacher)
    with pytest.raises(CommandError) as refused:
        call_command("revoke_api_token", *args)
    assert str(refused.value) == message
    assert refused.value.returncode != 0
    assert ApiToken.objects.filter(revoked_at__isnull=False).count() == 0


def test_the_admin_lists_tokens_and_never_shows_their_hash(client, school):
    token = api_token_create(user=school.teacher, name="learner app")
    api_token_create(user=school.colleague)
    row = _row(token)
    admin = factories.UserFactory(is_staff=True, is_superuser=True)
    login(client, admin)
    listing = client.get(reverse("admin:classroom_apitoken_changelist"))
    page = listing.content.decode()
    assert listing.status_code == 200
    for text in (token[:10], school.teacher.username, "learner app", "Last used", "Expires", "Revoked"):
        assert text in page
    assert row.key_hash not in page
    found = client.get(reverse("admin:classroom_apitoken_changelist"), {"q": school.teacher.username})
    assert token[:10] in found.content.decode()
    assert school.colleague.username not in found.content.decode()
    for state in ("active", "expired", "revoked"):
        assert client.get(reverse("admin:classroom_apitoken_changelist"), {"state": state}).status_code == 200
    detail = client.get(reverse("admin:classroom_apitoken_change", args=[row.pk]))
    assert detail.status_code == 200
    assert row.key_hash not in detail.content.decode()
    assert 'name="key_hash"' not in detail.content.decode()
    assert client.get(reverse("admin:classroom_apitoken_add")).status_code == 403


def test_the_admin_action_revokes_each_selected_token_through_the_service(client, school):
    tokens = [api_token_create(user=school.teacher), api_token_create(user=school.colleague)]
    kept = api_token_create(user=school.teacher)
    admin = factories.UserFactory(is_staff=True, is_superuser=True)
    login(client, admin)
    response = client.post(
        reverse("admin:classroom_apitoken_changelist"),
        {"action": "revoke", "_selected_action": [_row(t).pk for t in tokens]},
        follow=True,
    )
    assert "Revoked 2 token(s)" in response.content.decode()
    assert [_call(t).status_code for t in tokens] == [401, 401]
    assert _call(kept).status_code == 200
    events = ActivityEvent.objects.filter(verb="api_token.revoked")
    assert events.count() == 2
    assert set(events.values_list("actor_id", "why")) == {
        (admin.pk, f"API token {t[:10]}… of {u.username} revoked in the Django admin")
        for t, u in zip(tokens, [school.teacher, school.colleague], strict=True)
    }


def test_a_staff_member_who_may_only_view_tokens_cannot_revoke_them(client, school):
    token = api_token_create(user=school.teacher)
    login(client, school.outsider)
    assert client.get(reverse("admin:classroom_apitoken_changelist")).status_code == 302
    viewer = factories.UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_apitoken"))
    login(client, viewer)
    assert client.get(reverse("admin:classroom_apitoken_changelist")).status_code == 200
    client.post(
        reverse("admin:classroom_apitoken_changelist"),
        {"action": "revoke", "_selected_action": [_row(token).pk]},
    )
    assert _call(token).status_code == 200


def test_set_password_and_save_revokes_the_users_active_tokens(school):
    mine = [api_token_create(user=school.teacher) for _ in range(2)]
    theirs = api_token_create(user=school.colleague)
    school.teacher.set_password("a-new-password-1")
    school.teacher.save()
    assert [_call(t).status_code for t in mine] == [401, 401]
    assert "was revoked on" in _call(mine[0]).json()["detail"]
    assert _call(theirs).status_code == 200
    assert [(org, why.endswith(REVOKED_FOR_PASSWORD)) for _, org, why in _revocations()] == [
        (school.organisation.pk, True),
        (school.organisation.pk, True),
    ]


def test_changing_a_password_in_the_admin_revokes_the_tokens(client, school):
    token = api_token_create(user=school.teacher)
    login(client, factories.UserFactory(is_staff=True, is_superuser=True))
    response = client.post(
        f"/admin/classroom/user/{school.teacher.pk}/password/",
        {"password1": "a-new-password-1", "password2": "a-new-password-1", "usable_password": "true"},
    )
    assert response.status_code == 302
    assert _call(token).status_code == 401
    assert _revocations()[0][2].endswith(REVOKED_FOR_PASSWORD)


def test_disabling_password_sign_in_in_the_admin_revokes_the_tokens(client, school):
    token = api_token_create(user=school.teacher)
    login(client, factories.UserFactory(is_staff=True, is_superuser=True))
    response = client.post(
        f"/admin/classroom/user/{school.teacher.pk}/password/",
        {"usable_password": "false", "unset-password": "1"},
    )
    assert response.status_code == 302
    school.teacher.refresh_from_db()
    assert not school.teacher.has_usable_password()
    assert _call(token).status_code == 401


def test_changepassword_revokes_the_tokens(school, monkeypatch):
    token = api_token_create(user=school.teacher)
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "a-new-password-1")
    call_command("changepassword", school.teacher.username, stdout=StringIO())
    assert _call(token).status_code == 401
    assert _revocations()[0][2].endswith(REVOKED_FOR_PASSWORD)


def test_a_password_change_that_rolls_back_keeps_the_tokens(school):
    token = api_token_create(user=school.teacher)
    with pytest.raises(RuntimeError), transaction.atomic():
        school.teacher.set_password("a-new-password-1")
        school.teacher.save()
        raise RuntimeError("the rest of the change failed")
    assert _call(token).status_code == 200
    assert _revocations() == []


def test_saves_that_leave_the_password_alone_keep_the_tokens(school, settings):
    token = api_token_create(user=school.teacher)
    school.teacher.first_name = "Renamed"
    school.teacher.save()
    # A sign-in that upgrades the stored hash to the preferred hasher keeps the same password.
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.ScryptPasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    signed_in = Client().post(
        "/accounts/login/",
        {"username": school.teacher.username, "password": PASSWORD},
        REMOTE_ADDR="198.51.100.7",
    )
    assert signed_in.status_code == 302
    school.teacher.refresh_from_db()
    assert school.teacher.password.startswith("scrypt$")
    assert _call(token).status_code == 200
    assert _revocations() == []

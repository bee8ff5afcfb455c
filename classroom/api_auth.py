"""Who is calling the JSON API: a bearer token from `create_api_token`, or the signed-in session;
and the services that make and revoke tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from ninja.errors import AuthenticationError
from ninja.security import HttpBearer, SessionAuth

from audit.services import record
from classroom.models import ApiToken, Organisation, User

TOKEN_PREFIX = "pt_"
# last_used_at is written at most this often per token, not on every request.
TOUCH_EVERY = timedelta(minutes=5)
# What a refused token's 401 tells its holder to do.
AGAIN = "ask an admin for a new one (manage.py create_api_token USERNAME)"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def api_token_create(*, user: User, name: str = "", days: int | None = None, by: User | None = None) -> str:
    """A new token for `user` that works for `days` (API_TOKEN_TTL_DAYS unless given); returns it
    (shown once: only its digest is kept)."""
    days = settings.API_TOKEN_TTL_DAYS if days is None else days
    if days < 1:
        raise ValueError(f"a token must work for at least 1 day; got {days}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=token[:10],
        key_hash=digest(token),
        expires_at=timezone.now() + timedelta(days=days),
    )
    record(
        verb="api_token.created",
        actor=by,
        actor_name="" if by else "system:command",
        target=row,
        organisation_id=user.organisation_id,
        why=f"API token {row.prefix}… for {user.get_username()}, expires {format_moment(row.expires_at)}",
    )
    return token


@transaction.atomic
def service_account(*, name: str, organisation: Organisation) -> User:
    """The account a learner app's service tokens belong to: role `service`, no password, acting
    only for learners of `organisation` (through X-User-ID). Made on first use, with its event."""
    username = f"service:{name}"
    user = User.objects.filter(username=username).first()
    if user is not None:
        if user.role != User.Role.SERVICE or user.organisation_id != organisation.pk:
            raise ValueError(f"{username} already exists for another organisation or role")
        return user
    user = User(username=username, role=User.Role.SERVICE, organisation=organisation)
    user.set_unusable_password()
    user.save()
    record(
        verb="user.service_account_created",
        actor_name="system:command",
        target=user,
        organisation_id=organisation.pk,
        why=f"service account {username} for {organisation.name}'s learner app",
    )
    return user


@transaction.atomic
def api_token_revoke(
    *, token: ApiToken, why: str, by: User | None = None, actor_name: str = "system:command"
) -> bool:
    """Revoke `token` unless it already is; True when this call revoked it. `why` completes the
    event's rationale, "API token pt_…… of NAME <why>"; `actor_name` names automation when no
    person `by` does it."""
    now = timezone.now()
    if not ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now):
        return False
    token.revoked_at = now
    record(
        verb="api_token.revoked",
        actor=by,
        actor_name="" if by else actor_name,
        target=token,
        organisation_id=token.user.organisation_id,
        why=f"API token {token.prefix}… of {token.user.get_username()} {why}",
    )
    return True


@transaction.atomic
def api_token_revoke_all(
    *, user: User, why: str, by: User | None = None, actor_name: str = "system:command"
) -> int:
    """Revoke every token of `user` that still works, each with its event; how many."""
    revoked = 0
    for token in ApiToken.objects.active().filter(user=user):
        token.user = user
        revoked += api_token_revoke(token=token, why=why, by=by, actor_name=actor_name)
    return revoked


def format_moment(moment: datetime) -> str:
    """A time as the API, the commands and the audit log show it: local time, to the minute."""
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M %Z}"


class TokenRefused(AuthenticationError):
    """A token we know that no longer works: the 401 says why and how to get another."""


class TokenAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> Any:
        row = (
            ApiToken.objects.select_related("user")
            .filter(key_hash=digest(token), user__is_active=True)
            .first()
        )
        if row is None:
            return None
        if row.state == ApiToken.State.REVOKED:
            raise TokenRefused(
                message=f"the token {row.prefix}… was revoked on {format_moment(row.revoked_at)}; {AGAIN}"
            )
        if row.state == ApiToken.State.EXPIRED:
            raise TokenRefused(
                message=f"the token {row.prefix}… expired on {format_moment(row.expires_at)}; {AGAIN}"
            )
        now = timezone.now()
        if row.last_used_at is None or now - row.last_used_at > TOUCH_EVERY:
            ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
        request.user = row.user
        return row.user


class ConsoleSession(SessionAuth):
    """The console's own session (with its CSRF token). A request that carries no session cookie is
    not a session request: django-ninja would check its CSRF token anyway and answer 403, where a
    client that sent no or a wrong bearer token must hear 401."""

    def __call__(self, request: HttpRequest) -> Any:
        if settings.SESSION_COOKIE_NAME not in request.COOKIES:
            return None
        return super().__call__(request)


API_AUTH = [TokenAuth(), ConsoleSession()]

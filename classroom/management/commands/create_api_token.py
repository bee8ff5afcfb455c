from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit import context
from classroom.api_auth import api_token_create, digest, format_moment
from classroom.models import ApiToken, User


class Command(BaseCommand):
    help = (
        "Print a new bearer token for the JSON API, for USERNAME (only its digest is stored); "
        "it works for API_TOKEN_TTL_DAYS days unless --days says otherwise."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="what the token is for, e.g. 'learner app'")
        parser.add_argument("--days", type=int, help="how many days it works (default: API_TOKEN_TTL_DAYS)")

    def handle(self, *args: Any, username: str, name: str, days: int | None, **options: Any) -> None:
        days = settings.API_TOKEN_TTL_DAYS if days is None else days
        if days < 1:
            raise CommandError("--days must be at least 1")
        user = User.objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"no active user {username!r}")
        with context.bind(source="command"):
            token = api_token_create(user=user, name=name, days=days)
        expires_at = ApiToken.objects.get(key_hash=digest(token)).expires_at
        # The token alone on stdout, for scripts to take; the note for people on stderr.
        self.stdout.write(token)
        self.stderr.write(f"expires {format_moment(expires_at)} (in {days} day{'' if days == 1 else 's'})")

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit import context
from classroom.api_auth import api_token_revoke, api_token_revoke_all, format_moment
from classroom.models import ApiToken, User

WHY = "revoked with manage.py revoke_api_token"


class Command(BaseCommand):
    help = (
        "Revoke the JSON API token with PREFIX (its first 10 characters, listed in Admin → API "
        "tokens), or with --user USERNAME every token of that user that still works."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("prefix", nargs="?", help="the token's prefix, e.g. pt_AbCdEfG")
        parser.add_argument("--user", help="revoke all of this user's active tokens instead")

    def handle(self, *args: Any, prefix: str | None, user: str | None, **options: Any) -> None:
        if bool(prefix) == bool(user):
            raise CommandError("give a token's PREFIX or --user USERNAME")
        with context.bind(source="command"):
            if user:
                self._revoke_all(user)
            else:
                self._revoke(prefix)

    def _revoke_all(self, username: str) -> None:
        owner = User.objects.filter(username=username).first()
        if owner is None:
            raise CommandError(f"no user {username!r}")
        revoked = api_token_revoke_all(user=owner, why=WHY)
        self.stdout.write(f"revoked {revoked} token(s) of {username}")

    def _revoke(self, prefix: str) -> None:
        tokens = list(ApiToken.objects.select_related("user").filter(prefix=prefix)[:2])
        if not tokens:
            raise CommandError(f"no API token with prefix {prefix!r}")
        if len(tokens) > 1:
            raise CommandError(f"more than one token has prefix {prefix!r}: revoke it in Admin → API tokens")
        [token] = tokens
        if api_token_revoke(token=token, why=WHY):
            self.stdout.write(f"revoked {token.prefix}… of {token.user.get_username()}")
        else:
            self.stdout.write(f"{token.prefix}… was already revoked on {format_moment(token.revoked_at)}")

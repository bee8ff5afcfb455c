from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit import context
from classroom.api_auth import api_token_create, digest, format_moment, service_account
from classroom.models import ApiToken, Organisation, User


class Command(BaseCommand):
    help = (
        "Print a new bearer token for the JSON API, for USERNAME, or with --service NAME for a "
        "learner app that acts for its organisation's learners through X-User-ID (only its digest is "
        "stored); it works for API_TOKEN_TTL_DAYS days unless --days says otherwise."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", nargs="?")
        parser.add_argument(
            "--service", metavar="NAME", help="a learner app's service token, e.g. 'learner-app'"
        )
        parser.add_argument(
            "--organisation",
            metavar="SLUG",
            help="the service's organisation (needed when there are several)",
        )
        parser.add_argument("--name", default="", help="what the token is for, e.g. 'learner app'")
        parser.add_argument("--days", type=int, help="how many days it works (default: API_TOKEN_TTL_DAYS)")

    def handle(
        self,
        *args: Any,
        username: str | None,
        service: str | None,
        organisation: str | None,
        name: str,
        days: int | None,
        **options: Any,
    ) -> None:
        days = settings.API_TOKEN_TTL_DAYS if days is None else days
        if days < 1:
            raise CommandError("--days must be at least 1")
        if (username is None) == (service is None):
            raise CommandError("give a USERNAME or --service NAME, not both or neither")
        with context.bind(source="command"):
            if service is not None:
                try:
                    user = service_account(name=service, organisation=self._organisation(organisation))
                except ValueError as refused:
                    raise CommandError(str(refused)) from refused
            else:
                user = User.objects.filter(username=username, is_active=True).first()
                if user is None:
                    raise CommandError(f"no active user {username!r}")
            token = api_token_create(user=user, name=name or (service or ""), days=days)
        expires_at = ApiToken.objects.get(key_hash=digest(token)).expires_at
        # The token alone on stdout, for scripts to take; the note for people on stderr.
        self.stdout.write(token)
        self.stderr.write(f"expires {format_moment(expires_at)} (in {days} day{'' if days == 1 else 's'})")

    def _organisation(self, slug: str | None) -> Organisation:
        if slug is not None:
            found = Organisation.objects.filter(slug=slug).first()
            if found is None:
                raise CommandError(f"no organisation {slug!r}")
            return found
        organisations = list(Organisation.objects.all()[:2])
        if len(organisations) != 1:
            raise CommandError("--organisation SLUG: say which organisation the service acts for")
        return organisations[0]

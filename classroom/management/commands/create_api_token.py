from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit import context
from classroom.api_auth import api_token_create
from classroom.models import User


class Command(BaseCommand):
    help = "Print a new bearer token for the JSON API, for USERNAME (only its digest is stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="what the token is for, e.g. 'learner app'")

    def handle(self, *args: Any, username: str, name: str, **options: Any) -> None:
        user = User.objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"no active user {username!r}")
        with context.bind(source="command"):
            token = api_token_create(user=user, name=name)
        self.stdout.write(token)

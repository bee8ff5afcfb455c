"""Sign-ins and sign-outs, recorded for compliance review."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from audit.models import ActivityEvent
from audit.services import record


@receiver(user_logged_in)
def _logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    record(verb="user.logged_in", actor=user, target=user)


@receiver(user_logged_out)
def _logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:
        record(verb="user.logged_out", actor=user, target=user)


@receiver(user_login_failed)
def _login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    # Only the username that was tried: never the password.
    record(
        verb="user.login_failed",
        actor_name=str(credentials.get("username", ""))[:150] or "anonymous",
        status=ActivityEvent.Status.FAILED,
        why="wrong username or password",
    )

"""Sign-in throttling with django-axes (settings AXES_*): whose address a request comes from, a
successful sign-in clearing only its account's failures, and the page a locked-out person sees."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone


def client_address(request: HttpRequest) -> str | None:
    """REMOTE_ADDR; behind TRUSTED_PROXY_COUNT proxies that each append the address they received
    from to X-Forwarded-For, the entry the outermost of them appended. Entries further left are
    whatever the client chose to send, and so is the whole header when no proxy is trusted."""
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies > 0:
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        if len(hops) >= proxies and _is_address(hops[-proxies]):
            return hops[-proxies]
    return request.META.get("REMOTE_ADDR")


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class SignInHandler(AxesDatabaseHandler):
    """axes' database handler, but a successful sign-in clears only the failures named for that
    account. (axes' AXES_RESET_ON_SUCCESS also clears every failure from the address, so signing
    into one's own account between guesses at others' passwords would keep both counts low.)"""

    def user_logged_in(self, sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
        super().user_logged_in(sender, request, user, **kwargs)
        self.reset_attempts(username=user.get_username())


def locked_out(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict | None = None
) -> HttpResponse:
    """The lock-out page (AXES_LOCKOUT_CALLABLE), 429: what happened, when to try again, and how an
    admin lifts the lock sooner. It reads the same for a username that does not exist."""
    cool_off = get_cool_off(request)
    limit = get_failure_limit(request, credentials)
    username = get_client_username(request, credentials) or ""
    address = request.axes_ip_address
    since = request.axes_attempt_time - cool_off
    failures = AccessAttempt.objects.filter(attempt_time__gte=since)

    def reached(**who: Any) -> bool:
        return (failures.filter(**who).aggregate(n=Sum("failures_since_start"))["n"] or 0) >= limit

    until = timezone.localtime(request.axes_attempt_time + cool_off)
    on_day = "" if until.date() == timezone.localdate() else f" on {until:%-d %B %Y}"
    context = {
        "username": username,
        "address": address,
        "by_account": bool(username) and reached(username=username),
        "by_address": address is not None and reached(ip_address=address),
        "limit": limit,
        "try_again_at": f"{until:%H:%M %Z}{on_day}",
        "cool_off": _in_words(cool_off),
    }
    response = render(
        request, "registration/locked_out.html", context, status=settings.AXES_HTTP_RESPONSE_CODE
    )
    response["Retry-After"] = str(int(cool_off.total_seconds()))
    return response


def _in_words(delta: timedelta) -> str:
    minutes = round(delta.total_seconds() / 60)
    count, unit = (minutes // 60, "hour") if minutes >= 60 and minutes % 60 == 0 else (minutes, "minute")
    return f"{count} {unit}{'' if count == 1 else 's'}"

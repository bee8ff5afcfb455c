"""The project's URLs plus a floor view, so a benchmark can compare a page with the bare stack.

Used only by benchmarks, through `override_settings(ROOT_URLCONF="bench.urls")`; the product
never routes here.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.urls import path

from tutor.urls import urlpatterns as product_urlpatterns


@login_required
def floor(request: HttpRequest) -> HttpResponse:
    """The cheapest logged-in page: the session and user lookups, the middleware, a tiny body."""
    return HttpResponse("ok")


urlpatterns = [*product_urlpatterns, path("bench/floor/", floor, name="bench_floor")]

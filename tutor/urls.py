from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from tutor.api import api
from tutor.views import healthz

urlpatterns = [
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("audit/", include("audit.urls")),
    path("api/", api.urls),
    path("", include("plans.urls")),
    path("", include("tutor.chat.urls")),
    path("", include("tutor.orchestrator.urls")),
    path("", include("workflow.urls")),
    path("", include("tutor.proactive.urls")),
    path("", include("classroom.urls")),
]

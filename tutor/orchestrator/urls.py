from __future__ import annotations

from django.urls import path

from tutor.orchestrator import views

app_name = "orchestrator"

urlpatterns = [
    path("students/<int:pk>/learners-day/", views.day_panel, name="panel"),
]

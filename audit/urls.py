from __future__ import annotations

from django.urls import path

from audit import views

app_name = "audit"

urlpatterns = [
    path("", views.event_list, name="event_list"),
    path("export.csv", views.export_csv, name="export_csv"),
    path("events/<int:pk>/", views.event_detail, name="event_detail"),
    path("students/<int:pk>/", views.student_timeline, name="student_timeline"),
    path("failures/", views.failure_list, name="failure_list"),
    path("failures/<int:pk>/resolve/", views.failure_resolve_view, name="failure_resolve"),
]

from __future__ import annotations

from django.urls import path

from classroom import views

app_name = "classroom"

urlpatterns = [
    path("", views.home, name="home"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("classes/<int:pk>/", views.class_detail, name="class_detail"),
    path("classes/<int:pk>/refresh/", views.class_refresh, name="class_refresh"),
    path("students/<int:pk>/", views.student_detail, name="student_detail"),
    path("sync-runs/<int:pk>/", views.sync_run_status, name="sync_run_status"),
    path("alerts/<int:pk>/acknowledge/", views.alert_acknowledge_view, name="alert_acknowledge"),
    path("alerts/<int:pk>/resolve/", views.alert_resolve_view, name="alert_resolve"),
]

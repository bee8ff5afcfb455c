from __future__ import annotations

from django.urls import path

from classroom import views
from classroom.live import views as live

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
    path("classes/<int:pk>/live/", live.live_start, name="live_start"),
    path("live/<int:pk>/", live.live_page, name="live_page"),
    path("live/<int:pk>/panel/", live.live_panel, name="live_panel"),
    path("live/<int:pk>/stream/", live.live_stream, name="live_stream"),
    path("live/<int:pk>/end/", live.live_end, name="live_end"),
    path("live/<int:pk>/demo/", live.live_demo, name="live_demo"),
    path("live/<int:pk>/report/", live.live_report, name="live_report"),
    path("live/<int:pk>/report.csv", live.live_report_csv, name="live_report_csv"),
]

from __future__ import annotations

from django.urls import path

from tutor.proactive import views

app_name = "proactive"

urlpatterns = [
    path("students/<int:pk>/schedules/", views.student_schedules, name="student_schedules"),
    path("students/<int:pk>/schedules/new/", views.schedule_create, name="schedule_create"),
    path("students/<int:pk>/proactive/pause/", views.student_pause, name="student_pause"),
    path("students/<int:pk>/proactive/level/", views.proactiveness_adjust, name="proactiveness_adjust"),
    path("students/<int:pk>/proactive/undo/", views.suppression_undo, name="suppression_undo"),
    path("students/<int:pk>/patterns/detect/", views.patterns_detect, name="patterns_detect"),
    path("students/<int:pk>/profile/", views.student_profile, name="student_profile"),
    path("schedules/<int:pk>/manage/", views.schedule_manage, name="schedule_manage"),
    path("schedule-runs/<int:pk>/approve/", views.run_approve, name="run_approve"),
    path("classes/<int:pk>/schedules/", views.class_schedules, name="class_schedules"),
    path("automation/", views.automation, name="automation"),
    path("automation/<str:name>/", views.switch_flip, name="switch_flip"),
]

from __future__ import annotations

from django.urls import path

from plans import views

app_name = "plans"

urlpatterns = [
    path("students/<int:pk>/plan/", views.plan_panel, name="panel"),
    path("students/<int:pk>/plan/preview/", views.plan_preview, name="preview"),
    path("students/<int:pk>/plan/drafts/", views.draft_save, name="draft_save"),
    path("plans/drafts/<int:pk>/confirm/", views.publish_confirm, name="publish_confirm"),
    path("plans/drafts/<int:pk>/publish/", views.draft_publish, name="draft_publish"),
    path("plans/drafts/<int:pk>/discard/", views.draft_discard, name="draft_discard"),
    path("plans/approvals/<int:pk>/decide/", views.approval_decide, name="approval_decide"),
]

from __future__ import annotations

from django.urls import path

from tutor.chat import views

app_name = "chat"

urlpatterns = [
    path("students/<int:pk>/chat/", views.chat_panel, name="panel"),
    path(
        "chat/proposals/<int:pk>/confirm/", views.proposal_decide, {"confirm": True}, name="proposal_confirm"
    ),
    path(
        "chat/proposals/<int:pk>/dismiss/", views.proposal_decide, {"confirm": False}, name="proposal_dismiss"
    ),
]

from __future__ import annotations

from django.urls import path

from tutor.chat import views

app_name = "chat"

urlpatterns = [path("students/<int:pk>/chat/", views.chat_panel, name="panel")]

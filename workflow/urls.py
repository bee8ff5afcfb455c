from __future__ import annotations

app_name = "workflow"

urlpatterns: list = []

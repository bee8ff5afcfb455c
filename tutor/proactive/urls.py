from __future__ import annotations

app_name = "proactive"

urlpatterns: list = []

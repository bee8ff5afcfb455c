"""`/api/schedules` and `/api/proactive/*`."""

from __future__ import annotations

from ninja import Router

schedules_router = Router(tags=["schedules"])
proactive_router = Router(tags=["proactive"])

"""Signals other apps listen to: classroom imports none of them (see DESIGN.md, imports run one way)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent by `demo_school_seed` inside its transaction, with `organisation`, `users` (by username) and
# `now`, so that apps above classroom add their part of the demo school.
demo_seeded = Signal()

# Sent when a sync run ends, with `organisation` and `student_ids` (those it stored), so that apps
# above classroom analyse the new activity (the proactive engine's pattern detector).
students_synced = Signal()

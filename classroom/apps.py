from __future__ import annotations

from django.apps import AppConfig


class ClassroomConfig(AppConfig):
    name = "classroom"
    verbose_name = "Classroom"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from classroom import models

        # Field-level history of the records people edit by hand; mirrors are platform data, not edits.
        for model in (
            models.Organisation,
            models.User,
            models.SchoolClass,
            models.Student,
            models.Enrollment,
            models.TeacherAssignment,
            models.Alert,
        ):
            auditlog.register(
                model,
                exclude_fields=["password", "last_login"] if model is models.User else None,
                # The history says the live secret changed, never what it is.
                mask_fields=["live_secret"] if model is models.Organisation else None,
            )

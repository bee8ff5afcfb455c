from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit log"

    def ready(self) -> None:
        from audit import signals  # noqa: F401 - connects the sign-in receivers
        from audit.retention import install_database_retention

        # After every `migrate`, PostgreSQL enforces the AUDIT_RETENTION_DAYS of that moment.
        post_migrate.connect(install_database_retention, sender=self, dispatch_uid="audit-retention-days")

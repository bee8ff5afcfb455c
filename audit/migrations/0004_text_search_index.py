"""A trigram index for the audit search's free text on PostgreSQL (the expression audit.selectors uses)."""

import logging

from django.db import migrations, transaction

logger = logging.getLogger(__name__)

EXPRESSION = "(why || ' ' || actor_name || ' ' || verb || ' ' || target_id)"


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=schema_editor.connection.alias):
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except Exception as error:  # noqa: BLE001 - a role without CREATE EXTENSION still migrates
        logger.warning("pg_trgm unavailable (%s): audit free-text search will scan instead of using an index", error)
        return
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS audit_text_trgm ON audit_activityevent USING gin ({EXPRESSION} gin_trgm_ops)"
    )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS audit_text_trgm")


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_chain_failures_notifications")]

    operations = [migrations.RunPython(create, drop)]

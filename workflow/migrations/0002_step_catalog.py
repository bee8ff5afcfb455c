from django.db import migrations

# The step catalog is version-pinned: these rows are version TAW-2026.11-1 as workflow.catalog
# holds it; a later catalog version gets a migration of its own and never rewrites these rows.
VERSION = "TAW-2026.11-1"


def load(apps, schema_editor):
    from workflow.catalog import STEPS

    StepDefinition = apps.get_model("workflow", "StepDefinition")
    StepDefinition.objects.bulk_create(
        StepDefinition(
            catalog_version=VERSION,
            step_id=step.id,
            ordinal=number,
            stage=step.stage.value,
            surface=step.surface.value,
            title=step.title,
            description=step.description,
            next_steps=list(step.next),
        )
        for number, step in enumerate(STEPS, start=1)
    )


def unload(apps, schema_editor):
    apps.get_model("workflow", "StepDefinition").objects.filter(catalog_version=VERSION).delete()


class Migration(migrations.Migration):
    dependencies = [("workflow", "0001_initial")]
    operations = [migrations.RunPython(load, unload)]

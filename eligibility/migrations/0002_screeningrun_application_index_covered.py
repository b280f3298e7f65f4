"""ScreeningRun.application loses its own index: one_screening_per_trigger
(application, trigger_key) leads with the column and serves the same lookups.

The index is dropped by name. Django's AlterField(db_index=False) drops every index on
the column alone, one_current_screening_per_application (a partial unique index) with it.
"""

import django.db.models.deletion
from django.db import migrations, models

FIELD = models.ForeignKey(
    db_index=False,
    on_delete=django.db.models.deletion.CASCADE,
    related_name="screening_runs",
    to="benefits.application",
)


class Migration(migrations.Migration):
    dependencies = [
        ("benefits", "0004_voucher_round_settings"),
        ("eligibility", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(model_name="screeningrun", name="application", field=FIELD)
            ],
            database_operations=[
                migrations.RunSQL(
                    "DROP INDEX IF EXISTS eligibility_screeningrun_application_id_4d567776",
                    reverse_sql=(
                        "CREATE INDEX eligibility_screeningrun_application_id_4d567776 "
                        "ON eligibility_screeningrun (application_id)"
                    ),
                )
            ],
        )
    ]

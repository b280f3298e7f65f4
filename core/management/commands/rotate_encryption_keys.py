"""Re-encrypt personal data still held under an older key, in chunks that commit on their own."""

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import connection, transaction

from core.crypto import active_key_id
from core.fields import EncryptedTextField


def encrypted_fields():
    for model in apps.get_models():
        fields = [f for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
        if fields:
            yield model, fields


def stale_ids(model, fields, prefix: str, after: int, limit: int) -> list[int]:
    table = connection.ops.quote_name(model._meta.db_table)
    pk = connection.ops.quote_name(model._meta.pk.column)
    stale = " OR ".join(
        f"({c} IS NOT NULL AND {c} <> '' AND {c} NOT LIKE %s)"
        for c in (connection.ops.quote_name(f.column) for f in fields)
    )
    sql = f"SELECT {pk} FROM {table} WHERE {pk} > %s AND ({stale}) ORDER BY {pk} LIMIT %s"  # noqa: S608 - identifiers quoted, values bound
    with connection.cursor() as cursor:
        cursor.execute(sql, [after, *[prefix + "%"] * len(fields), limit])
        return [row[0] for row in cursor.fetchall()]


class Command(BaseCommand):
    help = "Re-encrypt every encrypted field under the active key of BAEUM_ENCRYPTION_KEYS."

    def add_arguments(self, parser):
        parser.add_argument("--chunk", type=int, default=1000)

    def handle(self, *args, chunk: int, **options):
        prefix = f"v1:{active_key_id()}:"
        for model, fields in encrypted_fields():
            done, last = 0, 0
            while ids := stale_ids(model, fields, prefix, last, chunk):
                with transaction.atomic():
                    rows = model.objects.select_for_update().filter(pk__in=ids).order_by("pk")
                    for row in rows:
                        # Saving writes each field through get_prep_value: the active key.
                        row.save(update_fields=[f.name for f in fields])
                done += len(ids)
                last = ids[-1]
            self.stdout.write(f"{model._meta.label}: {done} rows re-encrypted")

"""Re-encrypt personal data still held under an older key: database values in chunks that
commit on their own, then the encrypted files models keep (documents, bank files), one at a
time."""

import tempfile

from django.apps import apps
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from core.crypto import (
    DecryptionError,
    active_key_id,
    decrypted_sha256,
    encrypt_file,
    file_key_id,
    is_encrypted_file,
    reencrypt_file,
)
from core.fields import EncryptedTextField


def encrypted_fields():
    for model in apps.get_models():
        fields = [f for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
        if fields:
            yield model, fields


def sealed_files():
    """Models keeping files made by core.crypto.encrypt_file: {file field name: purpose}."""
    for model in apps.get_models():
        fields = getattr(model, "SEALED_FILES", None)
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


def reencrypt_stored_file(model, pk, name: str, purpose: str) -> bool:
    """Re-encrypt one stored file under the active key (or encrypt it, where the model kept
    files in plaintext before); False when it already is.

    The new file is written beside the old one and read back before the row points to it;
    the old file is deleted once that commits. A crash in between leaves at most a spare
    file, never a row without its file.
    """
    instance = model.objects.get(pk=pk)
    stored = getattr(instance, name)
    if not stored:
        return False
    field = model._meta.get_field(name)
    with stored.open("rb") as current, tempfile.TemporaryFile() as fresh:
        if is_encrypted_file(current):
            if file_key_id(current) == active_key_id():
                return False
            current.seek(0)
            digest = reencrypt_file(current, fresh, purpose=purpose)
        elif getattr(model, "PLAINTEXT_FILES_ALLOWED", False):
            # Stored before the model's files were encrypted.
            digest = encrypt_file(current, fresh, purpose=purpose)
        else:
            raise DecryptionError("Not an encrypted Baeum file.")
        fresh.seek(0)
        if decrypted_sha256(fresh, purpose=purpose) != digest:
            raise DecryptionError("The re-encrypted file does not read back the same.")
        fresh.seek(0)
        new_name = field.storage.save(field.generate_filename(instance, "rotated.bin"), File(fresh))
    old_name = stored.name
    try:
        with transaction.atomic():
            locked = model.objects.select_for_update().get(pk=pk)
            if getattr(locked, name).name != old_name:
                raise DecryptionError("The file was replaced while it was re-encrypted.")
            setattr(locked, name, new_name)
            locked.save(update_fields=[name])
            transaction.on_commit(lambda: field.storage.delete(old_name))
    except BaseException:
        field.storage.delete(new_name)
        raise
    return True


class Command(BaseCommand):
    help = (
        "Re-encrypt every encrypted field, and every encrypted file a model keeps, under the "
        "active key of BAEUM_ENCRYPTION_KEYS. Safe to run again: what is done is skipped."
    )

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
        for model, files in sealed_files():
            done = 0
            for pk in model.objects.order_by("pk").values_list("pk", flat=True):
                for name, purpose in files.items():
                    try:
                        done += reencrypt_stored_file(model, pk, name, purpose)
                    except (DecryptionError, OSError) as exc:
                        # The reason names no data: a missing key, a tampered or lost file.
                        why = exc if isinstance(exc, DecryptionError) else exc.strerror
                        raise CommandError(
                            f"{model._meta.label} #{pk}: {exc.__class__.__name__}: "
                            f"{why or 'the file could not be read'}"
                        ) from None
            self.stdout.write(f"{model._meta.label}: {done} files re-encrypted")

"""Registry CSV imports: store the upload, stream and validate it, load a snapshot, activate.

A file is loaded into a `loading` snapshot in chunks that commit on their own, then
becomes the registry's active snapshot in one transaction only if every row is good and
its upload is newer than the active snapshot's. Raw RRNs are turned into their HMAC as
each line is read; neither the rows, the job errors nor the logs ever hold one. The upload
is stored encrypted from its first byte, read back decrypting as a stream, and deleted
once the job ends, whether it succeeded, failed or was given up.
"""

import hashlib
import logging
import tempfile
from itertools import chain

from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from core.audit import audit_record
from core.crypto import DecryptionError, encrypt_file, is_encrypted_file
from core.files import SealedReader
from core.outbox import LeaseLost, outbox_enqueue, outbox_heartbeat
from eligibility.models import RECORD_MODELS, RegistryImportJob, RegistryKind, RegistrySnapshot
from eligibility.registry_csv import RowError, read_blocks, read_header
from eligibility.registry_load import (
    CHUNK_ROWS,
    MAX_ERRORS,
    _duplicates,
    _error,
    _Rows,
    _write_chunk,
)
from eligibility.screening_tasks import rescreen_after_snapshot

logger = logging.getLogger(__name__)

_FINISHED = (RegistryImportJob.Status.SUCCEEDED, RegistryImportJob.Status.FAILED)
# Plaintext bytes per encrypted chunk of a stored upload: the import holds one chunk at a time.
UPLOAD_CHUNK = 256 * 1024
# pg_advisory_xact_lock(_ACTIVATION_LOCK, kind's index): one activation per registry at once.
_ACTIVATION_LOCK = 0x52454749


def _discard(snapshot_id: int | None) -> None:
    if snapshot_id is None:
        return
    snapshot = RegistrySnapshot.objects.select_for_update().filter(pk=snapshot_id).first()
    if snapshot is None or snapshot.status != RegistrySnapshot.Status.LOADING:
        return
    RECORD_MODELS[snapshot.kind].objects.filter(snapshot_id=snapshot_id).delete()
    RegistrySnapshot.objects.filter(pk=snapshot_id).update(status=RegistrySnapshot.Status.DISCARDED)


class _Abandoned(Exception):
    """Another run of the same job took it over; this one stops without writing."""


# Services.


@transaction.atomic
def registry_import_create(
    *, kind: str, uploaded_file: File, actor, schedule: bool = True
) -> RegistryImportJob:
    """Store an uploaded registry CSV, encrypted, and queue its import."""
    if kind not in RegistryKind.values:
        raise ValidationError({"kind": ValidationError("Unknown registry.", code="unknown_kind")})
    original_name = (getattr(uploaded_file, "name", "") or "").rsplit("/", 1)[-1][:255]
    job = RegistryImportJob(kind=kind, original_name=original_name, created_by=actor)
    if hasattr(uploaded_file, "seek"):
        uploaded_file.seek(0)
    # Sealed on the way in: the stored upload holds raw RRNs, and waits for a worker.
    with tempfile.TemporaryFile() as sealed:
        encrypt_file(
            uploaded_file, sealed, purpose=RegistryImportJob.FILE_PURPOSE, chunk_bytes=UPLOAD_CHUNK
        )
        sealed.seek(0)
        job.file.save(f"{kind}.sealed", File(sealed), save=False)
    try:
        job.save()
    except Exception:
        job.file.delete(save=False)
        raise
    audit_record(
        actor=actor,
        obj=job,
        action="registry_import.create",
        to_state=job.status,
        data={"kind": kind},
    )
    if schedule:
        from eligibility.tasks import registry_import_run_task

        outbox_enqueue(registry_import_run_task, job.pk, key=f"registry_import:{job.pk}")
    return job


def _lock_activation(kind: str) -> None:
    """Serialize the activations of one registry until the transaction ends (PostgreSQL;
    SQLite serializes every writer already)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)",
                [_ACTIVATION_LOCK, RegistryKind.values.index(kind)],
            )


def _newer_import(job: RegistryImportJob) -> RegistryImportJob | None:
    """The import whose snapshot is active, if its file was uploaded after this job's.

    Uploads are ordered by when their job was created (then by id): a file taken over
    after a crash, or retried late, is still as old as its upload. A snapshot made
    without a job is older than any upload.
    """
    source = (
        RegistryImportJob.objects.filter(
            snapshot__kind=job.kind, snapshot__status=RegistrySnapshot.Status.ACTIVE
        )
        .exclude(pk=job.pk)
        .first()
    )
    if source is not None and (source.created_at, source.pk) > (job.created_at, job.pk):
        return source
    return None


def _superseded(newer: RegistryImportJob) -> dict:
    return _error(
        0,
        None,
        "superseded",
        f"A newer file of this registry (import #{newer.pk}) is active: this one was not "
        "activated over it.",
    )


def _claim(job_id: int) -> tuple[RegistryImportJob, RegistrySnapshot | None]:
    """Mark the job running on a fresh loading snapshot, discarding a stopped run's.

    A job whose upload is older than the active snapshot's fails at once: it would never
    be activated.
    """
    with transaction.atomic():
        outbox_heartbeat()
        job = RegistryImportJob.objects.select_for_update().get(pk=job_id)
        if job.status in _FINISHED:
            return job, None
        # Found running: the run before this one stopped mid-load (its worker died, or it
        # made no progress for longer than its lease). Its half-loaded rows go.
        _discard(job.snapshot_id)
        newer = _newer_import(job)
        if newer is not None:
            _end(job, RegistryImportJob.Status.FAILED, errors=[_superseded(newer)])
            return job, None
        snapshot = RegistrySnapshot.objects.create(kind=job.kind, source_name=job.original_name)
        job.status, job.snapshot, job.errors = RegistryImportJob.Status.RUNNING, snapshot, []
        job.rows_read = job.rows_rejected = 0
        job.started_at, job.finished_at = timezone.now(), None
        job.save(
            update_fields=[
                "status",
                "snapshot",
                "errors",
                "rows_read",
                "rows_rejected",
                "started_at",
                "finished_at",
            ]
        )
    return job, snapshot


def _end(job: RegistryImportJob, status: str, *, errors: list, read: int = 0, rejected: int = 0):
    """Finish a job that activates nothing, inside the caller's transaction."""
    from_state = job.status
    job.status, job.errors, job.finished_at = status, errors, timezone.now()
    job.rows_read, job.rows_rejected = read, rejected
    job.save(update_fields=["status", "errors", "finished_at", "rows_read", "rows_rejected"])
    audit_record(
        actor=None,
        obj=job,
        action=f"registry_import.{status}",
        from_state=from_state,
        to_state=status,
        data={"rows_read": read, "rows_rejected": rejected, "codes": [e["code"] for e in errors]},
    )


def _progress(job: RegistryImportJob, snapshot: RegistrySnapshot, rows: _Rows) -> None:
    """Load the next chunk of rows and record the counts so far, in one transaction."""
    # No waiting for the disk at each chunk: the activation's commit, which does wait,
    # makes the chunks durable with it, and a crash before then leaves the job running,
    # to be rerun from scratch. (A caller's own transaction keeps its usual commit.)
    asynchronous = connection.vendor == "postgresql" and not connection.in_atomic_block
    # The counts are known once the chunk is read, so they come after its rows; a run
    # that took the job over meanwhile makes this one roll the chunk back.
    with transaction.atomic():
        if asynchronous:
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit = off")
        outbox_heartbeat()
        _write_chunk(job.kind, rows.chunk())
        owned = RegistryImportJob.objects.filter(
            pk=job.pk, snapshot=snapshot, status=RegistryImportJob.Status.RUNNING
        ).update(rows_read=rows.read, rows_rejected=rows.rejected)
        if not owned:
            raise _Abandoned


def _load(job: RegistryImportJob, snapshot: RegistrySnapshot) -> tuple[int, int, list, str, bool]:
    """Stream the file into the snapshot.

    Return rows read, rejected, errors, SHA-256 and whether the rows may hold duplicates.
    """
    digest = hashlib.sha256()
    with job.file.open("rb") as stored:
        # Read the storage's own file object: the FieldFile proxy costs a lookup per read.
        source = getattr(stored, "file", stored)
        # Uploads stored before they were sealed are read as they are.
        if is_encrypted_file(source):
            source = SealedReader(source, purpose=RegistryImportJob.FILE_PURPOSE)
        blocks = read_blocks(source, digest)
        # The first block starts with the header; the rest of it is data.
        start, lines, problems = next(blocks, (1, [], {}))
        try:
            person = read_header(
                job.kind, (start, lines[0], problems.get(start)) if lines else None
            )
        except RowError as exc:
            return 0, 1, [_error(1, exc.field, exc.code, exc.message)], digest.hexdigest(), False
        blocks = chain([(start + 1, lines[1:], problems)], blocks)
        rows = _Rows(job.kind, person, blocks, snapshot.pk, chunk_rows=CHUNK_ROWS)
        while not rows.done:
            _progress(job, snapshot, rows)
    read, rejected, errors = rows.read, rows.rejected, rows.errors
    if read == 0 and not rejected:
        errors.append(_error(2, None, "no_rows", "The file has a header but no rows."))
        rejected = 1
    return read, rejected, errors, digest.hexdigest(), rows.may_repeat()


def _finish(job, snapshot, *, read: int, rejected: int, errors: list, sha256: str) -> None:
    # Lock order: the job, the registry's activation lock, then snapshots by id (the
    # previous active one before ours).
    with transaction.atomic():
        outbox_heartbeat()
        locked = RegistryImportJob.objects.select_for_update().get(pk=job.pk)
        if locked.snapshot_id != snapshot.pk or locked.status != RegistryImportJob.Status.RUNNING:
            raise _Abandoned
        now = timezone.now()
        newer = None
        if not rejected:
            _lock_activation(job.kind)
            newer = _newer_import(locked)
        if rejected or newer is not None:
            _discard(snapshot.pk)
            status = RegistryImportJob.Status.FAILED
            if newer is not None:
                errors = [_superseded(newer)]
        else:
            active = RegistrySnapshot.objects.filter(
                kind=job.kind, status=RegistrySnapshot.Status.ACTIVE
            )
            previous = list(active.select_for_update().order_by("pk").values_list("pk", flat=True))
            RegistrySnapshot.objects.filter(pk__in=previous).update(
                status=RegistrySnapshot.Status.SUPERSEDED
            )
            RegistrySnapshot.objects.filter(pk=snapshot.pk).update(
                status=RegistrySnapshot.Status.ACTIVE,
                activated_at=now,
                row_count=read,
                sha256=sha256,
            )
            status = RegistryImportJob.Status.SUCCEEDED
            # Recorded with the activation, so no re-screening is lost to a broker outage.
            rescreen_after_snapshot(snapshot_id=snapshot.pk)
        RegistryImportJob.objects.filter(pk=job.pk).update(
            status=status,
            rows_read=read,
            rows_rejected=rejected,
            errors=sorted(errors, key=lambda e: e["line"])[:MAX_ERRORS],
            finished_at=now,
        )
        audit_record(
            actor=None,
            obj=locked,
            action=f"registry_import.{status}",
            from_state=RegistryImportJob.Status.RUNNING,
            to_state=status,
            data={"snapshot": snapshot.pk, "rows_read": read, "rows_rejected": rejected},
        )


def _activate_or_fail(job, snapshot, **result) -> None:
    # Two imports of one kind finishing together: the loser's activation hits the
    # one-active constraint after the winner commits; it retries and supersedes it.
    for attempt in range(3):
        try:
            _finish(job, snapshot, **result)
            return
        except IntegrityError:
            if attempt == 2:
                raise


def _delete_upload(job: RegistryImportJob) -> None:
    # The upload holds raw RRNs; only the snapshot's hashes outlive the job.
    if job.file:
        try:
            job.file.delete(save=False)
        except OSError:
            logger.warning("registry import %s: could not delete the uploaded file", job.pk)
        RegistryImportJob.objects.filter(pk=job.pk).update(file="")


def registry_import_run(*, job_id: int) -> RegistryImportJob:
    """Load, check and activate the job's file; a finished job is left as it is."""
    job, snapshot = _claim(job_id)
    if snapshot is None:
        if job.status in _FINISHED:
            _delete_upload(job)  # also after a run that ended but died before deleting it
        return job
    try:
        read, rejected, errors, sha256, may_repeat = _load(job, snapshot)
        if read and may_repeat:
            duplicates, duplicate_errors = _duplicates(job.kind, snapshot.pk)
            rejected += duplicates
            errors = sorted(errors + duplicate_errors, key=lambda e: e["line"])[:MAX_ERRORS]
        _activate_or_fail(job, snapshot, read=read, rejected=rejected, errors=errors, sha256=sha256)
    except _Abandoned:
        logger.info("registry import %s: taken over by another run", job.pk)
        return RegistryImportJob.objects.get(pk=job.pk)
    except LeaseLost:
        logger.info("registry import %s: its lease was taken over", job.pk)
        raise
    except (OperationalError, InterfaceError):
        raise  # left running: the task retries and the rerun starts from scratch
    except Exception as exc:  # noqa: BLE001 - the job must end, and say so
        # Only the class name: a message could quote file content.
        logger.error("registry import %s failed: %s", job.pk, type(exc).__name__)
        code, message = "internal_error", "The import stopped on an unexpected error."
        if isinstance(exc, FileNotFoundError):
            code, message = "file_missing", "The uploaded file is gone."
        elif isinstance(exc, DecryptionError):
            code, message = "file_unreadable", "The stored upload did not decrypt."
        _activate_or_fail(
            job, snapshot, read=0, rejected=1, errors=[_error(0, None, code, message)], sha256=""
        )
    job.refresh_from_db()
    logger.info(
        "registry import %s %s: %s rows, %s rejected",
        job.pk,
        job.status,
        job.rows_read,
        job.rows_rejected,
    )
    _delete_upload(job)
    return job


def registry_import_abandon(*, job_id: int) -> RegistryImportJob:
    """End a job whose runs kept failing: its half-loaded snapshot and its upload go."""
    with transaction.atomic():
        job = RegistryImportJob.objects.select_for_update().get(pk=job_id)
        if job.status not in _FINISHED:
            _discard(job.snapshot_id)
            message = "The import was given up after its runs kept stopping; upload it again."
            error = _error(0, None, "abandoned", message)
            _end(job, RegistryImportJob.Status.FAILED, errors=[error])
    _delete_upload(job)
    return job


# Selectors.


def active_snapshot(kind: str) -> RegistrySnapshot | None:
    """Return the registry's active snapshot, if one was ever imported."""
    return RegistrySnapshot.objects.filter(kind=kind, status=RegistrySnapshot.Status.ACTIVE).first()


def registry_import_get(*, pk: int) -> RegistryImportJob:
    """Return one import job or raise RegistryImportJob.DoesNotExist."""
    return RegistryImportJob.objects.get(pk=pk)

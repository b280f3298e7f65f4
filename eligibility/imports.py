"""Registry CSV imports: store the upload, cut it into chunks of lines, check and load
each chunk, then activate the snapshot.

The file is read once to find where its chunks begin (BAEUM_IMPORT_CHUNK_LINES lines
each, cut at line ends) and to check its header; each chunk is then checked and loaded
into a `loading` snapshot in one transaction of its own, which also marks it done, by
the workers on the `long` queue side by side (`registry_import_dispatch`) or one after
the other in this process (`registry_import_run`). The last chunk to commit records the
finish: the duplicate check across the whole snapshot and the activation
(eligibility.import_activation), which happens only if every row is good and the upload
is newer than the active snapshot's. Raw RRNs are turned into their HMAC as each line is
read; neither the rows, the job errors nor the logs ever hold one. The upload is stored
encrypted from its first byte, read back decrypting as a stream from the chunk's first
byte, and deleted once the job ends, whether it succeeded, failed or was given up.
"""

import logging
import tempfile
from contextlib import contextmanager, suppress

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from core.audit import audit_record
from core.crypto import DecryptionError, encrypt_file
from core.outbox import LeaseLost, outbox_enqueue, outbox_heartbeat
from eligibility.import_activation import (
    FINISHED,
    Abandoned,
    activate_or_fail,
    discard,
    job_end,
    newer_import,
    superseded,
)
from eligibility.import_chunks import load_chunk, plaintext, record_finish, summed
from eligibility.models import (
    RegistryImportChunk,
    RegistryImportJob,
    RegistryKind,
    RegistrySnapshot,
)
from eligibility.registry_csv import RowError, read_blocks, read_header
from eligibility.registry_load import (
    MAX_ERRORS,
    _duplicates,
    _error,
    line_ranges,
)

logger = logging.getLogger(__name__)

# Plaintext bytes per encrypted chunk of a stored upload: the import holds one chunk at a time.
UPLOAD_CHUNK = 256 * 1024


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


def _claim(job_id: int) -> tuple[RegistryImportJob, RegistrySnapshot | None, bool]:
    """Mark the job running on a fresh loading snapshot; return it, its snapshot and
    whether its chunks were recorded already (a run that goes on).

    A job found running without chunks stopped before it recorded them: its run
    starts again on a fresh snapshot. A job whose upload is older than the active
    snapshot's fails at once: it would never be activated.
    """
    with transaction.atomic():
        outbox_heartbeat()
        job = RegistryImportJob.objects.select_for_update().get(pk=job_id)
        if job.status in FINISHED:
            return job, None, False
        newer = newer_import(job)
        if newer is not None:
            discard(job.snapshot_id)
            job_end(job, RegistryImportJob.Status.FAILED, errors=[superseded(newer)])
            return job, None, False
        if (
            job.status == RegistryImportJob.Status.RUNNING
            and RegistryImportChunk.objects.filter(snapshot_id=job.snapshot_id).exists()
        ):
            return job, job.snapshot, True
        discard(job.snapshot_id)
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
    return job, snapshot, False


def _plan(job: RegistryImportJob, snapshot: RegistrySnapshot, *, spread: bool) -> list[int]:
    """Read the file through, check its header and record its chunks (and, if `spread`,
    their tasks); return their indexes. A bad header ends the job."""
    with plaintext(job) as source:
        sha256, ranges = line_ranges(source, settings.BAEUM_IMPORT_CHUNK_LINES)
        source.seek(0)
        start, lines, problems = next(read_blocks(source), (1, [], {}))
    try:
        person = read_header(job.kind, (start, lines[0], problems.get(start)) if lines else None)
    except RowError as exc:
        error = _error(1, exc.field, exc.code, exc.message)
        activate_or_fail(job, snapshot, read=0, rejected=1, errors=[error], sha256=sha256)
        _delete_upload(job)
        return []
    from eligibility.tasks import registry_import_chunk_task, registry_import_finish_task

    with transaction.atomic():
        outbox_heartbeat()
        owned = RegistryImportJob.objects.select_for_update().filter(
            pk=job.pk, snapshot=snapshot, status=RegistryImportJob.Status.RUNNING
        )
        if not owned.exists():
            raise Abandoned
        RegistrySnapshot.objects.filter(pk=snapshot.pk).update(sha256=sha256)
        RegistryImportChunk.objects.bulk_create(
            RegistryImportChunk(
                snapshot=snapshot, index=i, person=person, first_line=first, start=s, end=e
            )
            for i, (first, s, e) in enumerate(ranges)
        )
        if spread:
            for index in range(len(ranges)):
                key = f"registry_import:{job.pk}:{snapshot.pk}:{index}"
                outbox_enqueue(registry_import_chunk_task, job.pk, snapshot.pk, index, key=key)
            if not ranges:  # a header alone: the finish says so
                record_finish(registry_import_finish_task, job, snapshot)
    logger.info("registry import %s: %s chunks", job.pk, len(ranges))
    return list(range(len(ranges)))


def _fail(job: RegistryImportJob, snapshot: RegistrySnapshot, exc: Exception) -> None:
    # Only the class name: a message could quote file content.
    logger.error("registry import %s failed: %s", job.pk, type(exc).__name__)
    code, message = "internal_error", "The import stopped on an unexpected error."
    if isinstance(exc, FileNotFoundError):
        code, message = "file_missing", "The uploaded file is gone."
    elif isinstance(exc, DecryptionError):
        code, message = "file_unreadable", "The stored upload did not decrypt."
    error = _error(0, None, code, message)
    activate_or_fail(job, snapshot, read=0, rejected=1, errors=[error], sha256="")


@contextmanager
def _ending_on_error(job: RegistryImportJob, snapshot: RegistrySnapshot):
    """Around a step of a run: a run taken over stops; a database that went away leaves
    the job running for the task to retry; any other error ends the job failed."""
    try:
        yield
    except Abandoned:
        logger.info("registry import %s: taken over by another run", job.pk)
    except LeaseLost:
        logger.info("registry import %s: its lease was taken over", job.pk)
        raise
    except (OperationalError, InterfaceError):
        raise  # left running: the task retries, and goes on from the chunks done
    except Exception as exc:  # noqa: BLE001 - the job must end, and say so
        with suppress(Abandoned):
            _fail(job, snapshot, exc)
        _delete_upload(job)


def _start(job_id: int, *, spread: bool) -> tuple[RegistryImportJob, list[int] | None]:
    """Claim the job and record its chunks; return it and the indexes of the chunks
    still to load (None when there is nothing to do here)."""
    job, snapshot, going_on = _claim(job_id)
    if snapshot is None:
        if job.status in FINISHED:
            _delete_upload(job)  # also after a run that ended but died before deleting it
        return job, None
    if going_on:
        pending = RegistryImportChunk.objects.filter(snapshot=snapshot, done=False)
        return job, None if spread else list(pending.values_list("index", flat=True))
    indexes = None
    with _ending_on_error(job, snapshot):
        indexes = _plan(job, snapshot, spread=spread)
    return job, None if spread else indexes


def registry_import_dispatch(*, job_id: int) -> RegistryImportJob:
    """Record the job's chunks as tasks for the workers on the `long` queue, which check
    and load them side by side; the last to commit records the finish. Safe to run twice:
    a job whose chunks are recorded is left to them."""
    job, _ = _start(job_id, spread=True)
    job.refresh_from_db()
    return job


def registry_import_chunk(*, job_id: int, snapshot_id: int, index: int, spread: bool = True):
    """Check and load one chunk of the job's file into its snapshot; a chunk done already,
    or of a snapshot the job has left, changes nothing."""
    chunk = (
        RegistryImportChunk.objects.select_related("snapshot")
        .filter(snapshot_id=snapshot_id, index=index)
        .first()
    )
    job = RegistryImportJob.objects.get(pk=job_id)
    if chunk is None or chunk.done:
        return
    if job.status != RegistryImportJob.Status.RUNNING or job.snapshot_id != snapshot_id:
        return
    with _ending_on_error(job, chunk.snapshot):
        load_chunk(job, chunk, spread=spread)


def registry_import_finish(*, job_id: int, snapshot_id: int) -> RegistryImportJob:
    """Once every chunk is done: find the rows that repeat an entry, then activate the
    snapshot or fail the job, and delete the upload. Safe to run twice."""
    job = RegistryImportJob.objects.select_related("snapshot").get(pk=job_id)
    if job.status in FINISHED:
        _delete_upload(job)
        return job
    if job.status != RegistryImportJob.Status.RUNNING or job.snapshot_id != snapshot_id:
        return job
    snapshot = job.snapshot
    read, rejected, errors, may_repeat = summed(snapshot)
    if read is None:
        return job  # the last chunk to commit records the finish again
    with _ending_on_error(job, snapshot):
        if read == 0 and not rejected:
            errors.append(_error(2, None, "no_rows", "The file has a header but no rows."))
            rejected = 1
        if read and may_repeat:
            duplicates, duplicate_errors = _duplicates(job.kind, snapshot.pk)
            rejected += duplicates
            errors = sorted(errors + duplicate_errors, key=lambda e: e["line"])[:MAX_ERRORS]
        activate_or_fail(
            job, snapshot, read=read, rejected=rejected, errors=errors, sha256=snapshot.sha256
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
    job.refresh_from_db()
    return job


def registry_import_run(*, job_id: int) -> RegistryImportJob:
    """Load, check and activate the job's file in this process, chunk after chunk (what
    registry_import_dispatch spreads over workers); a finished job is left as it is, and
    a stopped run goes on from its chunks done."""
    job, indexes = _start(job_id, spread=False)
    job.refresh_from_db()
    if indexes is None or job.status != RegistryImportJob.Status.RUNNING:
        return job
    for index in indexes:
        registry_import_chunk(job_id=job.pk, snapshot_id=job.snapshot_id, index=index, spread=False)
    return registry_import_finish(job_id=job.pk, snapshot_id=job.snapshot_id)


def _delete_upload(job: RegistryImportJob) -> None:
    # The upload holds raw RRNs; only the snapshot's hashes outlive the job.
    if job.file:
        try:
            job.file.delete(save=False)
        except OSError:
            logger.warning("registry import %s: could not delete the uploaded file", job.pk)
        RegistryImportJob.objects.filter(pk=job.pk).update(file="")


def registry_import_abandon(*, job_id: int) -> RegistryImportJob:
    """End a job whose runs kept failing: its half-loaded snapshot and its upload go."""
    with transaction.atomic():
        job = RegistryImportJob.objects.select_for_update().get(pk=job_id)
        if job.status not in FINISHED:
            discard(job.snapshot_id)
            message = "The import was given up after its runs kept stopping; upload it again."
            error = _error(0, None, "abandoned", message)
            job_end(job, RegistryImportJob.Status.FAILED, errors=[error])
    _delete_upload(job)
    return job


# Selectors.


def active_snapshot(kind: str) -> RegistrySnapshot | None:
    """Return the registry's active snapshot, if one was ever imported."""
    return RegistrySnapshot.objects.filter(kind=kind, status=RegistrySnapshot.Status.ACTIVE).first()


def registry_import_get(*, pk: int) -> RegistryImportJob:
    """Return one import job or raise RegistryImportJob.DoesNotExist."""
    return RegistryImportJob.objects.get(pk=pk)

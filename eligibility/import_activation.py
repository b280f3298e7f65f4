"""The end of a registry import: its snapshot activated over the registry's active one in
one transaction, or discarded; never an upload over a newer one (issue 16).

The loading itself is eligibility.imports.
"""

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core.audit import audit_record
from core.outbox import outbox_heartbeat
from eligibility.models import RECORD_MODELS, RegistryImportJob, RegistryKind, RegistrySnapshot
from eligibility.registry_load import MAX_ERRORS, _error
from eligibility.screening_tasks import rescreen_after_snapshot

FINISHED = (RegistryImportJob.Status.SUCCEEDED, RegistryImportJob.Status.FAILED)
# pg_advisory_xact_lock(_ACTIVATION_LOCK, kind's index): one activation per registry at once.
_ACTIVATION_LOCK = 0x52454749


class Abandoned(Exception):
    """Another run of the same job took it over; this one stops without writing."""


def discard(snapshot_id: int | None) -> None:
    """Delete a loading snapshot's rows and mark it discarded, in the caller's transaction."""
    if snapshot_id is None:
        return
    snapshot = RegistrySnapshot.objects.select_for_update().filter(pk=snapshot_id).first()
    if snapshot is None or snapshot.status != RegistrySnapshot.Status.LOADING:
        return
    RECORD_MODELS[snapshot.kind].objects.filter(snapshot_id=snapshot_id).delete()
    RegistrySnapshot.objects.filter(pk=snapshot_id).update(status=RegistrySnapshot.Status.DISCARDED)


def _lock_activation(kind: str) -> None:
    """Serialize the activations of one registry until the transaction ends (PostgreSQL;
    SQLite serializes every writer already)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)",
                [_ACTIVATION_LOCK, RegistryKind.values.index(kind)],
            )


def newer_import(job: RegistryImportJob) -> RegistryImportJob | None:
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


def superseded(newer: RegistryImportJob) -> dict:
    return _error(
        0,
        None,
        "superseded",
        f"A newer file of this registry (import #{newer.pk}) is active: this one was not "
        "activated over it.",
    )


def job_end(job: RegistryImportJob, status: str, *, errors: list, read: int = 0, rejected: int = 0):
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


def _finish(job, snapshot, *, read: int, rejected: int, errors: list, sha256: str) -> None:
    # Lock order: the job, the registry's activation lock, then snapshots by id (the
    # previous active one before ours).
    with transaction.atomic():
        outbox_heartbeat()
        locked = RegistryImportJob.objects.select_for_update().get(pk=job.pk)
        if locked.snapshot_id != snapshot.pk or locked.status != RegistryImportJob.Status.RUNNING:
            raise Abandoned
        now = timezone.now()
        newer = None
        if not rejected:
            _lock_activation(job.kind)
            newer = newer_import(locked)
        if rejected or newer is not None:
            discard(snapshot.pk)
            status = RegistryImportJob.Status.FAILED
            if newer is not None:
                errors = [superseded(newer)]
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


def activate_or_fail(job, snapshot, **result) -> None:
    """Activate the job's snapshot if every row is good and no newer upload is active, or
    fail the job and discard the snapshot; raise Abandoned if another run owns the job."""
    # Two imports of one kind finishing together: the loser's activation hits the
    # one-active constraint after the winner commits; it retries and supersedes it.
    for attempt in range(3):
        try:
            _finish(job, snapshot, **result)
            return
        except IntegrityError:
            if attempt == 2:
                raise

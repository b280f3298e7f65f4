"""One chunk of a registry import: its range of lines read from the stored upload (from
the encrypted chunk that holds its first byte), checked, and written with its counts and
done mark in one transaction; and the chunks' counts summed for the finish.

The job around them is eligibility.imports.
"""

import logging
from contextlib import contextmanager
from itertools import chain

from django.db import connection, transaction
from django.db.models import F

from core.crypto import is_encrypted_file
from core.files import SealedReader
from core.outbox import outbox_enqueue, outbox_heartbeat
from eligibility.import_activation import Abandoned
from eligibility.models import RegistryImportChunk, RegistryImportJob, RegistrySnapshot
from eligibility.registry_csv import read_blocks
from eligibility.registry_load import CHUNK_ROWS, MAX_ERRORS, LineRange, _Rows, _write_chunk

logger = logging.getLogger("eligibility.imports")


@contextmanager
def plaintext(job: RegistryImportJob):
    """The stored upload as a seekable stream of its plaintext."""
    with job.file.open("rb") as stored:
        # Read the storage's own file object: the FieldFile proxy costs a lookup per read.
        source = getattr(stored, "file", stored)
        # Uploads stored before they were sealed are read as they are.
        if is_encrypted_file(source):
            source = SealedReader(source, purpose=RegistryImportJob.FILE_PURPOSE)
        yield source


def record_finish(task, job: RegistryImportJob, snapshot: RegistrySnapshot) -> None:
    outbox_enqueue(task, job.pk, snapshot.pk, key=f"registry_import:{job.pk}:{snapshot.pk}:finish")


def load_chunk(job: RegistryImportJob, chunk: RegistryImportChunk, *, spread: bool) -> None:
    """Check the chunk's lines and write its good rows, its counts and done in one
    transaction; a chunk done meanwhile by another run is left as it is."""
    # No waiting for the disk at each chunk: the next commit that does wait (the chunk's
    # outbox entry marked done, the activation) makes it durable too, the log being
    # written in order; a crash before then loses its rows and its done mark together,
    # and the chunk is loaded again. (A caller's own transaction keeps its usual commit.)
    asynchronous = connection.vendor == "postgresql" and not connection.in_atomic_block
    with plaintext(job) as source, transaction.atomic():
        if asynchronous:
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit = off")
        outbox_heartbeat()
        pending = RegistryImportChunk.objects.select_for_update().filter(pk=chunk.pk, done=False)
        if not pending.exists():
            return
        lines = LineRange(source, chunk.start, chunk.end)
        blocks = read_blocks(lines, first_line=chunk.first_line)
        rows = _Rows(job.kind, chunk.person, blocks, chunk.snapshot_id, chunk_rows=CHUNK_ROWS)
        while not rows.done:
            _write_chunk(job.kind, rows.chunk())
        pending.update(
            done=True,
            rows_read=rows.read,
            rows_rejected=rows.rejected,
            errors=rows.errors,
            may_repeat=rows.may_repeat(),
        )
        # The job's row is locked from here to the commit: the chunks' ends take turns,
        # so the last one to commit sees every other one done.
        owned = RegistryImportJob.objects.filter(
            pk=job.pk, snapshot_id=chunk.snapshot_id, status=RegistryImportJob.Status.RUNNING
        ).update(
            rows_read=F("rows_read") + rows.read, rows_rejected=F("rows_rejected") + rows.rejected
        )
        if not owned:
            raise Abandoned
        chunks = RegistryImportChunk.objects.filter(snapshot_id=chunk.snapshot_id)
        if spread and not chunks.filter(done=False).exists():
            from eligibility.tasks import registry_import_finish_task

            record_finish(registry_import_finish_task, job, chunk.snapshot)
    logger.info(
        "registry import %s: chunk %s from line %s, %s rows read, %s rejected",
        job.pk,
        chunk.index,
        chunk.first_line,
        rows.read,
        rows.rejected,
    )


def summed(snapshot: RegistrySnapshot) -> tuple[int | None, int, list, bool]:
    """The chunks' rows read and rejected, first errors and whether rows may repeat a
    key; None for the counts if a chunk is not done."""
    chunks = list(RegistryImportChunk.objects.filter(snapshot=snapshot).order_by("index"))
    if not all(chunk.done for chunk in chunks):
        return None, 0, [], True
    errors = sorted(chain.from_iterable(c.errors for c in chunks), key=lambda e: e["line"])
    read, rejected = sum(c.rows_read for c in chunks), sum(c.rows_rejected for c in chunks)
    # Within one chunk the hashes of its keys say; across chunks only the database can.
    may_repeat = len(chunks) != 1 or chunks[0].may_repeat
    return read, rejected, errors[:MAX_ERRORS], may_repeat

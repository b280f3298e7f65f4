"""Celery wrappers of the payment services: each is safe to run twice."""

from celery import shared_task

from core.tasks import RETRY_ON_DATABASE_ERRORS
from payments.build import batch_build_chunk, batch_build_dispatch
from payments.exports import bank_file_generate
from payments.imports import bank_results_chunk, bank_results_run
from payments.models import BankFile
from payments.vouchers import vouchers_lapse


@shared_task(**RETRY_ON_DATABASE_ERRORS)
def batch_build_task(batch_id: int, first: int | None = None, last: int | None = None) -> int:
    """Without a range, cut a batch's build into chunk tasks (this task with a range) for
    the workers on `long` to share, and send those not yet built; with one, gather that
    chunk of its payments (the last chunk finishes the build). A rerun writes nothing
    twice. One task name for both, so that whatever asks about a batch's build (the
    simulation's teardown, say) finds every entry of it."""
    if first is None:
        return batch_build_dispatch(batch_id=batch_id)
    return batch_build_chunk(batch_id=batch_id, first=first, last=last)


@shared_task(**RETRY_ON_DATABASE_ERRORS)
def bank_files_generate_task(batch_id: int) -> list[str]:
    """Generate both bank files of an approved batch (a stored file is kept as it is)."""
    return [bank_file_generate(batch_id=batch_id, fmt=fmt).sha256 for fmt in BankFile.Format.values]


@shared_task(**RETRY_ON_DATABASE_ERRORS)
def vouchers_lapse_task() -> int:
    """Lapse unspent vouchers past their expiry (daily, by beat); lapses nothing twice."""
    return vouchers_lapse()


@shared_task(**RETRY_ON_DATABASE_ERRORS)
def bank_results_run_task(import_id: int) -> int | None:
    """Check a stored bank result file and record its chunk tasks; safe to run twice."""
    return bank_results_run(import_id=import_id).chunks_total


@shared_task(**RETRY_ON_DATABASE_ERRORS)
def bank_results_chunk_task(import_id: int, index: int) -> bool:
    """Apply one chunk of a bank result file; a chunk applied before changes nothing."""
    return bank_results_chunk(import_id=import_id, index=index)

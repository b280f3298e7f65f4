"""Celery wrappers of the payment services: each is safe to run twice."""

from celery import shared_task

from core.tasks import RETRY_ON_DATABASE_ERRORS
from payments.exports import bank_file_generate
from payments.models import BankFile
from payments.services import batch_build
from payments.vouchers import vouchers_lapse


@shared_task(**RETRY_ON_DATABASE_ERRORS)
def batch_build_task(batch_id: int) -> int:
    """Gather a batch's payments; a rerun after a crash resumes from the last chunk."""
    return batch_build(batch_id=batch_id).payments.count()


@shared_task(**RETRY_ON_DATABASE_ERRORS)
def bank_files_generate_task(batch_id: int) -> list[str]:
    """Generate both bank files of an approved batch (a stored file is kept as it is)."""
    return [bank_file_generate(batch_id=batch_id, fmt=fmt).sha256 for fmt in BankFile.Format.values]


@shared_task(**RETRY_ON_DATABASE_ERRORS)
def vouchers_lapse_task() -> int:
    """Lapse unspent vouchers past their expiry (daily, by beat); lapses nothing twice."""
    return vouchers_lapse()

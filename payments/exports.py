"""Bank files out: the CSV and the ISO 20022 pain.001 of a batch, generated once, kept encrypted.

A file is generated from the batch's payments in id order with the approval time as its
creation time, so regenerating it gives the same bytes. The pain.001 is validated against
the schema before it is stored; nothing unvalidated is ever served.
"""

import tempfile
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.core.files import File
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.audit import audit_record
from core.crypto import encrypt_file
from core.exceptions import Conflict, DomainError, InvalidTransition
from core.files import stored_file_chunks
from core.outbox import outbox_request
from payments.bankfiles import (
    BatchHeader,
    TransferLine,
    validate_pain001,
    write_csv,
    write_pain001,
)
from payments.models import BankFile, DisbursementBatch, Payment, payment_reference

FILE_PURPOSE = BankFile.FILE_PURPOSE
EXPORTABLE_STATES = (
    DisbursementBatch.Status.APPROVED,
    DisbursementBatch.Status.SENT,
    DisbursementBatch.Status.RECONCILED,
    DisbursementBatch.Status.CLOSED,
)
CONTENT_TYPES = {
    BankFile.Format.CSV: "text/csv; charset=utf-8",
    BankFile.Format.PAIN001: "application/xml",
}
EXTENSIONS = {BankFile.Format.CSV: "csv", BankFile.Format.PAIN001: "xml"}


def _memo(batch: DisbursementBatch) -> str:
    round_ = batch.round
    if batch.is_settlement:
        period = f"{batch.period_starts_on:%Y%m%d}-{batch.period_ends_on:%Y%m%d}"
        return f"{round_.program.name_ko} {round_.year} 정산 {period}"[:140]
    return f"{round_.program.name_ko} {round_.year}"[:140]


def transfer_lines(batch: DisbursementBatch) -> Iterator[TransferLine]:
    """The transfers of a batch in a fixed order: every payment not held out."""
    memo = _memo(batch)
    # Tuples, not models: the FSM mixin would reload a deferred status row by row.
    rows = (
        Payment.objects.filter(batch=batch)
        .exclude(status=Payment.Status.CANCELLED)
        .order_by("id")
        .values_list("id", "bank_code", "account_number", "account_holder", "amount")
    )
    for pk, bank_code, account_number, holder, amount in rows.iterator(chunk_size=5000):
        yield TransferLine(
            reference=payment_reference(pk),
            bank_code=bank_code,
            account_number=account_number.replace("-", ""),
            account_holder=holder,
            amount=amount,
            memo=memo,
        )


def batch_header(batch: DisbursementBatch, *, count: int, total: int) -> BatchHeader:
    created = timezone.localtime(batch.approved_at).replace(microsecond=0)
    return BatchHeader(
        message_id=f"BAEUM-B{batch.pk:010d}",
        created_at=created,
        execution_date=(created + timedelta(days=1)).date(),
        initiating_party=settings.BAEUM_DEBTOR_NAME,
        debtor_account=settings.BAEUM_DEBTOR_ACCOUNT,
        debtor_bank_code=settings.BAEUM_DEBTOR_BANK_CODE,
        payment_info_id=f"BAEUM-B{batch.pk:010d}-1",
        number_of_transactions=count,
        control_sum=total,
    )


def _batch_totals(batch: DisbursementBatch) -> tuple[int, int]:
    from django.db.models import Count, Sum

    totals = (
        Payment.objects.filter(batch=batch)
        .exclude(status=Payment.Status.CANCELLED)
        .aggregate(count=Count("id"), total=Sum("amount"))
    )
    return totals["count"], totals["total"] or 0


def bank_file_write(batch: DisbursementBatch, fmt: str, out) -> tuple[int, int]:
    """Write a batch's bank file in a format to a binary stream; return (count, total)."""
    if fmt == BankFile.Format.CSV:
        return write_csv(transfer_lines(batch), out)
    count, total = _batch_totals(batch)
    return write_pain001(batch_header(batch, count=count, total=total), transfer_lines(batch), out)


def bank_file_generate(*, batch_id: int, fmt: str) -> BankFile:
    """Generate, check and store one bank file of an approved batch; safe to run twice."""
    existing = BankFile.objects.filter(batch_id=batch_id, format=fmt).first()
    if existing is not None:
        return existing
    batch = DisbursementBatch.objects.select_related("round__program").get(pk=batch_id)
    if batch.status not in EXPORTABLE_STATES:
        raise ValueError(f"batch #{batch_id} is {batch.status}; only an approved batch exports")
    with tempfile.TemporaryFile() as plain, tempfile.TemporaryFile() as sealed:
        count, total = bank_file_write(batch, fmt, plain)
        if fmt == BankFile.Format.PAIN001:
            plain.seek(0)
            validate_pain001(plain)
        plain.seek(0)
        digest = encrypt_file(plain, sealed, purpose=FILE_PURPOSE)
        size = plain.tell()
        sealed.seek(0)
        bank_file = BankFile(
            batch=batch,
            format=fmt,
            sha256=digest,
            size=size,
            payments_count=count,
            total_amount=total,
        )
        bank_file.file.save(f"{fmt}.bin", File(sealed), save=False)
    try:
        with transaction.atomic():
            bank_file.save()
    except IntegrityError:
        # Another worker stored it first: keep theirs.
        bank_file.file.delete(save=False)
        return BankFile.objects.get(batch_id=batch_id, format=fmt)
    return bank_file


def bank_file_chunks(bank_file: BankFile) -> Iterator[bytes]:
    """The plaintext of a stored bank file, checked whole before the first byte is handed
    out: a bank never receives part of a file."""
    return stored_file_chunks(bank_file.file, purpose=FILE_PURPOSE)


def bank_file_name(bank_file: BankFile) -> str:
    return f"baeum-batch-{bank_file.batch_id}.{EXTENSIONS[bank_file.format]}"


@transaction.atomic
def bank_file_download(*, bank_file: BankFile, actor) -> BankFile:
    """Record who took a bank file out of Baeum, and when (the first time is kept on the file)."""
    bank_file = BankFile.objects.select_for_update().get(pk=bank_file.pk)
    if bank_file.downloaded_at is None:
        bank_file.downloaded_at = timezone.now()
        bank_file.downloaded_by = actor
        bank_file.save(update_fields=["downloaded_at", "downloaded_by"])
    audit_record(
        actor=actor,
        obj=bank_file.batch,
        action="batch.file_downloaded",
        data={"format": bank_file.format, "sha256": bank_file.sha256},
    )
    return bank_file


def bank_files_key(batch: DisbursementBatch) -> str:
    """The outbox key of the work that makes a batch's bank files (once per batch)."""
    return f"bank_files:{batch.pk}"


def bank_file_for_download(
    *, batch: DisbursementBatch, fmt: str, actor
) -> tuple[BankFile, Iterator[bytes]] | None:
    """The batch's file in a format and its content, recorded as downloaded; None while it
    is being made. A file that does not read whole raises before it is recorded as taken
    out, so the batch cannot be marked sent on it."""
    if fmt not in BankFile.Format.values:
        raise DomainError(
            "Choose format=csv or format=pain001.", code="invalid_choice", field="format"
        )
    if not batch.pays_by_bank:
        raise Conflict(
            "A voucher round is credited in Baeum: it has no bank file.",
            code="no_file",
            field="format",
        )
    if batch.status not in EXPORTABLE_STATES:
        raise InvalidTransition(
            f"A batch that is {batch.status} has no bank file yet: it must be approved first."
        )
    bank_file = batch.files.filter(format=fmt).first()
    if bank_file is None:
        from payments.tasks import bank_files_generate_task

        # Through the outbox, as at approval: a broker that is down delays the file, it
        # does not fail the download. Eager, the file is made by the time this returns.
        outbox_request(bank_files_generate_task, batch.pk, key=bank_files_key(batch))
        bank_file = batch.files.filter(format=fmt).first()
    if bank_file is None:
        return None
    chunks = bank_file_chunks(bank_file)
    return bank_file_download(bank_file=bank_file, actor=actor), chunks

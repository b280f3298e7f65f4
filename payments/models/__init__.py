"""Payments: disbursement batches and bank files; voucher accounts, providers and their
ledger; recoveries from recipients whose training ended early."""

from payments.models.audit import BatchAuditReading
from payments.models.batches import (
    BATCH_KIND_CHOICES,
    BATCH_STATUS_CHOICES,
    PAYMENT_STATUS_CHOICES,
    REFERENCE_PREFIX,
    RESULT_IMPORT_STATUS_CHOICES,
    BankFile,
    BankResultImport,
    BuildChunk,
    DisbursementBatch,
    Payment,
    bank_file_path,
    payment_reference,
    reference_to_pk,
)
from payments.models.recoveries import RECOVERY_STATUS_CHOICES, Recovery, Repayment
from payments.models.vouchers import (
    VOUCHER_ENTRY_KIND_CHOICES,
    Provider,
    ProviderUser,
    VoucherAccount,
    VoucherEntry,
)

__all__ = [
    "BATCH_KIND_CHOICES",
    "BATCH_STATUS_CHOICES",
    "PAYMENT_STATUS_CHOICES",
    "RECOVERY_STATUS_CHOICES",
    "REFERENCE_PREFIX",
    "RESULT_IMPORT_STATUS_CHOICES",
    "VOUCHER_ENTRY_KIND_CHOICES",
    "BankFile",
    "BankResultImport",
    "BatchAuditReading",
    "BuildChunk",
    "DisbursementBatch",
    "Payment",
    "Provider",
    "ProviderUser",
    "Recovery",
    "Repayment",
    "VoucherAccount",
    "VoucherEntry",
    "bank_file_path",
    "payment_reference",
    "reference_to_pk",
]

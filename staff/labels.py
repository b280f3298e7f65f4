"""What the staff pages call each state, flag, outcome and registry, in the user's language.

The stored values stay English codes (the API and reports key on them); only their names
here are translated.
"""

from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

APPLICATION_STATUS = {
    "draft": _("Draft"),
    "submitted": _("Submitted"),
    "screening": _("Screening"),
    "under_review": _("Under review"),
    "needs_documents": _("Documents requested"),
    "approved": _("Approved"),
    "rejected": _("Rejected"),
    "appealed": _("Appealed"),
    "selected": _("Selected"),
    "waitlisted": _("Waitlisted"),
    "withdrawn": _("Withdrawn"),
}
ROUND_STATUS = {
    "draft": _("Draft"),
    "open": pgettext_lazy("round", "Open"),
    "closed": pgettext_lazy("round", "Closed"),
    "selected": pgettext_lazy("round", "Selected"),
    "disbursing": _("Disbursing"),
    "completed": _("Completed"),
    "cancelled": _("Cancelled"),
}
BATCH_STATUS = {
    "draft": pgettext_lazy("batch", "Being prepared"),
    "pending_approval": _("Awaiting approval"),
    "approved": _("Approved"),
    "sent": _("Sent"),
    "reconciled": _("Reconciled"),
    "closed": pgettext_lazy("batch", "Closed"),
    "cancelled": _("Cancelled"),
}
PAYMENT_STATUS = {
    "pending": _("Pending"),
    "sent": _("Sent"),
    "paid": _("Paid"),
    "failed": _("Failed"),
    "reissued": _("Reissued"),
    "cancelled": pgettext_lazy("payment", "Held out"),
}
IMPORT_STATUS = {
    "queued": _("Queued"),
    "running": _("Running"),
    "succeeded": _("Succeeded"),
    "failed": pgettext_lazy("import", "Failed"),
}
RECOVERY_STATUS = {
    "open": pgettext_lazy("recovery", "Open"),
    "repaid": pgettext_lazy("recovery", "Repaid"),
    "waived": pgettext_lazy("recovery", "Waived"),
}
STATUS_TABLES = {
    "application": APPLICATION_STATUS,
    "round": ROUND_STATUS,
    "batch": BATCH_STATUS,
    "payment": PAYMENT_STATUS,
    "import": IMPORT_STATUS,
    "recovery": RECOVERY_STATUS,
}
# Kept for the places that name an application's state (the queue, the history).
STATUS = APPLICATION_STATUS

# The tone of each state's badge: what a person should notice.
STATUS_TONE = {
    "approved": "ok",
    "selected": "ok",
    "paid": "ok",
    "reconciled": "ok",
    "closed": "muted",
    "succeeded": "ok",
    "completed": "ok",
    "open": "ok",
    "rejected": "bad",
    "failed": "bad",
    "cancelled": "muted",
    "withdrawn": "muted",
    "needs_documents": "warn",
    "pending_approval": "warn",
    "under_review": "info",
    "waitlisted": "warn",
    "appealed": "warn",
    "repaid": "ok",
    "waived": "muted",
}

REVIEW_FLAG = {
    "duplicate": _("Duplicate benefit"),
    "ineligible": _("Ineligible"),
    "needs_review": _("Needs review"),
    "needs_documents": _("Documents requested"),
    "eligibility_changed": _("Eligibility changed"),
    "appeal": _("Appeal"),
}

RECOVERY_RULE = {
    "whole": _("The whole amount"),
    "pro_rata": _("Pro rata to the days not attended"),
}

# An appeal's decision, and a caseworker's judgement of a duplicate match.
APPEAL_OUTCOME = {
    "overturned": _("Overturned (approve)"),
    "upheld": _("Upheld (reject for good)"),
}
MATCH_RESOLUTION = {
    "not_the_same_person": _("Not the same person"),
    "no_overlap_in_fact": _("No overlap in fact"),
    "confirmed_duplicate": _("Confirmed duplicate"),
}

OUTCOME = {
    "eligible": _("Eligible"),
    "ineligible": _("Ineligible"),
    "needs_review": _("Needs review"),
    # One rule's result
    "pass": _("Pass"),
    "fail": _("Fail"),
    "review": _("Review"),
}
OUTCOME_TONE = {
    "eligible": "ok",
    "pass": "ok",
    "ineligible": "bad",
    "fail": "bad",
    "needs_review": "warn",
    "review": "warn",
}

POLICY = {
    "block": _("Block"),
    "review": _("Review"),
    "allow": _("Allow"),
}

REGISTRY = {
    "social_security": _("Social-security status"),
    "naeilbaeum": _("Naeil-baeum card"),
    "youth_allowance": _("Seoul youth allowance"),
    "national_voucher": _("National lifelong-learning voucher"),
    "training_courses": _("Vocational-training course catalogue"),
    "internal_application": _("Another application this year"),
    "shared_account": _("Shared bank account"),
}

INCOME = {
    "basic_livelihood": _("Basic livelihood"),
    "near_poor": _("Near-poor"),
    "none": _("Other"),
}

DOCUMENT_KIND = {
    "income_proof": _("Income proof"),
    "enrollment_certificate": _("Enrollment certificate"),
    "bank_book": _("Bank book"),
    "other": _("Other document"),
}

AUDIT_FLAG = {
    "shared_account": _("One account pays several people"),
    "account_changed": _("Bank account changed recently"),
    "amount_anomaly": _("Amount differs from the round's"),
    "application_changed": _("Application changed since selection"),
    "eligibility_changed": _("Eligibility changed since the decision"),
}

BATCH_KIND = {
    "benefit": _("Benefit payments"),
    "settlement": _("Provider settlement"),
}

PROGRAM = {
    "SCHOLARSHIP": _("Lifelong-learning scholarship"),
    "VOUCHER": _("Lifelong-learning voucher"),
}

AUDIT_ACTION = {
    "application.created": _("Application created"),
    "application.updated": _("Application edited"),
    "application.submitted": _("Submitted"),
    "application.screening_started": _("Screening started"),
    "application.screened": _("Screened"),
    "application.screening_recorded": _("Screening result recorded"),
    "application.approved": _("Approved"),
    "application.rejected": _("Rejected"),
    "application.documents_requested": _("Documents requested"),
    "application.selected": _("Selected"),
    "application.waitlisted": _("Waitlisted"),
    "application.withdrawn": _("Withdrawn"),
    "application.appealed": _("Appeal filed"),
    "application.appeal_overturned": _("Appeal overturned"),
    "application.appeal_upheld": _("Appeal upheld"),
    "application.revoked": _("Approval revoked"),
    "application.flag_raised": _("Flag raised"),
    "application.flag_cleared": _("Flag cleared"),
    "application.match_resolved": _("Duplicate match resolved"),
    "application.training_ended": _("Training ended early"),
    "document.uploaded": _("Document uploaded"),
    "document.viewed": _("Document opened"),
    "applicant.rrn_revealed": _("RRN revealed"),
    "batch.created": _("Batch created"),
    "batch.built": _("Payments gathered"),
    "batch.submit": _("Submitted for approval"),
    "batch.approve": _("Approved"),
    "batch.disburse": _("Sent"),
    "batch.reconcile": _("Reconciled"),
    "batch.close": _("Closed"),
    "batch.cancel": _("Cancelled"),
    "batch.payments_freed": _("Payments freed"),
    "batch.payment_held": _("Payment held out"),
    "batch.flagged_held": _("Flagged payments held out"),
    "batch.file_downloaded": _("Bank file downloaded"),
    "batch.results_imported": _("Bank results imported"),
    "recovery.opened": _("Recovery opened"),
    "recovery.repayment_recorded": _("Repayment recorded"),
    "recovery.repaid": _("Repaid in full"),
    "recovery.waiver_requested": _("Waiver requested"),
    "recovery.waived": _("Waiver approved"),
    "round.open": _("Round opened"),
    "round.close": _("Round closed"),
    "round.select": _("Selection run"),
    "round.voucher_top_up": _("Top-up granted"),
}


def label(table: dict, value) -> str:
    """The name of a value in a table, or the value itself when it has none."""
    if value is None or value == "":
        return ""
    return str(table.get(value, value))

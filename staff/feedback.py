"""Calling a service from a staff view: a refusal becomes a message on the page, never a 500.

Services speak in stable codes; the staff pages show each known code in the user's
language and fall back to the service's own words for the others.
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils.translation import gettext_lazy as _
from django_fsm import ConcurrentTransition, TransitionNotAllowed

from core.exceptions import DomainError

# What a staff member reads for each refusal code of the services.
CODE_MESSAGES = {
    "invalid_transition": _(
        "This cannot be done in the current state: it may have been done already (a second "
        "click, or a colleague). The page shows the state now."
    ),
    "conflict": _("Someone changed this meanwhile. The page shows it as it is now."),
    "required": _("A reason is required."),
    "maker_checker": _("You prepared this batch: another finance user must approve it."),
    "batch_building": _("The batch is still gathering its payments; wait for it to finish."),
    "nothing_to_pay": _("There is nothing to pay."),
    "round_not_selected": _("Run the round's selection before paying it."),
    "export_missing": _("Download the bank file before marking the batch as sent."),
    "over_budget": _("This batch would take the round over its budget."),
    "no_file": _("A voucher round is credited in Baeum: it has no bank file."),
    "no_top_up": _("This round has no top-up configured."),
    "not_a_voucher_round": _("Only a voucher round has providers to settle."),
    "invalid_period": _("The period ends before it starts."),
    "invalid_result_file": _("The result file was rejected; nothing was applied."),
    "round_not_open": _("This round is not open for applications."),
    "budget_below_committed": _(
        "The budget cannot go below what this round has already committed."
    ),
    "not_editable": _("The application can no longer be edited."),
    "unknown_kind": _("Unknown registry."),
    "same_reviewer": _(
        "You made the decision under appeal: another caseworker must decide the appeal."
    ),
    "rejection_final": _("This rejection was confirmed on appeal and is final."),
    "no_open_flag": _(
        "This flag is no longer open: it may have been cleared already. The page shows it as "
        "it is now."
    ),
    "payment_in_progress": _(
        "A payment for this application is on its way: have finance hold it out of its batch "
        "before approval, or record the end once the bank's result is in."
    ),
    "voucher_program": _(
        "A voucher's unused balance is handled by the voucher ledger: there is no scholarship "
        "to recover."
    ),
    "recovery_exists": _("The end of this training is recorded already, with its recovery."),
    "outside_training": _(
        "The last day attended must fall within the training, before its last day."
    ),
    "no_training": _("The application names no training period."),
    "future": _("A date in the future cannot be recorded."),
    "exceeds_outstanding": _("The repayment is more than is still owed."),
    "before_training_end": _("A repayment cannot be dated before the training ended."),
    "recovery_closed": _("This recovery is repaid or waived already: nothing more is owed."),
    "waiver_pending": _("A waiver of this recovery already waits for approval."),
    "no_waiver_requested": _("Nobody asked to waive this recovery: request the waiver first."),
    "audit_changed": _(
        "Payments were flagged since the audit you read: look at the audit below, read anew, "
        "then approve."
    ),
    "file_too_large": _("The file is too large."),
    "unsupported_file_type": _("The file must be a PDF, PNG or JPEG document."),
    "stored_file_unreadable": _(
        "The stored file could not be read whole; nothing was served. Tell the administrator."
    ),
}
PERMISSION_MESSAGE = _("Your role does not allow this action.")


def _text(code: str | None, fallback: str) -> str:
    return str(CODE_MESSAGES.get(code or "", fallback))


def report_refusal(request, exc: Exception, *, codes: dict | None = None) -> None:
    """Put the reason a service refused on the page, as messages; `codes` gives this page's
    own words for some codes (the same code may mean another object elsewhere)."""
    if isinstance(exc, DomainError):
        if codes and exc.code in codes:
            messages.error(request, str(codes[exc.code]))
            return
        messages.error(request, _text(exc.code, exc.message))
        for detail, _code in exc.details:
            # One line of a rejected file each; the service's words name the line.
            messages.error(request, detail)
    elif isinstance(exc, ValidationError):
        errors = (
            [e for field in exc.error_dict.values() for e in field]
            if hasattr(exc, "error_dict")
            else exc.error_list
        )
        for error in errors:
            text = error.message % error.params if error.params else error.message
            messages.error(request, _text(error.code, text))
    elif isinstance(exc, PermissionDenied):
        messages.error(request, PERMISSION_MESSAGE)
    elif isinstance(exc, ConcurrentTransition):
        messages.error(request, CODE_MESSAGES["conflict"])
    else:  # TransitionNotAllowed
        messages.error(request, CODE_MESSAGES["invalid_transition"])


REFUSALS = (
    DomainError,
    ValidationError,
    PermissionDenied,
    TransitionNotAllowed,
    ConcurrentTransition,
)


def run_service(request, call, *, success: str | None = None, codes: dict | None = None):
    """Call a service; on success add `success` as a message and return (True, its result),
    on a refusal put the reason on the page (in `codes`' words for those) and return
    (False, None)."""
    try:
        result = call()
    except REFUSALS as exc:
        report_refusal(request, exc, codes=codes)
        return False, None
    if success:
        messages.success(request, success)
    return True, result


def form_errors(request, form) -> None:
    """Put a form's errors on the page (the form posts back through a redirect)."""
    for field, errors in form.errors.items():
        label = form.fields[field].label if field in form.fields else None
        for error in errors:
            messages.error(request, f"{label}: {error}" if label else error)

"""Finance's recovery pages (환수): the list, one recovery, a repayment, and a waiver asked by
one finance user and approved by another. Each action calls payments.recoveries."""

from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from payments import recoveries
from payments import selectors as payment_selectors
from staff import selectors as staff_selectors
from staff.access import RECOVERY_READ, RECOVERY_WRITE, REVIEW_READ, can, staff_view
from staff.feedback import form_errors, run_service
from staff.forms import ReasonForm, RecoveryFilterForm, RepaymentForm
from staff.views.common import paginate, querystring_without

# The waiver's maker–checker, in this page's words (a batch's are the default).
WAIVER_CODES = {
    "maker_checker": gettext_lazy(
        "You requested this waiver: another finance user must approve it."
    )
}


@staff_view(*RECOVERY_READ)
def recovery_list(request):
    form = RecoveryFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    page = paginate(request, staff_selectors.recovery_list(user=request.user, filters=filters))
    return render(
        request,
        "staff/recoveries/recovery_list.html",
        {
            "menu": "recoveries",
            "form": form,
            "page": page,
            "query": querystring_without(request, "page"),
        },
    )


@staff_view(*RECOVERY_READ)
def recovery_detail(request, pk: int):
    recovery = payment_selectors.recovery_get(user=request.user, pk=pk)
    writable = can(request, *RECOVERY_WRITE) and recovery.outstanding > 0
    return render(
        request,
        "staff/recoveries/recovery.html",
        {
            "menu": "recoveries",
            "recovery": recovery,
            "application": recovery.application,
            "repayments": list(recovery.repayments.all()),
            "history": list(staff_selectors.object_history(recovery)),
            "writable": writable,
            "can_open_application": can(request, *REVIEW_READ),
            "is_waiver_requester": recovery.waiver_requested_by_id == request.user.pk,
            "repayment_form": RepaymentForm(),
            "reason_form": ReasonForm(),
        },
    )


def _act(request, pk: int, *, form, call, done: str, codes: dict | None = None):
    recovery = payment_selectors.recovery_get(user=request.user, pk=pk)
    if form is not None and not form.is_valid():
        form_errors(request, form)
        return redirect("staff:recovery", pk)
    data = form.cleaned_data if form is not None else {}
    run_service(request, lambda: call(recovery, data), success=done, codes=codes)
    return redirect("staff:recovery", pk)


@require_POST
@staff_view(*RECOVERY_WRITE)
def repayment_record(request, pk: int):
    return _act(
        request,
        pk,
        form=RepaymentForm(request.POST),
        call=lambda recovery, data: recoveries.recovery_repayment_record(
            recovery=recovery, actor=request.user, amount=data["amount"], paid_on=data["paid_on"]
        ),
        done=_("Repayment recorded on recovery #%(id)s.") % {"id": pk},
    )


@require_POST
@staff_view(*RECOVERY_WRITE)
def waiver_request(request, pk: int):
    return _act(
        request,
        pk,
        form=ReasonForm(request.POST),
        call=lambda recovery, data: recoveries.recovery_waiver_request(
            recovery=recovery, actor=request.user, reason=data["reason"]
        ),
        done=_("Waiver of recovery #%(id)s requested: another finance user approves it.")
        % {"id": pk},
    )


@require_POST
@staff_view(*RECOVERY_WRITE)
def waiver_approve(request, pk: int):
    return _act(
        request,
        pk,
        form=None,
        call=lambda recovery, data: recoveries.recovery_waiver_approve(
            recovery=recovery, actor=request.user
        ),
        done=_("Waiver of recovery #%(id)s approved: nothing more is owed.") % {"id": pk},
        codes=WAIVER_CODES,
    )

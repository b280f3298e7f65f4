"""Finance's pages: disbursement and settlement batches, from creation to reconciliation."""

from django.contrib import messages
from django.http import JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from benefits.models import ApplicationFlag
from payments import audit as audits
from payments import exports, services
from payments import selectors as payment_selectors
from payments.imports import bank_results_submit
from payments.models import BankResultImport, DisbursementBatch
from staff import selectors as staff_selectors
from staff.access import FINANCE_READ, FINANCE_WRITE, can, staff_view
from staff.feedback import form_errors, run_service
from staff.forms import (
    BatchCreateForm,
    BatchFilterForm,
    OptionalReasonForm,
    PaymentFilterForm,
    ReasonForm,
    ResultUploadForm,
    SettlementCreateForm,
)
from staff.labels import IMPORT_STATUS, label
from staff.views.common import paginate, querystring_without

# The transitions a finance user asks for on the batch page; the FSM says which apply now.
BATCH_ACTIONS = ("submit", "approve", "disburse", "cancel", "close")
# Payments can be held out of a batch until it is approved.
HOLDABLE_STATES = (DisbursementBatch.Status.DRAFT, DisbursementBatch.Status.PENDING_APPROVAL)


@staff_view(*FINANCE_READ)
def batch_list(request):
    form = BatchFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    page = paginate(request, staff_selectors.batch_list(filters=filters))
    rows = [{"batch": b, "totals": payment_selectors.batch_counts(b)} for b in page.object_list]
    writable = can(request, *FINANCE_WRITE)
    return render(
        request,
        "staff/finance/batch_list.html",
        {
            "menu": "batches",
            "form": form,
            "page": page,
            "rows": rows,
            "query": querystring_without(request, "page"),
            "create_form": BatchCreateForm() if writable else None,
            "settlement_form": SettlementCreateForm() if writable else None,
        },
    )


@require_POST
@staff_view(*FINANCE_WRITE)
def batch_create(request):
    form = BatchCreateForm(request.POST)
    if not form.is_valid():
        form_errors(request, form)
        return redirect("staff:batch_list")
    ok, batch = run_service(
        request,
        lambda: services.batch_open(round=form.cleaned_data["round"], actor=request.user),
    )
    if not ok:
        return redirect("staff:batch_list")
    messages.success(request, _("Batch #%(id)s created.") % {"id": batch.pk})
    return redirect("staff:batch", batch.pk)


@require_POST
@staff_view(*FINANCE_WRITE)
def settlement_create(request):
    form = SettlementCreateForm(request.POST)
    if not form.is_valid():
        form_errors(request, form)
        return redirect("staff:batch_list")
    data = form.cleaned_data
    ok, batch = run_service(
        request,
        lambda: services.batch_open(
            round=data["round"],
            actor=request.user,
            kind=DisbursementBatch.Kind.SETTLEMENT,
            period_starts_on=data["period_starts_on"],
            period_ends_on=data["period_ends_on"],
        ),
    )
    if not ok:
        return redirect("staff:batch_list")
    messages.success(request, _("Settlement batch #%(id)s created.") % {"id": batch.pk})
    return redirect("staff:batch", batch.pk)


@staff_view(*FINANCE_READ)
def batch_detail(request, pk: int):
    batch = payment_selectors.batch_get(pk=pk)
    writable = can(request, *FINANCE_WRITE)
    before_approval = batch.status in HOLDABLE_STATES
    filter_form = PaymentFilterForm(request.GET or None)
    filters = filter_form.cleaned_data if filter_form.is_valid() else {}
    totals = payment_selectors.batch_counts(batch)
    # One reading for the page: the summary, the audit list and the payments' badges.
    read = audits.batch_audit_current(batch=batch, actor=request.user)
    # Unfiltered, the payments are counted already (totals); so is the audit list (summary).
    every = sum(totals["counts"].values()) if not any(filters.values()) else None
    payments = paginate(
        request,
        staff_selectors.batch_payments(batch, filters=filters, audit=read),
        count=every,
        rows=staff_selectors.batch_payments(batch, filters={}, audit=read),
    )
    audit_summary = audits.batch_audit_summary(batch, audit=read) if before_approval else None
    audit = (
        paginate(
            request,
            audits.batch_audit(batch, audit=read),
            param="audit_page",
            size=20,
            count=audit_summary.pop("any"),
        )
        if before_approval
        else None
    )
    held = paginate(
        request, staff_selectors.batch_eligibility_holds(batch), param="held_page", size=20
    )
    _attach_eligibility_flags([*(audit or []), *held])
    available = (
        {t.name for t in batch.get_available_user_status_transitions(request.user)}
        if writable
        else set()
    )
    is_preparer = request.user.pk == batch.prepared_by_id
    return render(
        request,
        "staff/finance/batch.html",
        {
            "menu": "batches",
            "batch": batch,
            "totals": totals,
            "ledger": None
            if batch.is_settlement
            else payment_selectors.round_budget_ledger(batch.round),
            "audit_summary": audit_summary,
            "audit_read": read,
            "audit": audit,
            "held": held,
            "held_query": querystring_without(request, "held_page"),
            "payments": payments,
            "filter_form": filter_form,
            "files": list(batch.files.select_related("downloaded_by")),
            "imports": list(staff_selectors.batch_result_imports(batch)[:20]),
            "actions": [a for a in BATCH_ACTIONS if a in available],
            "is_preparer": is_preparer,
            "can_hold": writable and before_approval,
            "can_export": writable
            and batch.pays_by_bank
            and batch.status in exports.EXPORTABLE_STATES,
            "can_upload": writable and batch.status == DisbursementBatch.Status.SENT,
            "needs_download": batch.pays_by_bank
            and batch.status == DisbursementBatch.Status.APPROVED,
            "writable": writable,
            "reason_form": ReasonForm(),
            "note_form": OptionalReasonForm(),
            "upload_form": ResultUploadForm(),
            "query": querystring_without(request, "page"),
            "audit_query": querystring_without(request, "audit_page"),
        },
    )


def _attach_eligibility_flags(payments) -> None:
    """Give each payment flagged or held for changed eligibility the flag that says why
    (`eligibility_flag`), in one query for the page."""
    wanted = [
        p
        for p in payments
        if p.application_id and (getattr(p, "eligibility_changed", False) or p.hold_reason)
    ]
    flags = (
        staff_selectors.latest_flags(
            {p.application_id for p in wanted}, kind=ApplicationFlag.Kind.ELIGIBILITY_CHANGED
        )
        if wanted
        else {}
    )
    for payment in wanted:
        payment.eligibility_flag = flags.get(payment.application_id)


def _transition_call(action: str, batch, actor, reason: str, audit_seen: int):
    if action == "submit":
        return lambda: services.batch_submit(batch=batch, actor=actor)
    if action == "approve":
        return lambda: services.batch_approve(
            batch=batch, actor=actor, reason=reason, audit_seen=audit_seen
        )
    if action == "disburse":
        return lambda: services.batch_disburse(batch=batch, actor=actor)
    if action == "cancel":
        return lambda: services.batch_cancel(batch=batch, actor=actor, reason=reason)
    return lambda: services.batch_close(batch=batch, actor=actor)


@require_POST
@staff_view(*FINANCE_WRITE)
def batch_transition(request, pk: int, action: str):
    batch = payment_selectors.batch_get(pk=pk)
    # Cancelling money already prepared needs a reason; approving takes an optional note.
    form = (ReasonForm if action == "cancel" else OptionalReasonForm)(request.POST)
    if not form.is_valid():
        form_errors(request, form)
        return redirect("staff:batch", pk)
    done = {
        "submit": _("Batch #%(id)s submitted for approval."),
        "approve": _("Batch #%(id)s approved."),
        "disburse": _("Batch #%(id)s marked as sent."),
        "cancel": _("Batch #%(id)s cancelled."),
        "close": _("Batch #%(id)s closed."),
    }[action] % {"id": pk}
    # The approval names the audit reading its page showed (0: none, which is refused).
    seen = request.POST.get("audit_reading", "")
    seen = int(seen) if seen.isascii() and seen.isdigit() and len(seen) <= 18 else 0
    ok, _batch = run_service(
        request,
        _transition_call(action, batch, request.user, form.cleaned_data["reason"], seen),
        success=done,
    )
    if action == "approve" and not ok:
        # Refused: the page shows the audit read again, with what changed since.
        audits.batch_audit_keep(batch=batch, actor=request.user)
    return redirect("staff:batch", pk)


@require_POST
@staff_view(*FINANCE_WRITE)
def batch_audit_recheck(request, pk: int):
    """Read the batch's pre-release audit again now (the page shows the newest reading)."""
    batch = payment_selectors.batch_get(pk=pk)
    audits.batch_audit_keep(batch=batch, actor=request.user)
    messages.success(request, _("The pre-release audit was read again."))
    return redirect(reverse("staff:batch", args=[pk]) + "#audit")


@staff_view(*FINANCE_WRITE)
def batch_export(request, pk: int, fmt: str):
    """The bank file, through the service the API's export uses: each download is recorded."""
    batch = payment_selectors.batch_get(pk=pk)
    ok, found = run_service(
        request,
        lambda: exports.bank_file_for_download(batch=batch, fmt=fmt, actor=request.user),
    )
    if not ok:
        return redirect("staff:batch", pk)
    if found is None:
        messages.info(request, _("The bank file is being generated; try again in a moment."))
        return redirect("staff:batch", pk)
    bank_file, chunks = found
    response = StreamingHttpResponse(chunks, content_type=exports.CONTENT_TYPES[bank_file.format])
    response["Content-Disposition"] = f'attachment; filename="{exports.bank_file_name(bank_file)}"'
    response["Content-Length"] = str(bank_file.size)
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@staff_view(*FINANCE_WRITE)
def batch_results(request, pk: int):
    batch = payment_selectors.batch_get(pk=pk)
    form = ResultUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        form_errors(request, form)
        return redirect("staff:batch", pk)
    ok, record = run_service(
        request,
        lambda: bank_results_submit(
            batch=batch, actor=request.user, upload=form.cleaned_data["file"]
        ),
    )
    if ok and record.status != record.Status.SUCCEEDED:
        messages.info(
            request,
            _("The bank result file is being applied; the reconciliation below shows how far."),
        )
    elif ok:
        summary = record.summary
        messages.success(
            request,
            _(
                "Bank results applied: %(lines)s lines, %(paid)s paid, %(failed)s failed, "
                "%(pending)s still pending, %(unchanged)s unchanged."
            )
            % {
                key: summary.get(key, 0)
                for key in ("lines", "paid", "failed", "pending", "unchanged")
            },
        )
    return redirect(reverse("staff:batch", args=[pk]) + "#results")


@require_GET
@never_cache
@staff_view(*FINANCE_READ)
def batch_results_progress(request, pk: int, import_pk: int):
    """What the batch page polls while a result file is being applied."""
    record = get_object_or_404(BankResultImport, pk=import_pk, batch_id=pk)
    return JsonResponse(
        {
            "status": record.status,
            "status_label": label(IMPORT_STATUS, record.status),
            "lines_done": record.lines_done,
            "finished": record.status
            in (BankResultImport.Status.SUCCEEDED, BankResultImport.Status.FAILED),
        }
    )


@require_POST
@staff_view(*FINANCE_WRITE)
def payment_hold(request, pk: int, payment_pk: int):
    batch = payment_selectors.batch_get(pk=pk)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        form_errors(request, form)
        return redirect(reverse("staff:batch", args=[pk]) + "#audit")
    run_service(
        request,
        lambda: services.payment_hold(
            batch=batch,
            payment_id=payment_pk,
            actor=request.user,
            reason=form.cleaned_data["reason"],
        ),
        success=_("Payment %(reference)s held out of the batch.") % {"reference": f"#{payment_pk}"},
    )
    return redirect(reverse("staff:batch", args=[pk]) + "#audit")

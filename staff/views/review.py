"""The caseworker's pages: the queue, an application, its documents, and the decisions."""

from django.contrib import messages
from django.http import HttpResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_POST

from benefits import document_services, services
from benefits import selectors as benefit_selectors
from benefits.models import Application
from core.exceptions import DomainError
from staff import selectors as staff_selectors
from staff.access import RECOVERY_READ, REVIEW_READ, REVIEW_WRITE, can, staff_view
from staff.feedback import REFUSALS, form_errors, report_refusal, run_service
from staff.forms import WHOLE_RRN, OptionalReasonForm, QueueFilterForm, ReasonForm
from staff.views.after_decision import after_decision_context
from staff.views.common import paginate, querystring_without

# The decisions a caseworker takes on this page; the FSM says which apply now.
DECISIONS = ("approve", "reject", "request_documents")


def _queue_filters(query: QueryDict) -> dict:
    return QueueFilterForm(query or None).filters()


@staff_view(*REVIEW_READ)
def queue(request):
    if WHOLE_RRN.search(request.GET.get("q", "")):
        # Out of the address bar and the history at once: a whole RRN never stays in a URL.
        messages.error(
            request, _("Search by the masked part only (birth date and the next digit).")
        )
        return redirect("staff:queue")
    form = QueueFilterForm(request.GET or None)
    filters = form.filters()
    page = paginate(
        request,
        staff_selectors.review_queue(filters=filters),
        rows=staff_selectors.review_queue(filters={}),
    )
    rows = [
        {
            "application": a,
            "screening": benefit_selectors.current_screening(a),
            "flags": benefit_selectors.review_flags(a),
            "appeal": benefit_selectors.open_appeal(a),
        }
        for a in page.object_list
    ]
    return render(
        request,
        "staff/review/queue.html",
        {
            "menu": "queue",
            "form": form,
            "page": page,
            "rows": rows,
            "status_shown": filters["status"],
            "flag_shown": filters["flag"],
            "query": querystring_without(request, "page"),
            "detail_query": request.GET.urlencode(),
        },
    )


def _detail_context(request, application: Application, query: QueryDict) -> dict:
    run = benefit_selectors.current_screening(application)
    writable = can(request, *REVIEW_WRITE)
    available = (
        {t.name for t in application.get_available_user_status_transitions(request.user)}
        if writable
        else set()
    )
    return {
        **after_decision_context(
            application,
            run=run,
            writable=writable,
            user=request.user,
            can_read_recoveries=can(request, *RECOVERY_READ),
        ),
        "menu": "queue",
        "application": application,
        "applicant": application.applicant,
        "run": run,
        "rules": run.rule_results() if run else [],
        "flags": benefit_selectors.review_flags(application),
        "documents": list(application.documents.all()),
        "history": list(staff_selectors.application_history(application)),
        "decisions": [d for d in DECISIONS if d in available],
        "can_decide": writable,
        "can_reveal": writable,
        "next_id": staff_selectors.next_in_queue(filters=_queue_filters(query), after=application),
        "query": query.urlencode(),
        "reason_form": ReasonForm(),
        "note_form": OptionalReasonForm(),
    }


@never_cache
@staff_view(*REVIEW_READ)
def application_detail(request, pk: int):
    application = benefit_selectors.application_get_for_reviewer(pk=pk)
    return render(
        request,
        "staff/review/application.html",
        _detail_context(request, application, request.GET),
    )


@xframe_options_sameorigin
@staff_view(*REVIEW_READ)
def document(request, pk: int, document_id: int):
    """A document shown inside the application page; each read is audited by the service."""
    application = benefit_selectors.application_get_for_reviewer(pk=pk)
    try:
        document, chunks = document_services.document_open(
            application=application, document_id=document_id, actor=request.user
        )
    except DomainError as exc:
        return HttpResponse(
            str(exc.message), status=exc.status_code, content_type="text/plain; charset=utf-8"
        )
    response = StreamingHttpResponse(chunks, content_type=document.content_type)
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=request.GET.get("download") == "1", filename=document.original_name
    )
    response["Content-Length"] = str(document.size)
    response["Cache-Control"] = "no-store"
    return response


def _back(pk: int, query: str):
    url = reverse("staff:application", args=[pk])
    return redirect(f"{url}?{query}" if query else url)


def _posted_query(request) -> str:
    # The queue's filters travel with the form, so that "next" follows the same queue.
    return QueryDict(request.POST.get("queue", "")).urlencode()


def _decide(request, pk: int, *, service, form_class, done: str):
    application = benefit_selectors.application_get_for_reviewer(pk=pk)
    query = _posted_query(request)
    form = form_class(request.POST)
    if not form.is_valid():
        form_errors(request, form)
        return _back(pk, query)
    run_service(
        request,
        lambda: service(
            application=application, actor=request.user, reason=form.cleaned_data["reason"]
        ),
        success=done,
    )
    return _back(pk, query)


@require_POST
@staff_view(*REVIEW_WRITE)
def approve(request, pk: int):
    return _decide(
        request,
        pk,
        service=services.application_approve,
        form_class=OptionalReasonForm,
        done=_("Application #%(id)s approved.") % {"id": pk},
    )


@require_POST
@staff_view(*REVIEW_WRITE)
def reject(request, pk: int):
    return _decide(
        request,
        pk,
        service=services.application_reject,
        form_class=ReasonForm,
        done=_("Application #%(id)s rejected.") % {"id": pk},
    )


@require_POST
@staff_view(*REVIEW_WRITE)
def request_documents(request, pk: int):
    return _decide(
        request,
        pk,
        service=services.application_request_documents,
        form_class=ReasonForm,
        done=_("Documents requested for application #%(id)s.") % {"id": pk},
    )


@never_cache
@require_POST
@staff_view(*REVIEW_WRITE)
def reveal_rrn(request, pk: int):
    """Show the whole RRN once, in this response only: it is put neither in the session
    (which a redirect would need) nor in a URL. Each reveal is audited by the service."""
    application = benefit_selectors.application_get_for_reviewer(pk=pk)
    query = QueryDict(_posted_query(request))
    form = ReasonForm(request.POST)
    if not form.is_valid():
        form_errors(request, form)
        return _back(pk, query.urlencode())
    try:
        rrn = services.applicant_rrn_reveal(
            applicant=application.applicant,
            actor=request.user,
            reason=form.cleaned_data["reason"],
        )
    except REFUSALS as exc:
        report_refusal(request, exc)
        return _back(pk, query.urlencode())
    context = _detail_context(request, application, query)
    context["revealed_rrn"] = f"{rrn[:6]}-{rrn[6:]}" if len(rrn) == 13 else rrn
    context["reveal_reason"] = form.cleaned_data["reason"]
    response = render(request, "staff/review/application.html", context)
    response["Cache-Control"] = "no-store"
    return response

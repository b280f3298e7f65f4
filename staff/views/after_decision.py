"""The caseworker's actions after the decision, on the application page: an appeal's
decision, clearing an `eligibility_changed` flag, revoking an approval and resolving a
duplicate match. Each calls the service behind the API's endpoint and redirects back."""

from django.contrib import messages
from django.http import QueryDict
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from benefits import after_decision
from benefits import selectors as benefit_selectors
from benefits.models import Application
from benefits.training_end import RECOVERY_OPENED, REVOKED, application_training_end
from eligibility import rules
from eligibility.resolutions import match_resolve
from staff import selectors as staff_selectors
from staff.access import REVIEW_WRITE, staff_view
from staff.feedback import form_errors, run_service
from staff.forms import (
    AppealDecisionForm,
    FlagClearForm,
    MatchResolveForm,
    ReasonForm,
    TrainingEndForm,
)
from staff.templatetags.staff import won


def _duplicates(run, application: Application) -> list[dict]:
    """The current screening's duplicate matches, each record with the id to resolve it by
    and its resolution (from the prefetched `match_resolutions`)."""
    if run is None:
        return []
    resolutions = {f"{r.registry}.{r.record_key}": r for r in application.match_resolutions.all()}
    matches = []
    for match in run.duplicate_matches():
        registry = match["registry"]
        records = []
        for record in rules.match_records(registry, match.get("evidence") or {}):
            match_id = rules.match_id(registry, record)
            records.append(
                {"id": match_id, "record": record, "resolution": resolutions.get(match_id)}
            )
        matches.append({**match, "records": records})
    return matches


def after_decision_context(
    application: Application, *, run, writable: bool, user, can_read_recoveries: bool
) -> dict:
    """What the application page shows of the appeal, the flags, the revoke and the matches."""
    appeals = list(application.appeals.all())
    open_appeal = next((a for a in appeals if not a.outcome), None)
    approved = application.status in Application.APPROVED_STATES
    paid_or_paying = approved and staff_selectors.application_payment_exists(application)
    return {
        "appeals": appeals,
        "open_appeal": open_appeal if application.status == Application.Status.APPEALED else None,
        # The caseworker who rejected sees why the form is not theirs (the service refuses).
        "appeal_is_mine": open_appeal is not None and open_appeal.rejected_by_id == user.pk,
        "flag_history": list(staff_selectors.application_flags(application)),
        "open_flags": benefit_selectors.open_flags(application),
        "duplicates": _duplicates(run, application),
        "resolutions": list(application.match_resolutions.all()),
        "can_revoke": writable and approved and not paid_or_paying,
        "revoke_blocked_by_payment": writable and paid_or_paying,
        "recovery": benefit_selectors.application_recovery(application),
        # A scholarship recipient's training that ended early (the service refuses the rest;
        # once a recovery exists, the page shows it instead).
        "can_record_training_end": writable
        and approved
        and application.round.program.requires_training,
        "training_end_form": TrainingEndForm(),
        "can_read_recoveries": can_read_recoveries,
        "appeal_form": AppealDecisionForm(),
        "resolve_form": MatchResolveForm(),
    }


def _back(pk: int, request, anchor: str):
    # The queue's filters travel with the form, so that "next" follows the same queue.
    url = reverse("staff:application", args=[pk])
    query = QueryDict(request.POST.get("queue", "")).urlencode()
    return redirect(f"{url}?{query}#{anchor}" if query else f"{url}#{anchor}")


def _act(request, pk: int, *, form, anchor: str, call, done: str):
    application = benefit_selectors.application_get_for_reviewer(pk=pk)
    if not form.is_valid():
        form_errors(request, form)
        return _back(pk, request, anchor)
    run_service(request, lambda: call(application, form.cleaned_data), success=done)
    return _back(pk, request, anchor)


@require_POST
@staff_view(*REVIEW_WRITE)
def appeal_decide(request, pk: int):
    form = AppealDecisionForm(request.POST)
    outcome = form.data.get("outcome")
    done = (
        _("Appeal on application #%(id)s overturned: the application is approved.")
        if outcome == "overturned"
        else _("Appeal on application #%(id)s upheld: the rejection is final.")
    ) % {"id": pk}
    return _act(
        request,
        pk,
        form=form,
        anchor="appeal",
        call=lambda application, data: after_decision.application_appeal_decide(
            application=application,
            actor=request.user,
            outcome=data["outcome"],
            reason=data["reason"],
        ),
        done=done,
    )


@require_POST
@staff_view(*REVIEW_WRITE)
def flag_clear(request, pk: int):
    return _act(
        request,
        pk,
        form=FlagClearForm(request.POST),
        anchor="flags",
        call=lambda application, data: after_decision.application_flag_clear(
            application=application, actor=request.user, flag=data["flag"], reason=data["reason"]
        ),
        done=_("Flag cleared on application #%(id)s: its payment may go in the next batch.")
        % {"id": pk},
    )


@require_POST
@staff_view(*REVIEW_WRITE)
def revoke(request, pk: int):
    return _act(
        request,
        pk,
        form=ReasonForm(request.POST),
        anchor="revoke",
        call=lambda application, data: after_decision.application_revoke(
            application=application, actor=request.user, reason=data["reason"]
        ),
        done=_("Approval of application #%(id)s revoked.") % {"id": pk},
    )


@require_POST
@staff_view(*REVIEW_WRITE)
def training_end(request, pk: int):
    """Record that a recipient's training ended early: an unpaid approval is revoked, a paid
    scholarship opens a recovery (the service decides which)."""
    application = benefit_selectors.application_get_for_reviewer(pk=pk)
    form = TrainingEndForm(request.POST, request.FILES)
    if not form.is_valid():
        form_errors(request, form)
        return _back(pk, request, "training-end")
    data = form.cleaned_data
    ok, result = run_service(
        request,
        lambda: application_training_end(
            application=application,
            actor=request.user,
            ended_on=data["ended_on"],
            reason=data["reason"],
            evidence=data.get("evidence"),
        ),
    )
    if ok:
        messages.success(request, _training_end_message(pk, result))
    return _back(pk, request, "training-end")


def _training_end_message(pk: int, result) -> str:
    if result.outcome == REVOKED:
        return _(
            "Training end recorded on application #%(id)s: not yet paid, so the approval is "
            "revoked."
        ) % {"id": pk}
    if result.outcome == RECOVERY_OPENED:
        return _(
            "Training end recorded on application #%(id)s: recovery #%(recovery)s opened for "
            "%(amount)s, due %(due)s; the applicant is told."
        ) % {
            "id": pk,
            "recovery": result.recovery.pk,
            "amount": won(result.recovery.amount),
            "due": result.recovery.due_on.isoformat(),
        }
    return _(
        "Training end recorded on application #%(id)s: the round's rule leaves nothing to recover."
    ) % {"id": pk}


@require_POST
@staff_view(*REVIEW_WRITE)
def match_resolve_view(request, pk: int, match_id: str):
    return _act(
        request,
        pk,
        form=MatchResolveForm(request.POST),
        anchor="matches",
        call=lambda application, data: match_resolve(
            application=application,
            actor=request.user,
            match_id=match_id,
            resolution=data["resolution"],
            reason=data["reason"],
        ),
        done=_("Duplicate match resolved on application #%(id)s.") % {"id": pk},
    )

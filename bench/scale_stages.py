"""The stages of bench/scale.py that simulate_round plays one citizen at a time, in bulk.

A city-wide round cannot be played one service call per application in a benchmark's time
(intake is ~43 ms an application, a decision ~14 ms: 12 hours at 1,000,000). As
`intake.citizens` does for registrations, a fixed sample goes through the services the API
calls, and the rest is written as the same rows in bulk, through the same model
transitions (`bulk_transition`, the transition methods) and the same notification and
audit records:

- intake: SAMPLE applications created, given their certificate and submitted through the
  services (their screening runs as on a real submit); the rest written as submitted
  applications moved through start_screening and finish_screening, with their audit
  events, certificates (one stored upload, shared) and "submitted" messages;
- screening: the round's set-based screening (round_rescreen) of the applications the
  bulk intake put under review;
- review: a caseworker's decision on each screening result (simulation.intake.decide),
  applied per chunk and decision with bulk_transition, audited, and told in bulk.

The resubmissions (~4% asked for documents) are left out: they are one citizen at a time.
"""

import random
from collections import defaultdict
from datetime import timedelta
from itertools import islice

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from benefits import document_services, services
from benefits.models import Applicant, Application, Document, Notification, Round
from benefits.notifications import notification_enqueue_many
from benefits.simulation import Simulation, intake, population
from benefits.simulation.waiting import wait_until
from core.fsm import bulk_transition, transition_states
from core.models import AuditEvent
from eligibility.models import ScreeningRun
from eligibility.screening_tasks import round_rescreen_task

Status = Application.Status
SAMPLE = 50
CHUNK = 2000
LABEL = Application._meta.label_lower


def _chunks(items, size: int):
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _through_services(sim: Simulation, round_: Round, people: list) -> Document | None:
    """Each citizen of the sample creates, adds the certificate and submits; return a
    stored certificate (its upload is shared by the bulk's certificates)."""
    period = (round_.period_starts_on, round_.period_ends_on)
    stored = None
    for person in people:
        applicant = Applicant.objects.select_related("user").get(pk=person.applicant_id)
        user = applicant.user
        application = services.application_create(
            applicant=applicant,
            actor=user,
            round_=round_,
            income_category=person.income_category,
            training=population.training(person, period),
        )
        if person.certificate:
            stored = document_services.document_add(
                application=application,
                actor=user,
                kind=Document.Kind.ENROLLMENT_CERTIFICATE,
                uploaded=intake._document(sim.program, Document.Kind.ENROLLMENT_CERTIFICATE),
            )
        services.application_submit_own(applicant=applicant, pk=application.pk, actor=user)
    return stored


def _select(queryset, **columns) -> tuple[str, list]:
    """The SQL and parameters of a SELECT of queryset's `columns` (name: expression)."""
    return queryset.order_by().annotate(**columns).values(*columns).query.sql_with_params()


def _audit_many(
    rows,
    now,
    *,
    action: str,
    from_state: str,
    to_state: str,
    actor_id: int | None = None,
    actor_field: str | None = None,
    reason_field: str | None = None,
) -> None:
    """One audit event per application of rows, in one INSERT … SELECT: the events
    audit_record would write one at a time, without an AuditEvent object each. The actor
    is actor_id, or each row's `actor_field`; the reason, each row's `reason_field`."""
    columns = {"e_app": F("pk")}
    actor, reason, params = "%s", "''", [actor_id]
    if actor_field:
        columns["e_actor"], actor, params = F(actor_field), "s.e_actor", []
    if reason_field:
        columns["e_reason"], reason = F(reason_field), "s.e_reason"
    select_sql, select_params = _select(rows, **columns)
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    sql = f"""
        INSERT INTO {table} (actor_id, at, action, object_type, object_id, from_state,
                             to_state, reason, data)
        SELECT {actor}, %s, %s, %s, CAST(s.e_app AS TEXT), %s, %s, {reason}, CAST(%s AS jsonb)
        FROM ({select_sql}) s
        ORDER BY s.e_app
    """
    params += [now, action, LABEL, from_state, to_state, "{}", *select_params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _insert_certificates(certified, stored: Document, now) -> None:
    """Each certified application's certificate (the one stored upload, shared), uploaded by
    its citizen, in one INSERT … SELECT."""
    select_sql, select_params = _select(certified, d_app=F("pk"), d_user=F("applicant__user_id"))
    table = connection.ops.quote_name(Document._meta.db_table)
    sql = f"""
        INSERT INTO {table} (application_id, kind, file, original_name, content_type, size,
                             sha256, uploaded_by_id, uploaded_at)
        SELECT s.d_app, %s, %s, %s, %s, %s, %s, s.d_user, %s
        FROM ({select_sql}) s
        ORDER BY s.d_app
    """
    params = [Document.Kind.ENROLLMENT_CERTIFICATE, stored.file.name, stored.original_name]
    params += [stored.content_type, stored.size, stored.sha256, now]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *select_params])


@transaction.atomic
def _in_bulk(round_: Round, people: list, stored: Document | None) -> int:
    """Write a chunk of submitted applications as the services leave them: moved through
    submit, start_screening and finish_screening in memory before the one INSERT (the
    same transitions, without two UPDATEs of every row), their certificates, audit events
    and "submitted" messages."""
    period = (round_.period_starts_on, round_.period_ends_on)
    now = timezone.now()
    drafts = []
    for person in people:
        application = Application(
            applicant_id=person.applicant_id,
            round=round_,
            income_category=person.income_category,
        )
        services._apply_training(application, population.training(person, period))
        application.submit()
        application.submitted_at = now
        application.start_screening()
        application.finish_screening()
        drafts.append(application)
    created = Application.objects.bulk_create(drafts)
    ids = [a.pk for a in created]
    written = Application.objects.filter(pk__in=ids)
    if stored is not None:
        certified = [a.pk for a, p in zip(created, people, strict=True) if p.certificate]
        if certified:
            _insert_certificates(Application.objects.filter(pk__in=certified), stored, now)
    # The citizen creates and submits, the system screens (as services.application_submit).
    citizen = {"actor_field": "applicant__user_id"}
    _audit_many(
        written, now, action="application.created", from_state="", to_state=Status.DRAFT, **citizen
    )
    _audit_many(
        written,
        now,
        action="application.submitted",
        from_state=Status.DRAFT,
        to_state=Status.SUBMITTED,
        **citizen,
    )
    _audit_many(
        written,
        now,
        action="application.screened",
        from_state=Status.SCREENING,
        to_state=Status.UNDER_REVIEW,
    )
    notification_enqueue_many(rows=written, kind=Notification.Kind.SUBMITTED, event_key="intake")
    return len(ids)


def bulk_intake(sim: Simulation) -> int:
    """SAMPLE citizens apply through the services; the rest in bulk (see the module)."""
    round_ = Round.objects.select_related("program").get(pk=sim.round_.pk)
    tracker = sim.track("intake", len(sim.population))
    sample = sim.population[:SAMPLE]
    stored = _through_services(sim, round_, sample)
    tracker.advance(len(sample))
    for chunk in _chunks(islice(sim.population, SAMPLE, None), CHUNK):
        tracker.advance(_in_bulk(round_, chunk, stored))
    return len(sim.population)


def bulk_screening(sim: Simulation) -> int:
    """The sample's screening (set off by each submit), then the round's set-based
    screening of what the bulk put under review."""
    intake._wait_for_screening(sim, "screening on submit (sample)", ids=None)
    under_review = Application.objects.filter(round=sim.round_, status=Status.UNDER_REVIEW)
    total = under_review.count()
    round_rescreen_task.delay(sim.round_.pk, f"{sim.prefix}-intake")
    runs = ScreeningRun.objects.filter(
        application__round=sim.round_, trigger_key=f"rescreen:{sim.prefix}-intake"
    )
    return wait_until(sim, "screening (set-based)", total=total, done=runs.count)


TRANSITIONS = {
    services.application_approve: ("approve", Notification.Kind.APPROVED, "application.approved"),
    services.application_reject: ("reject", Notification.Kind.REJECTED, "application.rejected"),
    services.application_request_documents: (
        "request_documents",
        Notification.Kind.DOCUMENTS_REQUESTED,
        "application.documents_requested",
    ),
}


@transaction.atomic
def _decide_chunk(sim: Simulation, round_: Round, decisions: dict, counts: dict) -> None:
    """Apply a chunk's decisions: one transition per decision and reason (the reason is a
    column), then per kind of decision one INSERT of its audit events (the reason read
    back from the row) and one of its messages."""
    caseworker = sim.staff["caseworker"]
    now = timezone.now()
    appeal_until = (timezone.localdate(now) + timedelta(days=round_.appeal_days)).isoformat()
    # What has left review since (none in the bench) is left alone, as the services would.
    chunk = [pk for ids in decisions.values() for pk in ids]
    waiting = set(
        Application.objects.filter(pk__in=chunk, status=Status.UNDER_REVIEW).values_list(
            "pk", flat=True
        )
    )
    decided: dict = defaultdict(list)
    for (service, reason), ids in decisions.items():
        transition = TRANSITIONS[service][0]
        fields = {"decision_reason": reason, "updated_at": now}
        if transition == "request_documents":
            fields.update(
                documents_requested=[intake.DOCUMENT_KINDS[sim.program]],
                documents_requested_at=now,
            )
        else:
            fields.update(decided_at=now, decided_by=caseworker, rejection_final=False)
        moved = [pk for pk in ids if pk in waiting]
        if moved:
            bulk_transition(Application.objects.filter(pk__in=moved), transition, **fields)
            decided[service] += moved
    for service, moved in decided.items():
        transition, kind, action = TRANSITIONS[service]
        rows = Application.objects.filter(pk__in=moved)
        target = transition_states(Application, transition)[1]
        _audit_many(
            rows,
            now,
            action=action,
            from_state=Status.UNDER_REVIEW,
            to_state=target,
            actor_id=caseworker.pk,
            reason_field="decision_reason",
        )
        notification_enqueue_many(
            rows=rows,
            kind=kind,
            event_key="review",
            reason_field="decision_reason",
            appeal_until=appeal_until if transition == "reject" else "-",
        )
        counts[transition] += len(moved)


def bulk_review(sim: Simulation) -> int:
    """The caseworker's decision on each current screening result, applied in bulk."""
    rng = random.Random(f"{sim.seed}:review:0")
    round_ = Round.objects.get(pk=sim.round_.pk)
    waiting = Application.objects.filter(round=round_, status=Status.UNDER_REVIEW)
    tracker = sim.track("review", waiting.count())
    counts: dict[str, int] = defaultdict(int)
    after = 0
    while True:
        # The chunk's applications first, then their screenings: the id bound then holds on
        # the applications' own index (a join bounded on the runs' side read the round
        # from its first application at every chunk: quadratic, 275 s at 1,000,000).
        ids = list(waiting.filter(pk__gt=after).order_by("pk").values_list("pk", flat=True)[:CHUNK])
        if not ids:
            break
        after = ids[-1]
        chunk = ScreeningRun.objects.filter(application_id__in=ids, is_current=True)
        decisions: dict = defaultdict(list)
        for pk, results in chunk.order_by("application_id").values_list("application_id", "rules"):
            service, reason = intake.decide(sim.program, results, rng, second_look=False)
            decisions[(service, reason)].append(pk)
        _decide_chunk(sim, round_, decisions, counts)
        tracker.advance(len(ids))
    sim.notes["review"] = dict(counts)
    return sum(counts.values())

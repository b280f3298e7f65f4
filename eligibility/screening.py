"""Screening services: gather registry facts, run the rules, store the run.

Facts are always loaded for a set of applications with a handful of `__in` queries, so
screening one application on submit and re-screening a round share one code path.
"""

import json
import logging
from collections import defaultdict
from datetime import date

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from benefits.models import Applicant, Application, Document, Round
from benefits.services import application_screening_finish, application_screening_start
from core.audit import audit_record
from eligibility import rules
from eligibility.models import (
    NaeilbaeumRecord,
    NationalVoucherRecord,
    RegistryKind,
    RegistrySnapshot,
    ScreeningRun,
    SocialSecurityRecord,
    TrainingCourse,
    YouthAllowanceRecord,
)

logger = logging.getLogger(__name__)

# Another live application of the same person is one not closed by the person or a caseworker;
# a draft was never put forward, so it does not count.
NOT_LIVE = (
    Application.Status.DRAFT,
    Application.Status.WITHDRAWN,
    Application.Status.REJECTED,
)

_PERSON_REGISTRIES = (
    (RegistryKind.SOCIAL_SECURITY, SocialSecurityRecord, "social_security"),
    (RegistryKind.NAEILBAEUM, NaeilbaeumRecord, "naeilbaeum"),
    (RegistryKind.YOUTH_ALLOWANCE, YouthAllowanceRecord, "youth_allowance"),
    (RegistryKind.NATIONAL_VOUCHER, NationalVoucherRecord, "national_voucher"),
)
# Columns read for each registry, in the order of its fact's fields: plain tuples, not
# model instances, since a re-screening reads hundreds of thousands of rows.
_FACT_COLUMNS = {
    SocialSecurityRecord: (
        rules.SocialSecurityFact,
        ("status", "district", "valid_from", "valid_to"),
    ),
    NaeilbaeumRecord: (
        rules.NaeilbaeumFact,
        ("card_valid_from", "card_valid_to", "course_id", "training_from", "training_to"),
    ),
    YouthAllowanceRecord: (rules.YouthAllowanceFact, ("paid_from", "paid_to")),
    NationalVoucherRecord: (rules.NationalVoucherFact, ("year",)),
}


def _active_snapshot_ids() -> dict[str, int]:
    return dict(
        RegistrySnapshot.objects.filter(status=RegistrySnapshot.Status.ACTIVE).values_list(
            "kind", "id"
        )
    )


def _applied_on(application: Application) -> date:
    moment = application.submitted_at or timezone.now()
    return timezone.localdate(moment)


def _build_inputs(
    applications: list[Application], snapshot_ids: dict[str, int]
) -> dict[int, rules.ScreeningInput]:
    """Load every fact the rules need for these applications in a few queries."""
    hmacs = {a.applicant.rrn_hmac for a in applications if a.applicant.rrn_hmac}
    facts: dict[str, dict[str, list]] = {}
    for kind, model, name in _PERSON_REGISTRIES:
        by_person: dict[str, list] = defaultdict(list)
        snapshot_id = snapshot_ids.get(kind)
        if snapshot_id and hmacs:
            fact, columns = _FACT_COLUMNS[model]
            rows = (
                model.objects.filter(snapshot_id=snapshot_id, rrn_hmac__in=hmacs)
                .order_by("id")
                .values_list("rrn_hmac", *columns)
            )
            for person, *values in rows:
                by_person[person].append(fact(*values))
        facts[name] = by_person

    courses: dict[str, rules.CourseFact] = {}
    course_ids = {a.course_id for a in applications if a.course_id}
    course_snapshot = snapshot_ids.get(RegistryKind.TRAINING_COURSES)
    if course_snapshot and course_ids:
        for c in TrainingCourse.objects.filter(
            snapshot_id=course_snapshot, course_id__in=course_ids
        ).order_by("id"):
            courses.setdefault(
                c.course_id,
                rules.CourseFact(
                    c.course_id, c.name, c.institution, c.starts_on, c.ends_on, c.vocational
                ),
            )

    app_ids = [a.pk for a in applications]
    with_certificate = set(
        Document.objects.filter(
            application_id__in=app_ids, kind=Document.Kind.ENROLLMENT_CERTIFICATE
        ).values_list("application_id", flat=True)
    )

    # Applicant.rrn_hmac is unique, so "the same person" is the same applicant row.
    years = {a.round.year for a in applications}
    others: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    for app_id, applicant_id, round_id, year in (
        Application.objects.filter(
            applicant_id__in={a.applicant_id for a in applications}, round__year__in=years
        )
        .exclude(status__in=NOT_LIVE)
        .values_list("id", "applicant_id", "round_id", "round__year")
    ):
        others[applicant_id].append((app_id, round_id, year))

    fingerprints = {
        a.applicant.account_fingerprint for a in applications if a.applicant.account_fingerprint
    }
    holders: dict[str, list[int]] = defaultdict(list)
    if fingerprints:
        for applicant_id, fingerprint in Applicant.objects.filter(
            account_fingerprint__in=fingerprints
        ).values_list("id", "account_fingerprint"):
            holders[fingerprint].append(applicant_id)

    inputs = {}
    for a in applications:
        person = a.applicant
        h = person.rrn_hmac or ""
        inputs[a.pk] = rules.ScreeningInput(
            program_code=a.round.program.code,
            income_category=a.income_category,
            applied_on=_applied_on(a),
            period_starts_on=a.round.period_starts_on,
            period_ends_on=a.round.period_ends_on,
            round_year=a.round.year,
            birth_date=person.birth_date,
            district=person.district,
            course_id=a.course_id,
            training_starts_on=a.training_starts_on,
            training_ends_on=a.training_ends_on,
            has_enrollment_certificate=a.pk in with_certificate,
            social_security=tuple(facts["social_security"].get(h, ())),
            naeilbaeum=tuple(facts["naeilbaeum"].get(h, ())),
            youth_allowance=tuple(facts["youth_allowance"].get(h, ())),
            national_voucher=tuple(facts["national_voucher"].get(h, ())),
            course=courses.get(a.course_id),
            other_live_applications=tuple(
                app_id
                for app_id, round_id, year in others[a.applicant_id]
                if round_id != a.round_id and year == a.round.year
            ),
            shared_account_applicants=tuple(
                i for i in holders.get(person.account_fingerprint, ()) if i != person.pk
            ),
            duplicate_policy=dict(a.round.duplicate_policy or {}),
        )
    return inputs


def _run_for(
    application: Application,
    inp: rules.ScreeningInput,
    snapshot_ids: dict[str, int],
    trigger_key: str,
) -> ScreeningRun:
    evaluation = rules.evaluate(inp, ruleset_version=application.round.ruleset_version)
    return ScreeningRun(
        application=application,
        trigger_key=trigger_key,
        is_current=True,
        ruleset_version=evaluation.ruleset_version,
        outcome=evaluation.outcome,
        rules=[r.as_dict() for r in evaluation.rules],
        duplicates=[d.as_dict() for d in evaluation.duplicates],
        snapshot_ids={str(k): v for k, v in snapshot_ids.items()},
        duplicate_found=bool(evaluation.duplicates),
    )


def application_screen(*, application_id: int, trigger_key: str) -> ScreeningRun | None:
    """Screen a submitted application once per trigger and hand it to the caseworkers."""
    existing = ScreeningRun.objects.filter(
        application_id=application_id, trigger_key=trigger_key
    ).first()
    if existing is not None:
        return existing
    with transaction.atomic():
        application = (
            Application.objects.select_for_update(of=("self",))
            .select_related("round__program", "applicant")
            .filter(pk=application_id)
            .first()
        )
        if application is None:
            return None
        # Re-read under the lock: a concurrent run of the task may have stored it meanwhile.
        existing = ScreeningRun.objects.filter(
            application_id=application_id, trigger_key=trigger_key
        ).first()
        if existing is not None:
            return existing
        if application.status != Application.Status.SUBMITTED:
            return None
        snapshot_ids = _active_snapshot_ids()
        inp = _build_inputs([application], snapshot_ids)[application.pk]
        run = _run_for(application, inp, snapshot_ids, trigger_key)
        application_screening_start(application=application)
        ScreeningRun.objects.filter(application_id=application.pk, is_current=True).update(
            is_current=False
        )
        run.save()
        application_screening_finish(application=application)
        audit_record(
            actor=None,
            obj=application,
            action="application.screening_recorded",
            data={
                "run": run.pk,
                "outcome": run.outcome,
                "ruleset_version": run.ruleset_version,
                "trigger_key": trigger_key,
            },
        )
    return run


_RUN_COLUMNS = (
    "application_id",
    "trigger_key",
    "is_current",
    "ruleset_version",
    "outcome",
    "rules",
    "duplicates",
    "snapshot_ids",
    "duplicate_found",
    "created_at",
)
_JSON_COLUMNS = {"rules", "duplicates", "snapshot_ids"}


def _insert_runs(runs: list[ScreeningRun]) -> None:
    """Store a chunk of runs: COPY on PostgreSQL, where a 1,000-row INSERT of JSON
    spends most of its time binding parameters on the client; bulk_create elsewhere."""
    if connection.vendor != "postgresql":
        ScreeningRun.objects.bulk_create(runs)
        return
    now = timezone.now()
    table = connection.ops.quote_name(ScreeningRun._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(c) for c in _RUN_COLUMNS)
    connection.ensure_connection()
    with (
        connection.connection.cursor() as cursor,
        cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
    ):
        for run in runs:
            run.created_at = run.created_at or now
            copy.write_row(
                [
                    json.dumps(getattr(run, c), cls=DjangoJSONEncoder)
                    if c in _JSON_COLUMNS
                    else getattr(run, c)
                    for c in _RUN_COLUMNS
                ]
            )


def _rescreen_chunk(round_: Round, trigger_key: str, after_pk: int, chunk_size: int) -> dict:
    with transaction.atomic():
        already = ScreeningRun.objects.filter(application=OuterRef("pk"), trigger_key=trigger_key)
        applications = list(
            Application.objects.select_for_update(of=("self",))
            .select_related("round__program", "applicant")
            # Screening matches on the keyed hash: no need to decrypt a thousand RRNs.
            .defer("applicant__rrn", "applicant__account_number")
            .filter(round_id=round_.pk, status=Application.Status.UNDER_REVIEW, pk__gt=after_pk)
            .exclude(Exists(already))
            .order_by("pk")[:chunk_size]
        )
        if not applications:
            return {"screened": 0, "last_pk": None, "outcomes": {}}
        snapshot_ids = _active_snapshot_ids()
        inputs = _build_inputs(applications, snapshot_ids)
        runs = [_run_for(a, inputs[a.pk], snapshot_ids, trigger_key) for a in applications]
        ScreeningRun.objects.filter(
            application_id__in=[a.pk for a in applications], is_current=True
        ).update(is_current=False)
        _insert_runs(runs)
        outcomes: dict[str, int] = defaultdict(int)
        for run in runs:
            outcomes[run.outcome] += 1
        audit_record(
            actor=None,
            obj=round_,
            action="round.rescreened_chunk",
            data={
                "trigger_key": trigger_key,
                "screened": len(runs),
                "first_application": applications[0].pk,
                "last_application": applications[-1].pk,
                "outcomes": dict(outcomes),
            },
        )
    return {"screened": len(runs), "last_pk": applications[-1].pk, "outcomes": outcomes}


def round_rescreen(*, round_id: int, job_key: str, chunk_size: int = 1000) -> dict:
    """Re-screen a round's applications under review in chunks that each commit."""
    round_ = Round.objects.select_related("program").get(pk=round_id)
    trigger_key = f"rescreen:{job_key}"
    totals: dict = {"screened": 0, "chunks": 0, "outcomes": defaultdict(int)}
    totals["already_done"] = ScreeningRun.objects.filter(
        application__round_id=round_id, trigger_key=trigger_key
    ).count()
    after_pk = 0
    while True:
        chunk = _rescreen_chunk(round_, trigger_key, after_pk, chunk_size)
        if not chunk["screened"]:
            break
        after_pk = chunk["last_pk"]
        totals["screened"] += chunk["screened"]
        totals["chunks"] += 1
        for outcome, n in chunk["outcomes"].items():
            totals["outcomes"][outcome] += n
        logger.info(
            "rescreen %s of round %s: %s screened so far", job_key, round_id, totals["screened"]
        )
    totals["outcomes"] = dict(totals["outcomes"])
    return totals


def screening_summary(run: ScreeningRun | None) -> dict | None:
    """Shape a screening run as the `screening` field of the application payload."""
    if run is None:
        return None
    return {
        "outcome": run.outcome,
        "rules": [{k: r.get(k) for k in ("rule", "outcome", "code", "message")} for r in run.rules],
        "duplicates": [
            {k: d.get(k) for k in ("registry", "action", "detail")} for d in run.duplicates
        ],
    }


def rescreen_after_snapshot(*, snapshot_id: int) -> list[int]:
    """Queue a re-screening of every round with applications under review; return round ids."""
    from eligibility.screening_tasks import round_rescreen_task

    round_ids = list(
        Application.objects.filter(status=Application.Status.UNDER_REVIEW)
        .values_list("round_id", flat=True)
        .distinct()
        .order_by("round_id")
    )
    for round_id in round_ids:
        round_rescreen_task.delay(round_id, f"snapshot-{snapshot_id}")
    return round_ids

"""Screening services: gather registry facts, run the rules, store the run.

One set-based statement gathers the facts (`_facts_sql`), for one application on submit
and for a whole round when it is re-screened, so both judge on the same joins.
"""

import logging
from collections import defaultdict
from contextlib import contextmanager
from datetime import date, datetime
from functools import lru_cache
from types import MappingProxyType
from typing import NamedTuple

import orjson
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Subquery
from django.db.models.functions import TruncDate
from django.utils import timezone

from benefits.models import Applicant, Application, Document, Round
from benefits.services import application_screening_finish, application_screening_start
from core.audit import audit_record
from core.outbox import outbox_enqueue, outbox_heartbeat
from eligibility import rules
from eligibility.models import (
    MatchResolution,
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

# The person registries: kind, record model, the ScreeningInput field its facts fill, the
# fact class and the record columns in the order of the fact's fields.
_PERSON_REGISTRIES = (
    (
        RegistryKind.SOCIAL_SECURITY,
        SocialSecurityRecord,
        "social_security",
        rules.SocialSecurityFact,
        ("status", "district", "valid_from", "valid_to"),
    ),
    (
        RegistryKind.NAEILBAEUM,
        NaeilbaeumRecord,
        "naeilbaeum",
        rules.NaeilbaeumFact,
        ("card_valid_from", "card_valid_to", "course_id", "training_from", "training_to"),
    ),
    (
        RegistryKind.YOUTH_ALLOWANCE,
        YouthAllowanceRecord,
        "youth_allowance",
        rules.YouthAllowanceFact,
        ("paid_from", "paid_to"),
    ),
    (
        RegistryKind.NATIONAL_VOUCHER,
        NationalVoucherRecord,
        "national_voucher",
        rules.NationalVoucherFact,
        ("year",),
    ),
)
_COURSE_COLUMNS = ("course_id", "name", "institution", "starts_on", "ends_on", "vocational")
# Fact fields holding dates: they travel through the facts query as ISO strings.
_DATE_FIELDS = {
    "valid_from",
    "valid_to",
    "card_valid_from",
    "card_valid_to",
    "training_from",
    "training_to",
    "paid_from",
    "paid_to",
    "starts_on",
    "ends_on",
}
_FACTS_TABLE = "baeum_screening_facts"
# Read back as text: orjson parses it several times faster than the driver.
_FACTS_COLUMNS = "f.application_id, CAST(f.facts AS TEXT), f.certified"


class _Applying(NamedTuple):
    """The application's own values the rules read."""

    pk: int
    income_category: str
    course_id: str
    training_starts_on: date | None
    training_ends_on: date | None
    applied_on: date | None
    birth_date: date | None
    district: str


_APPLYING_FIELDS = (
    "pk",
    "income_category",
    "course_id",
    "training_starts_on",
    "training_ends_on",
    "applied_on",
    "birth_date",
    "district",
)


def _active_snapshot_ids() -> dict[str, int]:
    return dict(
        RegistrySnapshot.objects.filter(status=RegistrySnapshot.Status.ACTIVE).values_list(
            "kind", "id"
        )
    )


# Facts: one set-based query shared by a single screening and a whole round.


def _facts_sql(where: str) -> str:
    """One row per application selected by `where` (on `a`, the application): its registry
    facts as JSON arrays of [record id, columns…], whether a certificate is uploaded, and the
    ids of its internal duplicates; then when it was submitted, which dates the facts.

    Matching is done by joins, so the database picks index lookups for one application and
    hash joins for a round. Only the RRN hash and the snapshot decide a match here; which
    facts count (periods, years, statuses) is for the rules in Python.
    """
    q = connection.ops.quote_name
    table = {
        "app": q(Application._meta.db_table),
        "person": q(Applicant._meta.db_table),
        "round": q(Round._meta.db_table),
        "doc": q(Document._meta.db_table),
        "tc": q(TrainingCourse._meta.db_table),
        "judged": q(MatchResolution._meta.db_table),
    }
    not_live = ", ".join(["%s"] * len(NOT_LIVE))
    if connection.vendor == "postgresql":
        agg, arr = "json_agg", "json_build_array"
    else:
        agg, arr = "json_group_array", "json_array"

    def facts(alias: str, model, on: str, columns) -> str:
        values = ", ".join(f"r.{q(c)}" for c in ("id", *columns))
        table = q(model._meta.db_table)
        # Quoted names and constants only; every value is bound.
        return f"""{alias} AS (SELECT apps.id, {agg}({arr}({values})) AS facts FROM apps
            JOIN {table} r ON r.snapshot_id = %s AND {on} GROUP BY apps.id)"""  # noqa: S608

    ctes = [
        # Not materialized: the planner may then run the joins in parallel workers.
        f"""apps AS NOT MATERIALIZED (
            SELECT a.id, a.applicant_id, a.round_id, a.course_id, a.submitted_at, r.year,
                   p.rrn_hmac, p.account_fingerprint
            FROM {table["app"]} a
            JOIN {table["round"]} r ON r.id = a.round_id
            JOIN {table["person"]} p ON p.id = a.applicant_id
            WHERE {where})""",  # noqa: S608
        *(
            facts(f"f_{name}", model, "r.rrn_hmac = apps.rrn_hmac", columns)
            for _, model, name, _, columns in _PERSON_REGISTRIES
        ),
        facts("f_course", TrainingCourse, "r.course_id = apps.course_id", _COURSE_COLUMNS),
        f"""certified AS (SELECT DISTINCT d.application_id AS id FROM {table["doc"]} d
            JOIN apps ON apps.id = d.application_id WHERE d.kind = %s)""",  # noqa: S608
        f"""internal AS (SELECT apps.id, {agg}(o.id) AS ids FROM apps
            JOIN {table["app"]} o ON o.applicant_id = apps.applicant_id
                 AND o.round_id <> apps.round_id
            JOIN {table["round"]} orr ON orr.id = o.round_id AND orr.year = apps.year
            WHERE o.status NOT IN ({not_live}) GROUP BY apps.id)""",  # noqa: S608
        f"""shared AS (SELECT apps.id, {agg}(q.id) AS ids FROM apps
            JOIN {table["person"]} q ON q.account_fingerprint = apps.account_fingerprint
                 AND q.id <> apps.applicant_id
            WHERE apps.account_fingerprint <> '' GROUP BY apps.id)""",  # noqa: S608
        # The caseworkers' judgements of matched records: [[match id, resolution]…].
        f"""judged AS (SELECT apps.id, {agg}({arr}(j.registry || '.' || j.record_key,
                 j.resolution)) AS pairs FROM apps
            JOIN {table["judged"]} j ON j.application_id = apps.id GROUP BY apps.id)""",  # noqa: S608
    ]
    # All of an application's facts travel as one JSON array: [one list per person
    # registry…, catalogue entries, other live applications, applicants sharing the account,
    # the caseworkers' judgements of matches].
    parts = [*(f"f_{name}.facts" for _, _, name, _, _ in _PERSON_REGISTRIES), "f_course.facts"]
    parts += ["internal.ids", "shared.ids", "judged.pairs"]
    if connection.vendor == "postgresql":
        facts = "json_build_array(" + ", ".join(parts) + ")"
    else:
        # SQLite passes a subquery's JSON on as text: json() makes it JSON again.
        facts = "json_array(" + ", ".join(f"json({p})" for p in parts) + ")"
    person_joins = " ".join(
        f"LEFT JOIN f_{name} ON f_{name}.id = apps.id" for _, _, name, _, _ in _PERSON_REGISTRIES
    )
    select = f"""
        SELECT apps.id AS application_id, {facts} AS facts,
               certified.id IS NOT NULL AS certified, apps.submitted_at
        FROM apps {person_joins}
        LEFT JOIN f_course ON f_course.id = apps.id
        LEFT JOIN certified ON certified.id = apps.id
        LEFT JOIN internal ON internal.id = apps.id
        LEFT JOIN shared ON shared.id = apps.id
        LEFT JOIN judged ON judged.id = apps.id"""  # noqa: S608
    return "WITH " + ",\n".join(ctes) + select


def _facts_params(where_params: list, snapshot_ids: dict[str, int]) -> list:
    # A registry never imported has no snapshot: NULL matches no row.
    return [
        *where_params,
        *(snapshot_ids.get(kind) for kind, *_ in _PERSON_REGISTRIES),
        snapshot_ids.get(RegistryKind.TRAINING_COURSES),
        Document.Kind.ENROLLMENT_CERTIFICATE,
        *NOT_LIVE,
    ]


def _loaded(value) -> list:
    """A JSON value as Python lists: psycopg may have parsed it, SQLite gives text."""
    if value is None:
        return []
    if isinstance(value, str | bytes):
        return orjson.loads(value)
    return value


# Registries repeat a few thousand distinct days: each is parsed once per process.
@lru_cache(maxsize=65_536)
def _day(text: str) -> date:
    return date.fromisoformat(text[:10])


def _fact_builder(fact: type, columns: tuple[str, ...]):
    """Return `build(rows)`: a registry's JSON rows of [record id, columns…] as facts."""
    dates = tuple(i for i, c in enumerate(columns, start=1) if c in _DATE_FIELDS)
    booleans = tuple(i for i, c in enumerate(columns, start=1) if c == "vocational")
    make = fact._make

    def build(rows: list | None) -> tuple:
        if not rows:
            return ()
        # Record order, as the registry file had them: the rules take the first match.
        if len(rows) > 1:
            rows.sort()
        for row in rows:
            for i in dates:
                text = row[i]
                if text is not None:
                    row[i] = _day(text)
            for i in booleans:
                row[i] = bool(row[i])
        return tuple([make(row[1:]) for row in rows])

    return build


_PERSON_BUILDERS = tuple(_fact_builder(fact, columns) for *_, fact, columns in _PERSON_REGISTRIES)
_PERSON_FIELDS = tuple(name for _, _, name, _, _ in _PERSON_REGISTRIES)
_COURSE_BUILDER = _fact_builder(rules.CourseFact, _COURSE_COLUMNS)


_NONE_JUDGED = MappingProxyType({})


def _evaluator(round_: Round):
    """Return `evaluate(applying, facts_row)`, which runs the round's ruleset on one
    application and one row of the facts query; the round's own values are read once."""
    version = round_.ruleset_version
    common = {
        "program_code": round_.program.code,
        "period_starts_on": round_.period_starts_on,
        "period_ends_on": round_.period_ends_on,
        "round_year": round_.year,
        "duplicate_policy": MappingProxyType(dict(round_.duplicate_policy or {})),
    }
    builders = tuple(zip(_PERSON_FIELDS, _PERSON_BUILDERS, strict=True))

    def evaluate(applying: _Applying, row: tuple) -> rules.Evaluation:
        _, facts, certified, *_ = row
        *person, course, internal, shared, judged = _loaded(facts)
        # The catalogue may list a course id more than once; the first entry stands.
        courses = _COURSE_BUILDER(course)
        inp = rules.ScreeningInput(
            income_category=applying.income_category,
            applied_on=applying.applied_on or timezone.localdate(),
            birth_date=applying.birth_date,
            district=applying.district,
            course_id=applying.course_id,
            training_starts_on=applying.training_starts_on,
            training_ends_on=applying.training_ends_on,
            has_enrollment_certificate=bool(certified),
            course=courses[0] if courses else None,
            other_live_applications=tuple(internal or ()),
            shared_account_applicants=tuple(shared or ()),
            resolutions=dict(judged) if judged else _NONE_JUDGED,
            **common,
            **{name: build(rows) for (name, build), rows in zip(builders, person, strict=True)},
        )
        return rules.evaluate(inp, ruleset_version=version)

    return evaluate


def _new_run(
    evaluation: rules.Evaluation, *, trigger_key: str, snapshot_ids: dict, **fields
) -> ScreeningRun:
    """The current run recording an evaluation, unsaved; `fields` name the application."""
    results, matches = rules.stored_records(evaluation)
    return ScreeningRun(
        trigger_key=trigger_key,
        is_current=True,
        ruleset_version=evaluation.ruleset_version,
        outcome=evaluation.outcome,
        rules=results,
        duplicates=matches,
        snapshot_ids=snapshot_ids,
        duplicate_found=bool(evaluation.duplicates),
        **fields,
    )


# Screening one application (on submit).


def _screening_begun(application_id: int) -> bool:
    """Commit the move into `screening`, so that the citizen and the queue see it run.

    True when the application is (now) being screened: a retried task finds it so already.
    """
    with transaction.atomic():
        application = (
            Application.objects.select_for_update(of=("self",))
            .filter(pk=application_id)
            .only("status")
            .first()
        )
        if application is None:
            return False
        if application.status == Application.Status.SUBMITTED:
            application_screening_start(application=application)
            return True
        return application.status == Application.Status.SCREENING


def application_screen(*, application_id: int, trigger_key: str) -> ScreeningRun | None:
    """Screen a submitted application once per trigger and record the verdict."""
    existing = ScreeningRun.objects.filter(
        application_id=application_id, trigger_key=trigger_key
    ).first()
    if existing is not None:
        return existing
    if not _screening_begun(application_id):
        return None
    with transaction.atomic():
        application = (
            Application.objects.select_for_update(of=("self",))
            .select_related("round__program", "applicant")
            .filter(pk=application_id)
            .first()
        )
        # Re-read under the lock: a concurrent run of the task may have stored it meanwhile.
        existing = ScreeningRun.objects.filter(
            application_id=application_id, trigger_key=trigger_key
        ).first()
        if existing is not None:
            return existing
        if application is None or application.status != Application.Status.SCREENING:
            return None
        snapshot_ids = _active_snapshot_ids()
        with connection.cursor() as cursor:
            cursor.execute(_facts_sql("a.id = %s"), _facts_params([application.pk], snapshot_ids))
            facts = cursor.fetchone()
        person = application.applicant
        applying = _Applying(
            application.pk,
            application.income_category,
            application.course_id,
            application.training_starts_on,
            application.training_ends_on,
            timezone.localdate(application.submitted_at) if application.submitted_at else None,
            person.birth_date,
            person.district,
        )
        evaluation = _evaluator(application.round)(applying, facts)
        run = _new_run(
            evaluation,
            trigger_key=trigger_key,
            snapshot_ids={str(k): v for k, v in snapshot_ids.items()},
            application=application,
        )
        ScreeningRun.objects.filter(application_id=application.pk, is_current=True).update(
            is_current=False
        )
        run.save()
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
        application_screening_finish(
            application=application,
            outcome=evaluation.outcome,
            failed=[
                rules.rendered_rule(result.as_record())
                for result in evaluation.rules
                if result.outcome == rules.FAIL
            ],
        )
    return run


# Re-screening a round.

# In the order the COPY line is written.
_RUN_COLUMNS = (
    "application_id",
    "trigger_key",
    "is_current",
    "ruleset_version",
    "outcome",
    "rules",
    "duplicates",
    "duplicate_found",
    "snapshot_ids",
    "created_at",
)


def _copy_text(value) -> bytes:
    """One value in COPY's text format."""
    if value is None:
        return b"\\N"
    if value is True or value is False:
        return b"t" if value else b"f"
    if isinstance(value, list | dict):
        # orjson escapes every control character inside strings: only backslashes remain.
        return orjson.dumps(value).replace(b"\\", b"\\\\")
    if isinstance(value, int):
        return b"%d" % value
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    for char, escaped in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
        text = text.replace(char, escaped)
    return text.encode()


# Bytes of COPY rows sent at a time: the most psycopg sends in one piece.
_COPY_BLOCK = 128 * 1024


@contextmanager
def _run_writer(application_ids: list[int], *, trigger_key: str, snapshot_ids: dict, now):
    """Retire these applications' current runs, then yield `store(application_id,
    evaluation)`, which records a new current run.

    On PostgreSQL the runs stream into a COPY as they are evaluated; elsewhere they are
    kept for one bulk_create.
    """
    table = connection.ops.quote_name(ScreeningRun._meta.db_table)
    snapshots = {str(k): v for k, v in snapshot_ids.items()}
    if connection.vendor != "postgresql":
        ScreeningRun.objects.filter(application_id__in=application_ids, is_current=True).update(
            is_current=False
        )
        runs: list[ScreeningRun] = []
        yield lambda application_id, evaluation: runs.append(
            _new_run(
                evaluation,
                trigger_key=trigger_key,
                snapshot_ids=snapshots,
                application_id=application_id,
                created_at=now,
            )
        )
        ScreeningRun.objects.bulk_create(runs)
        return
    columns = ", ".join(connection.ops.quote_name(c) for c in _RUN_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET is_current = false "  # noqa: S608
            "WHERE application_id = ANY(%s) AND is_current",
            [application_ids],
        )
    # Values shared by the chunk are encoded once; versions and outcomes are a handful.
    shared = b"\t".join(map(_copy_text, (trigger_key, True)))
    tail = b"\t".join(map(_copy_text, (snapshots, now)))
    encoded: dict[str, bytes] = {}

    def line(application_id: int, evaluation: rules.Evaluation) -> bytes:
        version, outcome = evaluation.ruleset_version, evaluation.outcome
        results, matches = rules.stored_records(evaluation)
        return (
            b"\t".join(
                (
                    b"%d" % application_id,
                    shared,
                    encoded.get(version) or encoded.setdefault(version, _copy_text(version)),
                    encoded.get(outcome) or encoded.setdefault(outcome, _copy_text(outcome)),
                    _copy_text(results),
                    _copy_text(matches),
                    b"t" if evaluation.duplicates else b"f",
                    tail,
                )
            )
            + b"\n"
        )

    sql = f"COPY {table} ({columns}) FROM STDIN"
    # Rows go out in blocks: the server parses and indexes one block's JSON while Python
    # evaluates the next. A send per row cost more than the rules (a queue hand-over to a
    # writer thread and a libpq call for each application).
    block = bytearray()
    with connection.connection.cursor() as cursor, cursor.copy(sql) as copy:

        def store(application_id: int, evaluation: rules.Evaluation) -> None:
            block.extend(line(application_id, evaluation))
            if len(block) >= _COPY_BLOCK:
                copy.write(block)  # handed to libpq before it returns: the block is free
                block.clear()

        yield store
        if block:
            copy.write(block)


@contextmanager
def facts_table(where: str, params: list, snapshot_ids: dict[str, int]):
    """Gather the facts of the applications `where` selects (on `a`), once, into a
    temporary table that chunks read by application id: a round's worth of hash joins
    costs about what one chunk's index lookups did."""
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {_FACTS_TABLE}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {_FACTS_TABLE} AS {_facts_sql(where)}",
            _facts_params(params, snapshot_ids),
        )
        cursor.execute(f"CREATE UNIQUE INDEX {_FACTS_TABLE}_id ON {_FACTS_TABLE} (application_id)")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {_FACTS_TABLE}")


def _round_facts(round_: Round, trigger_key: str, snapshot_ids: dict[str, int]):
    """facts_table() of the round's applications under review still to screen."""
    runs = connection.ops.quote_name(ScreeningRun._meta.db_table)
    where = (
        "a.round_id = %s AND a.status = %s AND NOT EXISTS "  # noqa: S608
        f"(SELECT 1 FROM {runs} s WHERE s.application_id = a.id AND s.trigger_key = %s)"
    )
    params = [round_.pk, Application.Status.UNDER_REVIEW, trigger_key]
    return facts_table(where, params, snapshot_ids)


def _chunk_facts(first: int, last: int) -> dict[int, tuple]:
    """The gathered facts of the locked applications between these ids that were not
    resubmitted since (with another course or certificate, say): those are read again."""
    app = connection.ops.quote_name(Application._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {_FACTS_COLUMNS} FROM {_FACTS_TABLE} f "  # noqa: S608
            f"JOIN {app} a ON a.id = f.application_id AND a.submitted_at = f.submitted_at "
            "WHERE f.application_id BETWEEN %s AND %s",
            [first, last],
        )
        return {row[0]: row for row in cursor.fetchall()}


def applying_rows(applications, limit: int) -> list[_Applying]:
    """The first `limit` applications of a queryset as the rules read them, by id.

    Plain tuples: no model instances for thousands of applications. The person's birth
    date and district as subqueries: an index lookup per application, where a join let the
    planner read every applicant for each chunk.
    """
    person = Applicant.objects.filter(pk=OuterRef("applicant_id"))
    return [
        _Applying(*row)
        for row in applications.annotate(
            applied_on=TruncDate("submitted_at"),
            birth_date=Subquery(person.values("birth_date")),
            district=Subquery(person.values("district")),
        )
        .order_by("pk")
        .values_list(*_APPLYING_FIELDS)[:limit]
    ]


def _rescreen_chunk(
    round_: Round, trigger_key: str, snapshot_ids: dict[str, int], after_pk: int, chunk_size: int
) -> dict:
    """Screen the applications under review among the next `chunk_size` after `after_pk`
    and not yet screened for this trigger; `last_pk` is where the next chunk starts, None
    when no application is left."""
    under_review = Application.objects.filter(
        round_id=round_.pk, status=Application.Status.UNDER_REVIEW, pk__gt=after_pk
    )
    # A chunk is a range of ids, found first: the locking query then reads one range, and
    # the runs it checks for are looked up in that range, not among every run stored so far.
    end = list(
        under_review.order_by("pk").values_list("pk", flat=True)[chunk_size - 1 : chunk_size]
    )
    already = ScreeningRun.objects.filter(
        application=OuterRef("pk"), trigger_key=trigger_key, application_id__gt=after_pk
    )
    if end:
        under_review = under_review.filter(pk__lte=end[0])
        already = already.filter(application_id__lte=end[0])
    with transaction.atomic():
        # Progress renews the job's lease, and holds it until this chunk commits: a run
        # taken over meanwhile rolls its chunk back, so no application is screened twice.
        outbox_heartbeat()
        applying = applying_rows(
            under_review.select_for_update().exclude(Exists(already)), chunk_size
        )
        if not applying:
            # Screened for this trigger already: a resumed job passes over the range.
            return {"screened": 0, "last_pk": end[0] if end else None, "outcomes": {}}
        facts = _chunk_facts(applying[0].pk, applying[-1].pk)
        missing = [a.pk for a in applying if a.pk not in facts]
        if missing:
            # Came under review, or was resubmitted, after the round's facts were gathered.
            where = "a.id IN (" + ", ".join(["%s"] * len(missing)) + ")"
            with connection.cursor() as cursor:
                cursor.execute(_facts_sql(where), _facts_params(missing, snapshot_ids))
                facts.update((row[0], row) for row in cursor.fetchall())
        outcomes: dict[str, int] = defaultdict(int)
        ids = [a.pk for a in applying]
        now = timezone.now()
        evaluate = _evaluator(round_)
        with _run_writer(ids, trigger_key=trigger_key, snapshot_ids=snapshot_ids, now=now) as store:
            for a in applying:
                evaluation = evaluate(a, facts[a.pk])
                outcomes[evaluation.outcome] += 1
                store(a.pk, evaluation)
        audit_record(
            actor=None,
            obj=round_,
            action="round.rescreened_chunk",
            data={
                "trigger_key": trigger_key,
                "screened": len(applying),
                "first_application": applying[0].pk,
                "last_application": applying[-1].pk,
                "outcomes": dict(outcomes),
            },
        )
    # Past the range, unless more of it came under review meanwhile than a chunk holds.
    last_pk = end[0] if end and len(applying) < chunk_size else applying[-1].pk
    return {"screened": len(applying), "last_pk": last_pk, "outcomes": outcomes}


def round_rescreen(*, round_id: int, job_key: str, chunk_size: int = 5000) -> dict:
    """Re-screen a round's applications under review in chunks that each commit.

    Every chunk reads the registry snapshots that were active when the job began, so the
    whole round is judged on one set of snapshots; a newer snapshot queues its own job.
    """
    round_ = Round.objects.select_related("program").get(pk=round_id)
    trigger_key = f"rescreen:{job_key}"
    totals: dict = {"screened": 0, "chunks": 0, "outcomes": defaultdict(int)}
    totals["already_done"] = ScreeningRun.objects.filter(
        application__round_id=round_id, trigger_key=trigger_key
    ).count()
    snapshot_ids = _active_snapshot_ids()
    after_pk = 0
    with _round_facts(round_, trigger_key, snapshot_ids):
        while True:
            chunk = _rescreen_chunk(round_, trigger_key, snapshot_ids, after_pk, chunk_size)
            if chunk["last_pk"] is None:
                break
            after_pk = chunk["last_pk"]
            if not chunk["screened"]:
                continue
            totals["screened"] += chunk["screened"]
            totals["chunks"] += 1
            for outcome, n in chunk["outcomes"].items():
                totals["outcomes"][outcome] += n
            logger.info(
                "rescreen %s of round %s: %s screened so far",
                job_key,
                round_id,
                totals["screened"],
            )
    totals["outcomes"] = dict(totals["outcomes"])
    return totals


def screening_summary(run: ScreeningRun | None) -> dict | None:
    """Shape a screening run as the `screening` field of the application payload."""
    if run is None:
        return None
    return {
        "outcome": run.outcome,
        "rules": [
            {k: r[k] for k in ("rule", "outcome", "code", "message")} for r in run.rule_results()
        ],
        "duplicates": [
            {k: d[k] for k in ("registry", "action", "detail")} for d in run.duplicate_matches()
        ],
    }


def rescreen_after_snapshot(*, snapshot_id: int) -> list[int]:
    """Record a re-screening of every round with applications under review, in the
    transaction that activates the snapshot; return the round ids."""
    from eligibility.screening_tasks import round_rescreen_task

    round_ids = list(
        Application.objects.filter(status=Application.Status.UNDER_REVIEW)
        .values_list("round_id", flat=True)
        .distinct()
        .order_by("round_id")
    )
    for round_id in round_ids:
        job_key = f"snapshot-{snapshot_id}"
        outbox_enqueue(round_rescreen_task, round_id, job_key, key=f"rescreen:{round_id}:{job_key}")
    from eligibility.recheck import recheck_after_snapshot

    recheck_after_snapshot(snapshot_id=snapshot_id)
    return round_ids

"""The facts screening judges on: one set-based query gathers every registry record, the
catalogue entry, the other live applications and the shared accounts of the applications
it selects, and `evaluator` runs a round's rules on one row of it.

One statement (`facts_sql`) serves a single screening and a whole round, so both judge on
the same joins. Only reads.
"""

from datetime import date
from functools import lru_cache
from types import MappingProxyType
from typing import NamedTuple

import orjson
from django.db import connection
from django.utils import timezone

from benefits.models import Applicant, Application, Document, Round
from eligibility import rules
from eligibility.models import (
    MatchResolution,
    NaeilbaeumRecord,
    NationalVoucherRecord,
    RegistryKind,
    SocialSecurityRecord,
    TrainingCourse,
    YouthAllowanceRecord,
)

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
FACTS_TABLE = "baeum_screening_facts"
# Read back as text: orjson parses it several times faster than the driver.
FACTS_COLUMNS = "f.application_id, CAST(f.facts AS TEXT), f.certified"


class Applying(NamedTuple):
    """The application's own values the rules read."""

    pk: int
    income_category: str
    course_id: str
    training_starts_on: date | None
    training_ends_on: date | None
    applied_on: date | None
    birth_date: date | None
    district: str


APPLYING_FIELDS = (
    "pk",
    "income_category",
    "course_id",
    "training_starts_on",
    "training_ends_on",
    "applied_on",
    "birth_date",
    "district",
)


# Facts: one set-based query shared by a single screening and a whole round.


def facts_sql(where: str) -> str:
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


def facts_params(where_params: list, snapshot_ids: dict[str, int]) -> list:
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


def evaluator(round_: Round):
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

    def evaluate(applying: Applying, row: tuple) -> rules.Evaluation:
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


# Every table the facts query reads (ANALYZEd before a round's re-screen).
FACTS_MODELS = (
    Application,
    Applicant,
    Round,
    Document,
    TrainingCourse,
    MatchResolution,
    *(model for _, model, *_ in _PERSON_REGISTRIES),
)

"""Screening: the verdict on an application, or on a round's applications chunk by chunk,
from the facts eligibility.facts gathers.

This module only reads: benefits.screening_record records a verdict and moves the state.
"""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import connection
from django.db.models import OuterRef, Subquery
from django.db.models.functions import TruncDate
from django.utils import timezone

from benefits.models import Applicant, Application, Round
from eligibility import rules
from eligibility.facts import (
    APPLYING_FIELDS,
    FACTS_COLUMNS,
    FACTS_TABLE,
    Applying,
    evaluator,
    facts_params,
    facts_sql,
)
from eligibility.models import RegistrySnapshot, ScreeningRun


def active_snapshot_ids() -> dict[str, int]:
    """The active registry snapshot of each kind, by kind."""
    return dict(
        RegistrySnapshot.objects.filter(status=RegistrySnapshot.Status.ACTIVE).values_list(
            "kind", "id"
        )
    )


@dataclass(frozen=True, slots=True)
class Verdict:
    """What screening concluded about one application, on which snapshots: the rule
    outcomes and the duplicate matches as the rules gave them. Nothing is stored yet."""

    application_id: int
    evaluation: rules.Evaluation
    # The snapshot of each registry kind the facts came from ({kind: id}, as stored).
    snapshot_ids: Mapping[str, int]

    @property
    def outcome(self) -> str:
        return self.evaluation.outcome

    @property
    def ruleset_version(self) -> str:
        return self.evaluation.ruleset_version

    @property
    def rule_results(self) -> tuple[rules.RuleResult, ...]:
        return self.evaluation.rules

    @property
    def matches(self) -> tuple[rules.DuplicateMatch, ...]:
        return self.evaluation.duplicates

    @property
    def duplicate_found(self) -> bool:
        return bool(self.evaluation.duplicates)

    def failed(self) -> list[dict]:
        """The rules that failed, with their messages (an automatic rejection's reason)."""
        return [
            rules.rendered_rule(result.as_record())
            for result in self.evaluation.rules
            if result.outcome == rules.FAIL
        ]

    def stored(self) -> tuple[list[dict], list[dict]]:
        """The rule results and matches as a screening run stores them."""
        return rules.stored_records(self.evaluation)


def _stored_snapshot_ids(snapshot_ids: dict) -> dict[str, int]:
    return {str(k): v for k, v in snapshot_ids.items()}


# Screening one application (on submit).


def application_verdict(application: Application, snapshot_ids: dict[str, int]) -> Verdict:
    """The verdict on one application (its round, program and applicant loaded) on these
    snapshots (active_snapshot_ids())."""
    with connection.cursor() as cursor:
        cursor.execute(facts_sql("a.id = %s"), facts_params([application.pk], snapshot_ids))
        facts = cursor.fetchone()
    person = application.applicant
    applying = Applying(
        application.pk,
        application.income_category,
        application.course_id,
        application.training_starts_on,
        application.training_ends_on,
        timezone.localdate(application.submitted_at) if application.submitted_at else None,
        person.birth_date,
        person.district,
    )
    evaluation = evaluator(application.round)(applying, facts)
    return Verdict(application.pk, evaluation, _stored_snapshot_ids(snapshot_ids))


# Judging a round: the facts gathered once, then read chunk by chunk.


@contextmanager
def facts_table(where: str, params: list, snapshot_ids: dict[str, int]):
    """Gather the facts of the applications `where` selects (on `a`), once, into a
    temporary table that chunks read by application id: a round's worth of hash joins
    costs about what one chunk's index lookups did."""
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {FACTS_TABLE}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {FACTS_TABLE} AS {facts_sql(where)}",
            facts_params(params, snapshot_ids),
        )
        cursor.execute(f"CREATE UNIQUE INDEX {FACTS_TABLE}_id ON {FACTS_TABLE} (application_id)")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {FACTS_TABLE}")


def round_facts(
    round_: Round,
    trigger_key: str,
    snapshot_ids: dict[str, int],
    *,
    first: int | None = None,
    last: int | None = None,
):
    """facts_table() of the round's applications under review not yet screened for this
    trigger, those with ids from `first` to `last` only when given (a chunk's range)."""
    runs = connection.ops.quote_name(ScreeningRun._meta.db_table)
    where = (
        "a.round_id = %s AND a.status = %s AND NOT EXISTS "  # noqa: S608
        f"(SELECT 1 FROM {runs} s WHERE s.application_id = a.id AND s.trigger_key = %s)"
    )
    params = [round_.pk, Application.Status.UNDER_REVIEW, trigger_key]
    if first is not None:
        where += " AND a.id >= %s"
        params.append(first)
    if last is not None:
        where += " AND a.id <= %s"
        params.append(last)
    return facts_table(where, params, snapshot_ids)


def _chunk_facts(ids: list[int], snapshot_ids: dict[str, int]) -> dict[int, tuple]:
    """The facts of these applications (ascending ids) from the gathered table; those not
    in it, or resubmitted since (with another course or certificate, say), are read again."""
    app = connection.ops.quote_name(Application._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {FACTS_COLUMNS} FROM {FACTS_TABLE} f "  # noqa: S608
            f"JOIN {app} a ON a.id = f.application_id AND a.submitted_at = f.submitted_at "
            "WHERE f.application_id BETWEEN %s AND %s",
            [ids[0], ids[-1]],
        )
        facts = {row[0]: row for row in cursor.fetchall()}
    missing = [pk for pk in ids if pk not in facts]
    if missing:
        # Came under review (or was decided), or was resubmitted, after the facts were
        # gathered: read theirs now.
        where = "a.id IN (" + ", ".join(["%s"] * len(missing)) + ")"
        with connection.cursor() as cursor:
            cursor.execute(facts_sql(where), facts_params(missing, snapshot_ids))
            facts.update((row[0], row) for row in cursor.fetchall())
    return facts


def chunk_verdicts(
    round_: Round, applying: list[Applying], snapshot_ids: dict[str, int]
) -> Iterator[Verdict]:
    """The verdicts on a chunk of the round's applications (applying_rows(), by id), inside
    a facts_table(); the facts are read now, each verdict is judged as it is taken."""
    facts = _chunk_facts([a.pk for a in applying], snapshot_ids)
    evaluate = evaluator(round_)
    stored_ids = _stored_snapshot_ids(snapshot_ids)
    return (Verdict(a.pk, evaluate(a, facts[a.pk]), stored_ids) for a in applying)


def applying_rows(applications, limit: int) -> list[Applying]:
    """The first `limit` applications of a queryset as the rules read them, by id.

    Plain tuples: no model instances for thousands of applications. The person's birth
    date and district as subqueries: an index lookup per application, where a join let the
    planner read every applicant for each chunk.
    """
    person = Applicant.objects.filter(pk=OuterRef("applicant_id"))
    return [
        Applying(*row)
        for row in applications.annotate(
            applied_on=TruncDate("submitted_at"),
            birth_date=Subquery(person.values("birth_date")),
            district=Subquery(person.values("district")),
        )
        .order_by("pk")
        .values_list(*APPLYING_FIELDS)[:limit]
    ]


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

"""Recording screening verdicts: the run that stores a verdict, and the state it moves.

eligibility.screening judges and writes nothing; this module records what it concluded.
`application_screen` screens a submitted application: the verdict is stored as the
application's current run and the application moves through `finish_screening` (and, in a
round that decides automatically, `approve` or `reject`) in one transaction.
A round's re-screen (benefits.rescreen) stores its chunks' runs the same way
(`runs_record`), each chunk in a transaction of its own.
"""

import logging
from collections.abc import Iterable
from datetime import datetime

import orjson
from django.db import connection, transaction
from django.utils import timezone

from benefits.models import Application
from benefits.transitions import application_transition
from core.audit import audit_record
from eligibility import rules, screening
from eligibility.models import ScreeningRun
from eligibility.screening import Verdict

logger = logging.getLogger(__name__)

# The reason a citizen reads when the round decided automatically and every rule passed.
AUTO_APPROVAL_REASON = (
    "모든 자격 요건을 충족하여 자동 승인되었습니다. / Approved automatically: every rule passed."
)


# Storing runs: one way for one application and for a chunk of a round.

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
# Bytes of COPY rows sent at a time: the most psycopg sends in one piece.
_COPY_BLOCK = 128 * 1024


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


def runs_record(
    application_ids: list[int], verdicts: Iterable[Verdict], *, trigger_key: str, now
) -> None:
    """Retire these applications' current runs, then store each verdict as the current run
    of its application, inside the caller's transaction.

    On PostgreSQL the runs stream into a COPY as the verdicts are taken (so a lazy
    iterable is judged while the server parses the previous block); elsewhere they are
    kept for one bulk_create.
    """
    table = connection.ops.quote_name(ScreeningRun._meta.db_table)
    if connection.vendor != "postgresql":
        ScreeningRun.objects.filter(application_id__in=application_ids, is_current=True).update(
            is_current=False
        )
        runs = []
        for verdict in verdicts:
            results, matches = verdict.stored()
            runs.append(
                ScreeningRun(
                    application_id=verdict.application_id,
                    trigger_key=trigger_key,
                    is_current=True,
                    ruleset_version=verdict.ruleset_version,
                    outcome=verdict.outcome,
                    rules=results,
                    duplicates=matches,
                    snapshot_ids=dict(verdict.snapshot_ids),
                    duplicate_found=verdict.duplicate_found,
                    created_at=now,
                )
            )
        ScreeningRun.objects.bulk_create(runs)
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET is_current = false "  # noqa: S608
            "WHERE application_id = ANY(%s) AND is_current",
            [application_ids],
        )
    columns = ", ".join(connection.ops.quote_name(c) for c in _RUN_COLUMNS)
    # Values shared by the runs are encoded once; versions, outcomes and the snapshots
    # judged on are a handful.
    shared = b"\t".join(map(_copy_text, (trigger_key, True)))
    created = _copy_text(now)
    encoded: dict[str, bytes] = {}

    def once(text: str) -> bytes:
        found = encoded.get(text)
        if found is None:
            found = encoded[text] = _copy_text(text)
        return found

    snapshots, snapshots_text = None, b""

    # Rows go out in blocks: the server parses and indexes one block's JSON while Python
    # judges the next. A send per row cost more than the rules.
    block = bytearray()
    sql = f"COPY {table} ({columns}) FROM STDIN"
    with connection.connection.cursor() as cursor, cursor.copy(sql) as copy:
        for verdict in verdicts:
            results, matches = verdict.stored()
            if verdict.snapshot_ids is not snapshots:  # a chunk's verdicts share theirs
                snapshots = verdict.snapshot_ids
                snapshots_text = _copy_text(dict(snapshots))
            block += b"\t".join(
                (
                    b"%d" % verdict.application_id,
                    shared,
                    once(verdict.ruleset_version),
                    once(verdict.outcome),
                    _copy_text(results),
                    _copy_text(matches),
                    b"t" if verdict.duplicate_found else b"f",
                    snapshots_text,
                    created,
                )
            )
            block += b"\n"
            if len(block) >= _COPY_BLOCK:
                copy.write(block)  # handed to libpq before it returns: the block is free
                block.clear()
        if block:
            copy.write(block)


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
            application_transition(
                application,
                None,
                transition="start_screening",
                action="application.screening_started",
            )
            return True
        return application.status == Application.Status.SCREENING


def _verdict_decides(application: Application, verdict: Verdict) -> Application:
    """Hand the screened application to the caseworkers, or, in a round that decides
    automatically, approve an eligible one and reject an ineligible one (the failed rules
    are the rejection's reason, and its audit event names them)."""
    outcome = verdict.outcome
    application = application_transition(
        application,
        None,
        transition="finish_screening",
        action="application.screened",
        data={"outcome": outcome},
    )
    if not application.round.auto_decisions or outcome == rules.NEEDS_REVIEW:
        return application
    if outcome == rules.ELIGIBLE:
        return application_transition(
            application,
            None,
            transition="approve",
            action="application.approved",
            reason=AUTO_APPROVAL_REASON,
            data={"automatic": True, "outcome": outcome},
        )
    failed = verdict.failed()
    return application_transition(
        application,
        None,
        transition="reject",
        action="application.rejected",
        reason="; ".join(f"{r['message_ko']} / {r['message']}" for r in failed),
        data={"automatic": True, "outcome": outcome, "rules": [r["code"] for r in failed]},
    )


def application_screen(*, application_id: int, trigger_key: str) -> ScreeningRun | None:
    """Screen a submitted application once per trigger: store the verdict as its current
    run and move it on, in one transaction. None when it is not (or no longer) screened."""
    existing = ScreeningRun.objects.filter(
        application_id=application_id, trigger_key=trigger_key
    ).first()
    if existing is not None:
        return existing
    if not _screening_begun(application_id):
        # Not (or no longer) to be screened: a concurrent run of the task may have just
        # screened it for this trigger.
        return ScreeningRun.objects.filter(
            application_id=application_id, trigger_key=trigger_key
        ).first()
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
        verdict = screening.application_verdict(application, screening.active_snapshot_ids())
        runs_record([application.pk], [verdict], trigger_key=trigger_key, now=timezone.now())
        run = ScreeningRun.objects.get(application_id=application.pk, trigger_key=trigger_key)
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
        _verdict_decides(application, verdict)
    return run

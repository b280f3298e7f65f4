"""What a screening's verdict does: `screening` shows while it runs, and a round that decides
automatically approves the eligible and rejects the ineligible, naming the rule."""

import threading
import time

import pytest
from django.db import connection, connections, transaction

from benefits.models import Application, Notification
from benefits.screening_record import application_screen
from core.models import AuditEvent
from eligibility import screening
from eligibility.models import ScreeningRun
from tests.eligibility.test_screening import in_force, submitted
from tests.factories import ApplicantFactory


def events(application) -> list[tuple[str, str, dict]]:
    return list(
        AuditEvent.objects.filter(object_id=str(application.pk), action__startswith="application.")
        .order_by("id")
        .values_list("action", "to_state", "data")
    )


@pytest.mark.django_db
def test_judging_writes_nothing_and_the_recorded_run_is_the_verdict(registries, scholarship_round):
    application = submitted(scholarship_round)
    in_force(registries, application.applicant, district="41110")  # Suwon, not Seoul
    application = Application.objects.select_related("round__program", "applicant").get(
        pk=application.pk
    )
    audited = AuditEvent.objects.count()

    verdict = screening.application_verdict(application, screening.active_snapshot_ids())

    assert verdict.outcome == "ineligible"
    assert [r["code"] for r in verdict.failed()] == ["not_seoul_resident"]
    application.refresh_from_db()
    assert application.status == Application.Status.SUBMITTED
    assert not ScreeningRun.objects.filter(application=application).exists()
    assert AuditEvent.objects.count() == audited

    run = application_screen(application_id=application.pk, trigger_key="submit:1")
    rules, matches = verdict.stored()
    assert (run.outcome, run.rules, run.duplicates, run.duplicate_found) == (
        verdict.outcome,
        rules,
        matches,
        verdict.duplicate_found,
    )
    assert run.snapshot_ids == dict(verdict.snapshot_ids)


@pytest.mark.django_db
def test_an_eligible_application_is_approved_when_the_round_decides_automatically(
    registries, scholarship_round
):
    scholarship_round.auto_decisions = True
    scholarship_round.save()
    application = submitted(scholarship_round)
    in_force(registries, application.applicant)
    application_screen(application_id=application.pk, trigger_key="submit:1")
    application.refresh_from_db()
    assert application.status == Application.Status.APPROVED
    assert application.decided_at is not None
    approved = [e for e in events(application) if e[0] == "application.approved"]
    assert approved == [
        ("application.approved", "approved", {"automatic": True, "outcome": "eligible"})
    ]
    assert Notification.objects.filter(
        application=application, kind=Notification.Kind.APPROVED
    ).exists()


@pytest.mark.django_db
def test_an_ineligible_application_is_rejected_naming_the_rule_that_failed(
    registries, scholarship_round
):
    scholarship_round.auto_decisions = True
    scholarship_round.save()
    application = submitted(scholarship_round)
    in_force(registries, application.applicant, district="41110")  # Suwon, not Seoul
    application_screen(application_id=application.pk, trigger_key="submit:1")
    application.refresh_from_db()
    assert application.status == Application.Status.REJECTED
    assert "서울" in application.decision_reason
    rejected = [e for e in events(application) if e[0] == "application.rejected"]
    assert len(rejected) == 1
    assert rejected[0][2]["automatic"] is True
    assert "not_seoul_resident" in rejected[0][2]["rules"]
    notice = Notification.objects.get(application=application, kind=Notification.Kind.REJECTED)
    assert application.decision_reason in notice.body


@pytest.mark.django_db
def test_needs_review_still_goes_to_a_person_when_the_round_decides_automatically(
    registries, scholarship_round
):
    scholarship_round.auto_decisions = True
    scholarship_round.save()
    application = submitted(scholarship_round)
    in_force(registries, application.applicant)
    # Another applicant gives the same bank account: a person looks at that.
    ApplicantFactory(account_fingerprint=application.applicant.account_fingerprint)
    run = application_screen(application_id=application.pk, trigger_key="submit:1")
    application.refresh_from_db()
    assert run.outcome == "needs_review", run.rules
    assert application.status == Application.Status.UNDER_REVIEW


@pytest.mark.django_db
def test_without_automatic_decisions_every_outcome_waits_for_a_person(
    registries, scholarship_round
):
    eligible, ineligible = submitted(scholarship_round), submitted(scholarship_round)
    in_force(registries, eligible.applicant)
    for application in (eligible, ineligible):
        application_screen(application_id=application.pk, trigger_key="submit:1")
        application.refresh_from_db()
        assert application.status == Application.Status.UNDER_REVIEW


@pytest.mark.django_db
def test_a_screening_interrupted_after_it_began_is_finished_by_the_retry(
    registries, scholarship_round
):
    application = submitted(scholarship_round)
    Application.objects.filter(pk=application.pk).update(status=Application.Status.SCREENING)
    run = application_screen(application_id=application.pk, trigger_key="submit:1")
    application.refresh_from_db()
    assert application.status == Application.Status.UNDER_REVIEW
    assert ScreeningRun.objects.filter(application=application).get() == run


@pytest.mark.django_db(transaction=True)
def test_the_screening_state_is_visible_while_the_rules_run(registries, scholarship_round):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL")
    application = submitted(scholarship_round)
    holding, release = threading.Event(), threading.Event()

    def hold_the_run_slot():
        # An uncommitted run with the same trigger: the screening's own insert waits on it.
        try:
            with transaction.atomic():
                ScreeningRun.objects.create(
                    application=application,
                    trigger_key="submit:1",
                    is_current=True,
                    ruleset_version="x",
                    outcome="eligible",
                    rules=[],
                    duplicates=[],
                    snapshot_ids={},
                )
                holding.set()
                release.wait(30)
                transaction.set_rollback(True)
        finally:
            connections.close_all()

    def screen():
        try:
            application_screen(application_id=application.pk, trigger_key="submit:1")
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_run_slot)
    holder.start()
    assert holding.wait(20)
    worker = threading.Thread(target=screen)
    worker.start()
    seen = set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Application.Status.SCREENING not in seen:
        seen.add(Application.objects.get(pk=application.pk).status)
        time.sleep(0.02)
    release.set()
    holder.join(30)
    worker.join(30)
    assert Application.Status.SCREENING in seen
    assert Application.objects.get(pk=application.pk).status == Application.Status.UNDER_REVIEW
    assert ScreeningRun.objects.filter(application=application).count() == 1
    assert AuditEvent.objects.filter(
        object_id=str(application.pk), action="application.screening_started"
    ).exists()

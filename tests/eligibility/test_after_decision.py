"""Eligibility that changes after the decision, and duplicate matches a caseworker resolved."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from benefits.models import Application, ApplicationFlag, Notification, Program, Round
from benefits.rescreen import round_rescreen
from benefits.screening_record import application_screen
from core.models import AuditEvent
from core.roles import Role
from eligibility.models import (
    MatchResolution,
    NaeilbaeumRecord,
    NationalVoucherRecord,
    RegistryKind,
    RegistrySnapshot,
    ScreeningRun,
    SocialSecurityRecord,
)
from eligibility.recheck import round_recheck
from payments import services as payment_services
from payments.audit import batch_audit, payment_flags
from payments.models import DisbursementBatch, Payment
from tests.eligibility.conftest import snapshot
from tests.eligibility.test_screening import in_force, submitted
from tests.factories import ApplicationFactory, ProgramFactory, RoundFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def paying_round(db):
    return RoundFactory(
        program=ProgramFactory(code=Program.Code.SCHOLARSHIP),
        ruleset_version="scholarship-2026.1",
        status=Round.Status.SELECTED,
        capacity=3,
    )


def recipients(registries, round_, n=3) -> list[Application]:
    """Selected applications whose registry facts all hold today."""
    apps = []
    for _ in range(n):
        application = ApplicationFactory(round=round_, status=Application.Status.SELECTED)
        in_force(registries, application.applicant)
        apps.append(application)
    return apps


def import_social_security(manager, capture, applications):
    """A new social-security snapshot through the program manager's import, listing only
    these applicants (the others' status has ended)."""
    lines = ["rrn,status,district,valid_from,valid_to"]
    lines += [f"{a.applicant.rrn},basic_livelihood,11440,2020-01-01," for a in applications]
    upload = SimpleUploadedFile("ss.csv", ("\n".join(lines) + "\n").encode(), "text/csv")
    with capture(execute=True):
        response = manager.post(
            "/api/v1/registries/social_security/imports/", {"file": upload}, format="multipart"
        )
    assert response.status_code == 202, response.json()


def supersede(snap) -> None:
    RegistrySnapshot.objects.filter(pk=snap.pk).update(status=RegistrySnapshot.Status.SUPERSEDED)


def open_flag(application) -> ApplicationFlag | None:
    return ApplicationFlag.objects.filter(application=application, cleared_at__isnull=True).first()


def test_a_snapshot_that_ends_a_recipients_status_flags_them_and_holds_their_payment(
    registries, paying_round, manager, caseworker, django_capture_on_commit_callbacks
):
    kept, dropped = recipients(registries, paying_round, 3)[:2], None
    dropped = (
        Application.objects.filter(round=paying_round).exclude(pk__in=[a.pk for a in kept]).get()
    )
    import_social_security(manager, django_capture_on_commit_callbacks, kept)

    flag = open_flag(dropped)
    assert flag is not None and flag.kind == "eligibility_changed"
    codes = ["not_in_social_security_registry", "no_income_status"]
    assert [c["code"] for c in flag.causes] == codes
    assert all(open_flag(a) is None for a in kept)
    # The re-check never decides by itself.
    assert Application.objects.get(pk=dropped.pk).status == Application.Status.SELECTED

    queue = caseworker.get("/api/v1/review/applications/?flag=eligibility_changed").json()
    assert [row["id"] for row in queue["results"]] == [dropped.pk]
    detail = caseworker.get(f"/api/v1/review/applications/{dropped.pk}/").json()
    assert detail["open_flags"][0]["causes"][0]["code"] == "not_in_social_security_registry"

    finance1, finance2 = UserFactory(role=Role.FINANCE), UserFactory(role=Role.FINANCE)
    batch = payment_services.batch_build(
        batch_id=payment_services.batch_create(round_=paying_round, actor=finance1).pk
    )
    held = Payment.objects.get(batch=batch, application=dropped)
    assert held.status == Payment.Status.CANCELLED
    assert held.hold_reason == f"eligibility_changed: {'; '.join(codes)}"
    assert batch.payments.filter(status=Payment.Status.PENDING).count() == 2

    # A caseworker looks, clears it with a reason; the next batch pays them.
    url = f"/api/v1/review/applications/{dropped.pk}/clear-flag/"
    cleared = caseworker.post(
        url, {"flag": "eligibility_changed", "reason": "갱신 신청 중 확인"}, format="json"
    )
    assert cleared.status_code == 200, cleared.json()
    assert open_flag(dropped) is None
    assert AuditEvent.objects.filter(action="application.flag_cleared", reason="갱신 신청 중 확인")
    batch = payment_services.batch_submit(batch=batch, actor=finance1)
    payment_services.batch_approve(batch=batch, actor=finance2)
    nxt = payment_services.batch_build(
        batch_id=payment_services.batch_create(round_=paying_round, actor=finance1).pk
    )
    assert list(nxt.payments.values_list("application_id", "status")) == [(dropped.pk, "pending")]


def test_the_same_causes_a_caseworker_cleared_are_not_raised_again(
    registries, paying_round, caseworker
):
    recipient = recipients(registries, paying_round, 1)[0]
    supersede(registries[RegistryKind.NATIONAL_VOUCHER])
    voucher = snapshot(RegistryKind.NATIONAL_VOUCHER)
    NationalVoucherRecord.objects.create(
        snapshot=voucher, line=2, rrn_hmac=recipient.applicant.rrn_hmac, year=paying_round.year
    )
    # The national voucher is blocked by default: a match that now shows fails the rule.
    assert round_recheck(round_id=paying_round.pk, job_key="a")["flagged"] == 1
    caseworker.post(
        f"/api/v1/review/applications/{recipient.pk}/clear-flag/",
        {"flag": "eligibility_changed", "reason": "중복 아님 확인"},
        format="json",
    )
    assert round_recheck(round_id=paying_round.pk, job_key="b")["flagged"] == 0
    assert round_recheck(round_id=paying_round.pk, job_key="b")["flagged"] == 0
    assert ApplicationFlag.objects.filter(application=recipient).count() == 1


def test_a_rule_that_already_failed_when_the_caseworker_approved_raises_nothing(
    registries, paying_round
):
    recipient = ApplicationFactory(round=paying_round, status=Application.Status.APPROVED)
    # Screened with no registry record; a caseworker approved it all the same.
    ScreeningRun.objects.create(
        application=recipient,
        trigger_key="t",
        ruleset_version="scholarship-2026.1",
        outcome="ineligible",
        rules=[
            {
                "rule": "seoul_resident",
                "outcome": "fail",
                "code": "not_in_social_security_registry",
                "evidence": {},
            },
            {
                "rule": "income_status",
                "outcome": "fail",
                "code": "no_income_status",
                "evidence": {},
            },
        ],
    )
    assert round_recheck(round_id=paying_round.pk, job_key="a")["flagged"] == 0


def test_a_paid_application_is_not_rechecked(registries, paying_round):
    recipient = ApplicationFactory(round=paying_round, status=Application.Status.SELECTED)
    batch = DisbursementBatch.objects.create(round=paying_round, prepared_by=UserFactory())
    Payment.objects.create(
        batch=batch, round=paying_round, application=recipient, amount=1, status="paid"
    )
    assert round_recheck(round_id=paying_round.pk, job_key="a") == {
        "checked": 0,
        "flagged": 0,
        "chunks": 0,
    }


def test_the_pre_release_audit_shows_a_flag_raised_after_the_batch_was_built(
    registries, paying_round
):
    recipient = recipients(registries, paying_round, 1)[0]
    finance = UserFactory(role=Role.FINANCE)
    batch = payment_services.batch_build(
        batch_id=payment_services.batch_create(round_=paying_round, actor=finance).pk
    )
    SocialSecurityRecord.objects.all().delete()
    round_recheck(round_id=paying_round.pk, job_key="late")
    assert [payment_flags(p) for p in batch_audit(batch)] == [["eligibility_changed"]]
    assert open_flag(recipient) is not None


def test_revoking_an_approval_rejects_it_frees_the_seat_and_clears_its_flags(
    registries, paying_round, caseworker
):
    recipient = recipients(registries, paying_round, 1)[0]
    waiting = ApplicationFactory(
        round=paying_round,
        status=Application.Status.WAITLISTED,
        priority_tier=1,
        lottery_key="0",
    )
    SocialSecurityRecord.objects.all().delete()
    round_recheck(round_id=paying_round.pk, job_key="a")
    Round.objects.filter(pk=paying_round.pk).update(capacity=1, budget=paying_round.amount)
    response = caseworker.post(
        f"/api/v1/review/applications/{recipient.pk}/revoke/",
        {"reason": "기초생활수급 자격 종료"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "rejected"
    recipient.refresh_from_db()
    assert recipient.decision_reason == "기초생활수급 자격 종료"
    assert open_flag(recipient) is None
    assert Application.objects.get(pk=waiting.pk).status == Application.Status.SELECTED
    notice = Notification.objects.get(application=recipient, kind="approval_revoked")
    assert "기초생활수급 자격 종료" in notice.body


def test_an_approval_with_a_payment_on_its_way_cannot_be_revoked(paying_round, caseworker):
    recipient = ApplicationFactory(round=paying_round, status=Application.Status.SELECTED)
    batch = DisbursementBatch.objects.create(round=paying_round, prepared_by=UserFactory())
    Payment.objects.create(batch=batch, round=paying_round, application=recipient, amount=1)
    response = caseworker.post(
        f"/api/v1/review/applications/{recipient.pk}/revoke/", {"reason": "x"}, format="json"
    )
    assert response.status_code == 409
    assert Application.objects.get(pk=recipient.pk).status == Application.Status.SELECTED


@pytest.mark.parametrize(
    ("body", "attr", "code", "status"),
    [
        ({"flag": "eligibility_changed"}, "reason", "required", 400),
        ({"flag": "haunted", "reason": "x"}, "flag", "invalid_choice", 400),
        ({"flag": "eligibility_changed", "reason": "x"}, "status", "no_open_flag", 409),
    ],
)
def test_bad_flag_clearing_is_refused(paying_round, caseworker, body, attr, code, status):
    recipient = ApplicationFactory(round=paying_round, status=Application.Status.SELECTED)
    response = caseworker.post(
        f"/api/v1/review/applications/{recipient.pk}/clear-flag/", body, format="json"
    )
    assert response.status_code == status
    first = response.json()["errors"][0]
    assert (first["attr"], first["code"]) == (attr, code)


@pytest.mark.parametrize("role", ["finance", "program_manager", "auditor", "citizen"])
def test_only_caseworkers_clear_flags_revoke_and_resolve(staff, paying_round, role):
    recipient = ApplicationFactory(round=paying_round, status=Application.Status.SELECTED)
    client = staff(role)
    base = f"/api/v1/review/applications/{recipient.pk}"
    for url, body in (
        (f"{base}/clear-flag/", {"flag": "eligibility_changed", "reason": "x"}),
        (f"{base}/revoke/", {"reason": "x"}),
        (f"{base}/matches/naeilbaeum.0123456789abcdef0123/resolve/", {"resolution": "x"}),
    ):
        assert client.post(url, body, format="json").status_code == 403


# Resolved matches.


def naeilbaeum_card(registries, application, days_from_now: int, line: int = 2):
    """A Naeil-baeum card whose training overlaps the application's."""
    start = timezone.localdate() + timedelta(days=days_from_now)
    return NaeilbaeumRecord.objects.create(
        snapshot=registries[RegistryKind.NAEILBAEUM],
        line=line,
        rrn_hmac=application.applicant.rrn_hmac,
        card_valid_from=start,
        card_valid_to=start + timedelta(days=365),
        course_id="OTHER0001",
        training_from=start,
        training_to=start + timedelta(days=60),
    )


@pytest.fixture
def reviewed_with_a_card(registries, scholarship_round):
    """An application under review whose person holds a Naeil-baeum card over the same
    period (a match the round sends to review), screened once."""
    application = submitted(scholarship_round)
    in_force(registries, application.applicant)
    naeilbaeum_card(registries, application, days_from_now=20)
    run = application_screen(application_id=application.pk, trigger_key="submit:1")
    assert run.outcome == "needs_review", run.rules
    return application


def match_of(caseworker, application) -> dict:
    detail = caseworker.get(f"/api/v1/review/applications/{application.pk}/").json()
    (match,) = [d for d in detail["screening"]["duplicates"] if d["registry"] == "naeilbaeum"]
    return match


def current_run(application) -> ScreeningRun:
    return ScreeningRun.objects.get(application=application, is_current=True)


def resolve(caseworker, application, match_id, resolution, reason="다른 사람으로 확인"):
    return caseworker.post(
        f"/api/v1/review/applications/{application.pk}/matches/{match_id}/resolve/",
        {"resolution": resolution, "reason": reason},
        format="json",
    )


def test_a_resolved_match_is_not_raised_again_but_a_new_record_is(
    reviewed_with_a_card, registries, caseworker
):
    application = reviewed_with_a_card
    (record,) = match_of(caseworker, application)["records"]
    response = resolve(caseworker, application, record["id"], "no_overlap_in_fact")
    assert response.status_code == 200, response.json()
    assert response.json()["match_resolutions"][0]["resolution"] == "no_overlap_in_fact"
    assert match_of(caseworker, application)["records"][0]["resolution"] == "no_overlap_in_fact"

    # The next re-screen does not raise it.
    round_rescreen(round_id=application.round_id, job_key="after-resolution")
    assert current_run(application).outcome == "eligible", current_run(application).rules
    assert not current_run(application).duplicate_found

    # Another card of the same person, over another period, is a new match.
    naeilbaeum_card(registries, application, days_from_now=40, line=3)
    round_rescreen(round_id=application.round_id, job_key="new-record")
    assert current_run(application).outcome == "needs_review"
    records = match_of(caseworker, application)["records"]
    assert len(records) == 1 and records[0]["id"] != record["id"]
    assert records[0]["resolution"] is None


def test_a_confirmed_duplicate_fails_the_application_on_the_next_screening(
    reviewed_with_a_card, caseworker
):
    application = reviewed_with_a_card
    (record,) = match_of(caseworker, application)["records"]
    assert resolve(caseworker, application, record["id"], "confirmed_duplicate").status_code == 200
    round_rescreen(round_id=application.round_id, job_key="confirmed")
    assert current_run(application).outcome == "ineligible"


def test_resolving_twice_keeps_the_latest_judgement_and_audits_both(
    reviewed_with_a_card, caseworker
):
    application = reviewed_with_a_card
    (record,) = match_of(caseworker, application)["records"]
    resolve(caseworker, application, record["id"], "confirmed_duplicate")
    resolve(caseworker, application, record["id"], "no_overlap_in_fact", "기간 겹치지 않음")
    assert list(MatchResolution.objects.values_list("resolution", flat=True)) == [
        "no_overlap_in_fact"
    ]
    events = AuditEvent.objects.filter(action="application.match_resolved").order_by("id")
    assert [e.data["previous"] for e in events] == [None, "confirmed_duplicate"]


def test_an_unknown_match_is_404_and_bad_resolutions_are_field_errors(
    reviewed_with_a_card, caseworker
):
    application = reviewed_with_a_card
    (record,) = match_of(caseworker, application)["records"]
    unknown = "naeilbaeum." + "f" * 20
    assert resolve(caseworker, application, unknown, "no_overlap_in_fact").status_code == 404
    response = resolve(caseworker, application, record["id"], "probably_fine")
    assert response.status_code == 400
    assert response.json()["errors"][0]["attr"] == "resolution"
    response = resolve(caseworker, application, record["id"], "no_overlap_in_fact", "")
    assert response.status_code == 400
    assert not MatchResolution.objects.exists()


def test_a_match_keeps_its_id_in_a_newer_snapshot(reviewed_with_a_card, registries, caseworker):
    application = reviewed_with_a_card
    (before,) = match_of(caseworker, application)["records"]
    old = NaeilbaeumRecord.objects.get()
    supersede(registries[RegistryKind.NAEILBAEUM])
    newer = snapshot(RegistryKind.NAEILBAEUM)
    NaeilbaeumRecord.objects.create(
        snapshot=newer,
        line=7,
        rrn_hmac=old.rrn_hmac,
        card_valid_from=old.card_valid_from,
        card_valid_to=old.card_valid_to,
        course_id=old.course_id,
        training_from=old.training_from,
        training_to=old.training_to,
    )
    round_rescreen(round_id=application.round_id, job_key="newer-snapshot")
    assert current_run(application).snapshot_ids["naeilbaeum"] == newer.pk
    assert match_of(caseworker, application)["records"][0]["id"] == before["id"]


def test_a_status_that_ended_after_the_application_counts_from_the_day_it_ended(
    registries, paying_round
):
    recipient = recipients(registries, paying_round, 1)[0]
    Application.objects.filter(pk=recipient.pk).update(
        submitted_at=timezone.now() - timedelta(days=90)
    )
    # In force when the citizen applied; ended yesterday.
    SocialSecurityRecord.objects.filter(rrn_hmac=recipient.applicant.rrn_hmac).update(
        valid_from=timezone.localdate() - timedelta(days=400),
        valid_to=timezone.localdate() - timedelta(days=1),
    )
    assert round_recheck(round_id=paying_round.pk, job_key="a")["flagged"] == 1
    assert [c["code"] for c in open_flag(recipient).causes] == ["status_not_valid_on_date"]

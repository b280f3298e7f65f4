"""Screening services against the database: one application on submit, a whole round after."""

from datetime import date, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from benefits.models import Applicant, Application, Document, Program
from benefits.rescreen import round_rescreen
from benefits.screening_record import application_screen
from core.models import AuditEvent
from eligibility import rules
from eligibility.models import (
    NationalVoucherRecord,
    RegistryKind,
    RegistrySnapshot,
    ScreeningRun,
    SocialSecurityRecord,
    TrainingCourse,
)
from eligibility.screening import screening_summary
from eligibility.screening_tasks import application_screen_task
from tests.eligibility.conftest import COURSE_ID, snapshot
from tests.factories import ApplicantFactory, ApplicationFactory, ProgramFactory, RoundFactory

pytestmark = pytest.mark.django_db


def in_force(snaps, applicant, status="basic_livelihood", district="11440"):
    return SocialSecurityRecord.objects.create(
        snapshot=snaps[RegistryKind.SOCIAL_SECURITY],
        line=2,
        rrn_hmac=applicant.rrn_hmac,
        status=status,
        district=district,
        valid_from=date(2020, 1, 1),
        valid_to=None,
    )


def submitted(round_, **kw):
    application = ApplicationFactory(
        round=round_, status=Application.Status.SUBMITTED, submitted_at=timezone.now(), **kw
    )
    Document.objects.create(
        application=application,
        kind=Document.Kind.ENROLLMENT_CERTIFICATE,
        file="applications/x/cert.pdf",
        original_name="cert.pdf",
        content_type="application/pdf",
        size=10,
        sha256="0" * 64,
        uploaded_by=application.applicant.user,
    )
    return application


def test_screening_moves_a_submitted_application_to_under_review_with_one_run(
    registries, scholarship_round
):
    application = submitted(scholarship_round)
    in_force(registries, application.applicant)

    run = application_screen(application_id=application.pk, trigger_key="submit:1")

    application.refresh_from_db()
    assert application.status == Application.Status.UNDER_REVIEW
    assert run.outcome == "eligible", run.rules
    assert run.is_current
    assert run.ruleset_version == "scholarship-2026.1"
    assert run.snapshot_ids == {kind: snap.pk for kind, snap in registries.items()}
    assert [r["code"] for r in run.rules] == [
        "seoul_resident",
        "income_status_confirmed",
        "course_approved",
        "enrollment_certificate_uploaded",
    ]
    actions = set(
        AuditEvent.objects.filter(object_id=str(application.pk)).values_list("action", flat=True)
    )
    assert {
        "application.screening_started",
        "application.screened",
        "application.screening_recorded",
    } <= actions


def test_an_ineligible_application_still_lands_under_review(registries, scholarship_round):
    application = submitted(scholarship_round)  # no social-security record at all

    run = application_screen(application_id=application.pk, trigger_key="submit:1")

    application.refresh_from_db()
    assert application.status == Application.Status.UNDER_REVIEW
    assert run.outcome == "ineligible"


def test_screening_twice_with_the_same_trigger_stores_one_result(registries, scholarship_round):
    application = submitted(scholarship_round)
    in_force(registries, application.applicant)

    first = application_screen(application_id=application.pk, trigger_key="submit:1")
    second = application_screen(application_id=application.pk, trigger_key="submit:1")

    assert first.pk == second.pk
    assert ScreeningRun.objects.filter(application=application).count() == 1


def test_the_database_refuses_a_second_current_run_or_a_repeated_trigger(
    registries, scholarship_round
):
    application = submitted(scholarship_round)
    run = application_screen(application_id=application.pk, trigger_key="submit:1")

    def another(**fields):
        values = {"application": application, "ruleset_version": "v", "outcome": "eligible"}
        with pytest.raises(IntegrityError), transaction.atomic():
            ScreeningRun.objects.create(**{**values, **fields})

    # Whatever the code does, the constraints keep one current run and one run per trigger.
    another(trigger_key="submit:2", is_current=True)
    another(trigger_key=run.trigger_key, is_current=False)
    assert list(ScreeningRun.objects.filter(application=application)) == [run]


def test_the_task_run_twice_stores_one_result(registries, scholarship_round):
    application = submitted(scholarship_round)

    first = application_screen_task.delay(application.pk, "submit:1").get()
    second = application_screen_task.delay(application.pk, "submit:1").get()

    assert first == second
    assert ScreeningRun.objects.filter(application=application).count() == 1


def test_a_withdrawn_application_is_left_alone(registries, scholarship_round):
    application = ApplicationFactory(round=scholarship_round, status=Application.Status.WITHDRAWN)

    assert application_screen(application_id=application.pk, trigger_key="submit:1") is None

    application.refresh_from_db()
    assert application.status == Application.Status.WITHDRAWN
    assert not ScreeningRun.objects.exists()


def test_only_the_active_snapshot_is_read(registries, scholarship_round):
    application = submitted(scholarship_round)
    in_force(registries, application.applicant)
    old = snapshot(RegistryKind.NATIONAL_VOUCHER, status=RegistrySnapshot.Status.SUPERSEDED)
    NationalVoucherRecord.objects.create(
        snapshot=old, line=2, rrn_hmac=application.applicant.rrn_hmac, year=scholarship_round.year
    )

    run = application_screen(application_id=application.pk, trigger_key="submit:1")

    assert run.duplicates == []
    assert run.snapshot_ids[RegistryKind.NATIONAL_VOUCHER] == registries["national_voucher"].pk


def test_a_national_voucher_in_the_same_year_blocks_by_default(registries, scholarship_round):
    application = submitted(scholarship_round)
    in_force(registries, application.applicant)
    NationalVoucherRecord.objects.create(
        snapshot=registries[RegistryKind.NATIONAL_VOUCHER],
        line=2,
        rrn_hmac=application.applicant.rrn_hmac,
        year=scholarship_round.year,
    )

    run = application_screen(application_id=application.pk, trigger_key="submit:1")

    assert run.outcome == "ineligible"
    assert run.duplicate_found
    assert screening_summary(run)["duplicates"] == [
        {
            "registry": "national_voucher",
            "action": "block",
            "detail": rules.MESSAGES["duplicate_national_voucher"][0],
        }
    ]


def test_same_person_in_another_round_of_the_year_and_a_shared_account_go_to_review(
    registries, scholarship_round
):
    application = submitted(scholarship_round)
    in_force(registries, application.applicant)
    other_round = RoundFactory(program=scholarship_round.program, year=scholarship_round.year)
    other = ApplicationFactory(
        applicant=application.applicant, round=other_round, status=Application.Status.UNDER_REVIEW
    )
    sharer = ApplicantFactory(account_fingerprint=application.applicant.account_fingerprint)

    run = application_screen(application_id=application.pk, trigger_key="submit:1")

    assert run.outcome == "needs_review"
    by_registry = {d["registry"]: d for d in run.duplicate_matches()}
    assert by_registry["internal_application"]["evidence"] == {"applications": [other.pk]}
    assert by_registry["shared_account"]["evidence"] == {"applicants": [sharer.pk]}


def test_screening_summary_has_the_payload_shape(registries, scholarship_round):
    application = submitted(scholarship_round)
    in_force(registries, application.applicant)
    run = application_screen(application_id=application.pk, trigger_key="submit:1")

    summary = screening_summary(run)

    assert set(summary) == {"outcome", "rules", "duplicates"}
    assert set(summary["rules"][0]) == {"rule", "outcome", "code", "message"}
    assert screening_summary(None) is None


# Re-screening a round.

ROUND_SIZE = 300


@pytest.fixture
def big_round(registries, scholarship_round):
    """A round of 300 applications under review, built in bulk."""
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"bulk{i}") for i in range(ROUND_SIZE)]
    )
    applicants = Applicant.objects.bulk_create(
        [
            Applicant(
                user=u,
                rrn_hmac=f"{i:064x}",
                birth_date=date(1990, 1, 1),
                district="11440",
                account_fingerprint=f"fp{i}",
            )
            for i, u in enumerate(users)
        ]
    )
    today = timezone.localdate()
    Application.objects.bulk_create(
        [
            Application(
                applicant=a,
                round=scholarship_round,
                status=Application.Status.UNDER_REVIEW,
                income_category="basic_livelihood",
                course_id=COURSE_ID,
                course_name="빅데이터 분석 실무",
                institution="서울직업전문학교",
                training_starts_on=today,
                training_ends_on=today + timedelta(days=90),
                submitted_at=timezone.now(),
            )
            for a in applicants
        ]
    )
    SocialSecurityRecord.objects.bulk_create(
        [
            SocialSecurityRecord(
                snapshot=registries[RegistryKind.SOCIAL_SECURITY],
                line=i + 2,
                rrn_hmac=a.rrn_hmac,
                status="basic_livelihood",
                district="11440",
                valid_from=date(2020, 1, 1),
            )
            for i, a in enumerate(applicants)
        ]
    )
    NationalVoucherRecord.objects.bulk_create(
        [
            NationalVoucherRecord(
                snapshot=registries[RegistryKind.NATIONAL_VOUCHER],
                line=i + 2,
                rrn_hmac=a.rrn_hmac,
                year=scholarship_round.year,
            )
            for i, a in enumerate(applicants[:50])
        ]
    )
    return scholarship_round


def test_rescreen_does_a_bounded_number_of_queries_per_chunk(
    big_round, django_assert_max_num_queries
):
    round_ = big_round

    # Three chunks of 100: a handful of queries each, not one per application.
    with django_assert_max_num_queries(3 + 3 * 20):
        counts = round_rescreen(round_id=round_.pk, job_key="job1", chunk_size=100)

    assert counts["screened"] == ROUND_SIZE
    assert counts["chunks"] == 3
    # No certificate uploaded: every one needs review, and the 50 voucher holders are blocked.
    assert counts["outcomes"] == {"ineligible": 50, "needs_review": 250}
    assert ScreeningRun.objects.filter(trigger_key="rescreen:job1", is_current=True).count() == (
        ROUND_SIZE
    )
    assert set(Application.objects.values_list("status", flat=True)) == {"under_review"}


def test_applications_coming_under_review_inside_a_chunk_being_cut_are_not_skipped(
    registries, scholarship_round
):
    from django.db import connection

    first, waiting, last = (submitted(scholarship_round) for _ in range(3))
    for application in (first, waiting, last):
        application_screen(application_id=application.pk, trigger_key="submit:1")
    Application.objects.filter(pk=waiting.pk).update(status=Application.Status.NEEDS_DOCUMENTS)

    def resubmitted_once_the_chunk_is_cut(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if "OFFSET" in sql:  # the query finding where the chunk of two ends: at `last`
            Application.objects.filter(pk=waiting.pk).update(status=Application.Status.UNDER_REVIEW)
        return result

    with connection.execute_wrapper(resubmitted_once_the_chunk_is_cut):
        counts = round_rescreen(round_id=scholarship_round.pk, job_key="cut", chunk_size=2)

    assert counts["screened"] == 3
    assert ScreeningRun.objects.filter(trigger_key="rescreen:cut").count() == 3


def test_rescreen_is_resumable_after_a_failed_chunk(big_round, monkeypatch):
    round_ = big_round
    calls = {"n": 0}
    real = rules.evaluate

    def failing_after_first_chunk(inp, **kw):
        calls["n"] += 1
        if calls["n"] > 100:
            raise RuntimeError("worker lost")
        return real(inp, **kw)

    monkeypatch.setattr(rules, "evaluate", failing_after_first_chunk)
    with pytest.raises(RuntimeError):
        round_rescreen(round_id=round_.pk, job_key="job1", chunk_size=100)
    assert ScreeningRun.objects.filter(trigger_key="rescreen:job1").count() == 100

    monkeypatch.setattr(rules, "evaluate", real)
    counts = round_rescreen(round_id=round_.pk, job_key="job1", chunk_size=100)

    assert counts["already_done"] == 100
    assert counts["screened"] == ROUND_SIZE - 100
    assert ScreeningRun.objects.filter(trigger_key="rescreen:job1").count() == ROUND_SIZE


def test_rescreen_replaces_the_current_run_and_keeps_the_old_one(registries, scholarship_round):
    application = submitted(scholarship_round)
    in_force(registries, application.applicant)
    first = application_screen(application_id=application.pk, trigger_key="submit:1")
    # The registry changes: a new social-security snapshot without this person.
    registries[RegistryKind.SOCIAL_SECURITY].status = RegistrySnapshot.Status.SUPERSEDED
    registries[RegistryKind.SOCIAL_SECURITY].save()
    new = snapshot(RegistryKind.SOCIAL_SECURITY)

    counts = round_rescreen(round_id=scholarship_round.pk, job_key="ss-2")

    assert counts["screened"] == 1
    first.refresh_from_db()
    assert not first.is_current
    current = ScreeningRun.objects.get(application=application, is_current=True)
    assert current.trigger_key == "rescreen:ss-2"
    assert current.outcome == "ineligible"
    assert current.snapshot_ids[RegistryKind.SOCIAL_SECURITY] == new.pk


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_screening_the_same_trigger_store_one_run(on_postgres, registries):
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    round_ = RoundFactory(
        program=ProgramFactory(code=Program.Code.SCHOLARSHIP), ruleset_version="scholarship-2026.1"
    )
    application = submitted(round_)

    def screen(_):
        try:
            run = application_screen(application_id=application.pk, trigger_key="submit:1")
            return run.pk if run else None
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(screen, range(2)))

    assert ScreeningRun.objects.filter(application=application).count() == 1
    assert len(set(results)) == 1
    application.refresh_from_db()
    assert application.status == Application.Status.UNDER_REVIEW


# The round's facts come from one set-based query into a temporary table and its runs are
# streamed into a COPY on PostgreSQL: they must say exactly what screening one does.


def _varied_applications(registries, round_):
    """Applications with each kind of fact: several records, catalogue entries with
    characters COPY must escape, internal duplicates, a shared account, no records."""
    from eligibility.models import NaeilbaeumRecord, YouthAllowanceRecord

    today = timezone.localdate()
    odd_course = "AIG-ODD-001"
    TrainingCourse.objects.create(
        snapshot=registries[RegistryKind.TRAINING_COURSES],
        line=3,
        course_id=odd_course,
        name='Back\\slash\ttab\nnew "line" 과정 \\N',
        institution="C:\\훈련\\기관\r",
        starts_on=today,
        ends_on=today + timedelta(days=30),
        vocational=False,
    )
    applications = []
    for i in range(6):
        course = odd_course if i % 2 else COURSE_ID
        application = submitted(round_, course_id=course)
        applications.append(application)
        person = application.applicant
        if i != 5:  # the last one is in no registry at all
            in_force(registries, person, status="near_poor" if i % 3 else "basic_livelihood")
        if i in (1, 2):
            NaeilbaeumRecord.objects.create(
                snapshot=registries[RegistryKind.NAEILBAEUM],
                line=i + 2,
                rrn_hmac=person.rrn_hmac,
                card_valid_from=date(2020, 1, 1),
                card_valid_to=date(2030, 1, 1),
                course_id=course,
                training_from=today - timedelta(days=400),
                training_to=today - timedelta(days=300),
            )
        if i in (2, 3):
            YouthAllowanceRecord.objects.bulk_create(
                [
                    YouthAllowanceRecord(
                        snapshot=registries[RegistryKind.YOUTH_ALLOWANCE],
                        line=10 + i * 2 + k,
                        rrn_hmac=person.rrn_hmac,
                        paid_from=today.replace(day=1) - timedelta(days=31 * k),
                        paid_to=today + timedelta(days=31),
                    )
                    for k in range(2)
                ]
            )
        if i == 4:
            other_round = RoundFactory(program=round_.program, year=round_.year)
            ApplicationFactory(
                applicant=person, round=other_round, status=Application.Status.SUBMITTED
            )
            ApplicantFactory(account_fingerprint=person.account_fingerprint)
    return applications


def _result_of(run):
    return (run.outcome, run.rules, run.duplicates, run.duplicate_found, run.ruleset_version)


# On PostgreSQL the runs go out in COPY blocks of about 128 KB: a block of one run, and of
# two, send some of a chunk's runs before it ends and the rest when it does.
@pytest.mark.parametrize("copy_block", [None, 1, 2500])
def test_a_round_rescreen_stores_what_screening_each_application_stored(
    registries, scholarship_round, copy_block, monkeypatch
):
    from benefits import screening_record

    if copy_block:
        monkeypatch.setattr(screening_record, "_COPY_BLOCK", copy_block)
    applications = _varied_applications(registries, scholarship_round)
    single = {
        a.pk: application_screen(application_id=a.pk, trigger_key="submit:1") for a in applications
    }

    counts = round_rescreen(round_id=scholarship_round.pk, job_key="same", chunk_size=4)

    assert counts["screened"] == len(applications)
    for application in applications:
        rescreened = ScreeningRun.objects.get(application=application, trigger_key="rescreen:same")
        assert rescreened.is_current
        assert _result_of(rescreened) == _result_of(single[application.pk])
    outcomes = {run.outcome for run in single.values()}
    assert len(outcomes) > 1, outcomes  # the fixture is not one case six times
    odd = next(r for r in single[applications[1].pk].rules if r["rule"] == "approved_course")
    assert odd["evidence"]["name"] == 'Back\\slash\ttab\nnew "line" 과정 \\N'
    assert odd["evidence"]["institution"] == "C:\\훈련\\기관\r"


def test_a_voucher_round_rescreen_judges_age_and_district_as_screening_one_does(registries):
    round_ = RoundFactory(
        program=ProgramFactory(code=Program.Code.VOUCHER), ruleset_version="voucher-2026.1"
    )
    today = timezone.localdate()
    people = [
        ApplicantFactory(),  # an adult in Mapo-gu, in no registry: the profile says Seoul
        ApplicantFactory(birth_date=today.replace(year=today.year - 17)),  # a minor
        ApplicantFactory(district="41110"),  # Suwon: not Seoul
        ApplicantFactory(birth_date=None),
    ]
    in_force(registries, people[0], district="11440")
    applications = [submitted(round_, applicant=person) for person in people]
    single = {
        a.pk: application_screen(application_id=a.pk, trigger_key="submit:1") for a in applications
    }

    counts = round_rescreen(round_id=round_.pk, job_key="voucher", chunk_size=3)

    assert counts["screened"] == len(applications)
    codes = []
    for application in applications:
        rescreened = ScreeningRun.objects.get(
            application=application, trigger_key="rescreen:voucher"
        )
        assert _result_of(rescreened) == _result_of(single[application.pk])
        codes.append({r["rule"]: r["code"] for r in rescreened.rules})
    assert [c["adult"] for c in codes] == ["adult", "under_19", "adult", "birth_date_unknown"]
    assert [c["seoul_resident"] for c in codes] == [
        "seoul_resident",
        "seoul_resident",
        "not_seoul_resident",
        "seoul_resident",
    ]


def test_an_application_under_review_after_the_facts_were_gathered_is_screened_too(
    registries, scholarship_round, monkeypatch
):
    from contextlib import contextmanager

    from eligibility import screening

    first = submitted(scholarship_round)
    in_force(registries, first.applicant)
    application_screen(application_id=first.pk, trigger_key="submit:1")
    late = submitted(scholarship_round)
    in_force(registries, late.applicant)
    real_round_facts = screening.round_facts

    @contextmanager
    def gathered_before_the_late_one(round_, trigger_key, snapshot_ids):
        Application.objects.filter(pk=late.pk).update(status=Application.Status.SUBMITTED)
        with real_round_facts(round_, trigger_key, snapshot_ids):
            # Screened, so under review, only once the round's facts are gathered.
            application_screen(application_id=late.pk, trigger_key="submit:1")
            yield

    monkeypatch.setattr(screening, "round_facts", gathered_before_the_late_one)
    counts = round_rescreen(round_id=scholarship_round.pk, job_key="late")

    assert counts["screened"] == 2
    late_runs = {r.trigger_key: r for r in ScreeningRun.objects.filter(application=late)}
    assert _result_of(late_runs["rescreen:late"]) == _result_of(late_runs["submit:1"])
    assert late_runs["rescreen:late"].is_current


def test_an_application_resubmitted_after_the_facts_were_gathered_is_judged_on_its_new_course(
    registries, scholarship_round, monkeypatch
):
    from contextlib import contextmanager

    from eligibility import screening

    application = submitted(scholarship_round, course_id="AIG-NOT-LISTED")
    in_force(registries, application.applicant)
    application_screen(application_id=application.pk, trigger_key="submit:1")
    real_round_facts = screening.round_facts

    @contextmanager
    def resubmitted_meanwhile(round_, trigger_key, snapshot_ids):
        with real_round_facts(round_, trigger_key, snapshot_ids):
            # Sent back for documents, moved to the catalogue's course and resubmitted while
            # the job ran: the facts gathered for the old course no longer hold.
            Application.objects.filter(pk=application.pk).update(
                course_id=COURSE_ID, submitted_at=timezone.now() + timedelta(seconds=1)
            )
            yield

    monkeypatch.setattr(screening, "round_facts", resubmitted_meanwhile)
    round_rescreen(round_id=scholarship_round.pk, job_key="moved")

    run = ScreeningRun.objects.get(application=application, trigger_key="rescreen:moved")
    course = next(r for r in run.rules if r["rule"] == "approved_course")
    assert (course["code"], course["evidence"]["course_id"]) == ("course_approved", COURSE_ID)

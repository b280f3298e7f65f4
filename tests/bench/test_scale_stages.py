"""The scale bench's bulk intake and review write the rows the services would write."""

from dataclasses import replace
from datetime import date, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from bench import scale_stages
from benefits import services
from benefits.models import Application, Document, Notification, Program, Round
from benefits.simulation import Simulation, intake, population
from core.models import AuditEvent

pytestmark = pytest.mark.django_db
Status = Application.Status


@pytest.fixture
def sim(settings, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("the scale bench runs on PostgreSQL")
    settings.MEDIA_ROOT = tmp_path
    sim = Simulation(program=Program.Code.SCHOLARSHIP, applicants=4)
    intake.setup(sim)
    yield sim
    sim.close()


def people(sim, count: int, **changes) -> list:
    drawn = population.people(
        program=sim.program, count=count, seed=1, salt=sim.salt, today=date.today()
    )
    drawn = [replace(person, **changes) for person in drawn]
    for person, applicant in zip(drawn, intake.register_in_bulk(sim, drawn), strict=True):
        person.applicant_id = applicant.pk
    return drawn


def events(application: Application) -> list[tuple]:
    return list(
        AuditEvent.objects.filter(object_type="benefits.application", object_id=str(application.pk))
        .order_by("pk")
        .values_list("actor_id", "action", "from_state", "to_state", "reason", "data")
    )


def test_a_bulk_intake_chunk_writes_submitted_screened_applications(sim):
    round_ = Round.objects.select_related("program").get(pk=sim.round_.pk)
    sample, *bulk = people(sim, 3, certificate=True)
    stored = scale_stages._through_services(sim, round_, [sample])
    bulk[1].certificate = False
    assert scale_stages._in_bulk(round_, bulk, stored) == 2
    period = (round_.period_starts_on, round_.period_ends_on)
    for person in bulk:
        application = Application.objects.select_related("applicant").get(
            applicant_id=person.applicant_id, round=round_
        )
        user = application.applicant.user_id
        training = population.training(person, period) or {}
        assert application.status == Status.UNDER_REVIEW
        assert application.submitted_at is not None
        assert application.course_name == training.get("course_name", "")
        assert events(application) == [
            (user, "application.created", "", Status.DRAFT, "", {}),
            (user, "application.submitted", Status.DRAFT, Status.SUBMITTED, "", {}),
            (None, "application.screened", Status.SCREENING, Status.UNDER_REVIEW, "", {}),
        ]
        documents = Document.objects.filter(application=application)
        if person.certificate:
            (document,) = documents
            assert (document.file.name, document.sha256) == (stored.file.name, stored.sha256)
            assert document.uploaded_by_id == user
            assert document.kind == Document.Kind.ENROLLMENT_CERTIFICATE
        else:
            assert not documents.exists()
        (message,) = Notification.objects.filter(application=application)
        assert (message.kind, message.user_id) == (Notification.Kind.SUBMITTED, user)
        assert f"#{application.pk}" in message.body


def test_a_review_chunk_decides_audits_and_tells_each_citizen_once(sim):
    round_ = Round.objects.select_related("program").get(pk=sim.round_.pk)
    chunk = people(sim, 3, certificate=False)
    scale_stages._in_bulk(round_, chunk, None)
    rejected, approved, withdrawn = (
        Application.objects.get(applicant_id=p.applicant_id, round=round_) for p in chunk
    )
    # One that left review since the chunk was read is left alone: no event, no message.
    services.application_withdraw(application=withdrawn, actor=withdrawn.applicant.user)
    counts = {"reject": 0, "approve": 0}
    decisions = {
        (services.application_reject, "서류 불충분 / Not enough"): [rejected.pk, withdrawn.pk],
        (services.application_approve, ""): [approved.pk],
    }
    scale_stages._decide_chunk(sim, round_, decisions, counts)
    assert counts == {"reject": 1, "approve": 1}
    caseworker = sim.staff["caseworker"].pk
    appeal_until = timezone.localdate() + timedelta(days=round_.appeal_days)
    for application, status, reason in (
        (rejected, Status.REJECTED, "서류 불충분 / Not enough"),
        (approved, Status.APPROVED, ""),
    ):
        application.refresh_from_db()
        assert (application.status, application.decision_reason) == (status, reason)
        assert application.decided_by_id == caseworker
        assert events(application)[-1] == (
            caseworker,
            f"application.{status}",
            Status.UNDER_REVIEW,
            status,
            reason,
            {},
        )
        (message,) = Notification.objects.filter(application=application, kind=status)
        assert message.user_id == application.applicant.user_id
    rejection = Notification.objects.get(application=rejected, kind=Notification.Kind.REJECTED)
    assert "서류 불충분 / Not enough" in rejection.body
    assert appeal_until.isoformat() in rejection.body
    withdrawn.refresh_from_db()
    assert withdrawn.status == Status.WITHDRAWN
    assert events(withdrawn)[-1][1] == "application.withdrawn"
    assert not Notification.objects.filter(
        application=withdrawn, kind=Notification.Kind.REJECTED
    ).exists()

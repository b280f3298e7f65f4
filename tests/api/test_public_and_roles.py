"""Programs and rounds for anyone; round transitions for program managers only."""

import pytest

from benefits.models import Program, Round
from core.models import AuditEvent
from tests.factories import ProgramFactory, RoundFactory

pytestmark = pytest.mark.django_db


def test_programs_list_their_open_rounds(anon):
    open_round = RoundFactory()
    RoundFactory(program=open_round.program, status=Round.Status.CLOSED)
    ProgramFactory(code=Program.Code.VOUCHER)
    response = anon.get("/api/v1/programs/")
    assert response.status_code == 200
    programs = {p["code"]: p for p in response.json()["results"]}
    assert [r["id"] for r in programs["SCHOLARSHIP"]["open_rounds"]] == [open_round.pk]
    assert programs["VOUCHER"]["open_rounds"] == []
    assert programs["SCHOLARSHIP"]["open_rounds"][0]["accepting_applications"] is True


def test_rounds_filter_by_status_and_program(anon):
    scholarship = RoundFactory()
    closed = RoundFactory(status=Round.Status.CLOSED)
    voucher = RoundFactory(program=ProgramFactory(code=Program.Code.VOUCHER))
    RoundFactory(status=Round.Status.DRAFT)

    def ids(query):
        return sorted(r["id"] for r in anon.get(f"/api/v1/rounds/{query}").json()["results"])

    assert ids("") == sorted([scholarship.pk, closed.pk, voucher.pk])
    assert ids("?status=closed") == [closed.pk]
    assert ids("?program=VOUCHER") == [voucher.pk]
    assert ids(f"?program={voucher.program_id}") == [voucher.pk]
    bad = anon.get("/api/v1/rounds/?status=bogus")
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["attr"] == "status"


def test_draft_round_is_hidden_from_the_public(anon, manager):
    draft = RoundFactory(status=Round.Status.DRAFT)
    assert anon.get(f"/api/v1/rounds/{draft.pk}/").status_code == 404
    assert manager.get(f"/api/v1/rounds/{draft.pk}/").status_code == 200


def test_manager_opens_and_closes_a_round(manager):
    draft = RoundFactory(status=Round.Status.DRAFT)
    opened = manager.post(f"/api/v1/rounds/{draft.pk}/open/")
    assert opened.status_code == 200 and opened.json()["status"] == "open"
    again = manager.post(f"/api/v1/rounds/{draft.pk}/open/")
    assert again.status_code == 409
    assert again.json()["errors"][0]["code"] == "invalid_transition"
    closed = manager.post(f"/api/v1/rounds/{draft.pk}/close/")
    assert closed.json()["status"] == "closed"
    events = AuditEvent.objects.filter(object_type="benefits.round").order_by("id")
    assert [(e.from_state, e.to_state, e.actor_id) for e in events] == [
        ("draft", "open", manager.user.pk),
        ("open", "closed", manager.user.pk),
    ]


@pytest.mark.parametrize("role", ["citizen", "caseworker", "finance", "auditor"])
def test_other_roles_cannot_open_a_round(staff, citizen, role):
    draft = RoundFactory(status=Round.Status.DRAFT)
    client = citizen if role == "citizen" else staff(role)
    response = client.post(f"/api/v1/rounds/{draft.pk}/open/")
    assert response.status_code == 403
    draft.refresh_from_db()
    assert draft.status == Round.Status.DRAFT


def test_anonymous_cannot_open_a_round(anon):
    draft = RoundFactory(status=Round.Status.DRAFT)
    assert anon.post(f"/api/v1/rounds/{draft.pk}/open/").status_code == 401


def test_round_budget_must_cover_capacity_times_amount():
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        RoundFactory(capacity=10, amount=1_000_000, budget=9_999_999)

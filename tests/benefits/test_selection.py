"""Selection: priority tiers, a lottery anyone can recompute, the waitlist and promotion."""

import hashlib
from collections import Counter

import pytest

from benefits.models import Application, Notification, Round
from benefits.services import application_withdraw
from core.models import AuditEvent
from payments.models import DisbursementBatch, Payment
from tests.conftest import client_for
from tests.factories import RoundFactory, UserFactory, approved_applications

BASIC = Application.IncomeCategory.BASIC_LIVELIHOOD
NEAR = Application.IncomeCategory.NEAR_POOR
NONE = Application.IncomeCategory.NONE


@pytest.fixture
def round_(db):
    return RoundFactory(status=Round.Status.CLOSED, capacity=3)


def select(manager, round_):
    response = manager.post(f"/api/v1/rounds/{round_.pk}/select/")
    assert response.status_code == 200, response.json()
    return response.json()


def statuses(round_):
    return dict(Application.objects.filter(round=round_).values_list("id", "status"))


def test_priority_tiers_fill_capacity_first_and_the_rest_wait(manager, round_):
    nones = approved_applications(round_, 2, income_category=NONE)
    nears = approved_applications(round_, 2, income_category=NEAR)
    basics = approved_applications(round_, 2, income_category=BASIC)
    body = select(manager, round_)
    assert body["status"] == "selected"
    assert body["selection"]["selected"] == 3
    assert body["selection"]["waitlisted"] == 3
    result = statuses(round_)
    assert all(result[a.pk] == "selected" for a in basics)
    assert sorted(result[a.pk] for a in nears) == ["selected", "waitlisted"]
    assert all(result[a.pk] == "waitlisted" for a in nones)
    assert Notification.objects.filter(kind="selected").count() == 3
    assert Notification.objects.filter(kind="waitlisted").count() == 3


def test_anyone_with_the_seed_and_the_list_can_recompute_the_order(manager, round_):
    apps = approved_applications(round_, 8, income_category=NONE)
    body = select(manager, round_)
    seed = body["selection_seed"]
    assert len(seed) == 32
    recomputed = sorted(
        (a.pk for a in apps), key=lambda pk: hashlib.sha256(f"{seed}:{pk}".encode()).hexdigest()
    )
    result = statuses(round_)
    assert [result[pk] for pk in recomputed] == ["selected"] * 3 + ["waitlisted"] * 5


def test_a_second_run_never_displaces_anyone_selected(manager, round_):
    first = approved_applications(round_, 2, income_category=NONE)
    select(manager, round_)
    late_basic = approved_applications(round_, 2, income_category=BASIC)
    body = select(manager, round_)
    assert (body["selection"]["selected"], body["selection"]["waitlisted"]) == (1, 1)
    result = statuses(round_)
    assert all(result[a.pk] == "selected" for a in first)
    assert sorted(result[a.pk] for a in late_basic) == ["selected", "waitlisted"]
    assert list(result.values()).count("selected") == round_.capacity


def test_withdrawing_a_selected_recipient_promotes_the_first_on_the_waitlist(manager, round_):
    approved_applications(round_, 3, income_category=BASIC)
    near = approved_applications(round_, 1, income_category=NEAR)[0]
    nones = approved_applications(round_, 2, income_category=NONE)
    select(manager, round_)
    leaving = Application.objects.filter(round=round_, status="selected").first()
    application_withdraw(application=leaving, actor=leaving.applicant.user)
    result = statuses(round_)
    # The near-poor applicant is first on the waitlist, whatever the lottery says of the others.
    assert result[near.pk] == "selected"
    assert all(result[a.pk] == "waitlisted" for a in nones)
    assert Notification.objects.filter(application=near, kind="selected").exists()


def test_a_selected_application_with_a_payment_on_its_way_cannot_be_withdrawn(manager, round_):
    apps = approved_applications(round_, 1, income_category=BASIC)
    select(manager, round_)
    application = Application.objects.get(pk=apps[0].pk)
    batch = DisbursementBatch.objects.create(round=round_, prepared_by=UserFactory())
    Payment.objects.create(batch=batch, round=round_, application=application, amount=1)
    citizen = client_for(application.applicant.user)
    response = citizen.post(f"/api/v1/applications/{application.pk}/withdraw/")
    assert response.status_code == 409
    assert response.json()["errors"][0]["attr"] == "status"
    application.refresh_from_db()
    assert application.status == "selected"


def test_selection_needs_a_closed_round_and_a_program_manager(manager, caseworker, db):
    open_round = RoundFactory()
    approved_applications(open_round, 1, income_category=NONE)
    response = manager.post(f"/api/v1/rounds/{open_round.pk}/select/")
    assert response.status_code == 409
    assert response.json()["errors"][0]["attr"] == "status"
    closed = RoundFactory(status=Round.Status.CLOSED)
    assert caseworker.post(f"/api/v1/rounds/{closed.pk}/select/").status_code == 403
    assert not Application.objects.filter(status="selected").exists()
    assert Round.objects.get(pk=closed.pk).selection_seed == ""


def test_a_round_already_paying_stays_paying_when_late_approvals_are_selected(manager, db):
    paying = RoundFactory(status=Round.Status.DISBURSING, capacity=2)
    approved_applications(paying, 1, income_category=NONE)
    body = select(manager, paying)
    assert body["status"] == "disbursing"
    assert body["selection"]["selected"] == 1


def test_a_second_run_never_fills_more_than_the_capacity_even_with_budget_to_spare(manager, db):
    round_ = RoundFactory(status=Round.Status.CLOSED, capacity=2, budget=10 * 1_000_000)
    approved_applications(round_, 2, income_category=BASIC)
    select(manager, round_)
    late = approved_applications(round_, 2, income_category=BASIC)
    body = select(manager, round_)
    assert (body["selection"]["selected"], body["selection"]["waitlisted"]) == (0, 2)
    assert all(statuses(round_)[a.pk] == "waitlisted" for a in late)


def test_the_published_seed_stays_the_same_across_runs(manager, round_):
    approved_applications(round_, 4, income_category=NONE)
    seed = select(manager, round_)["selection_seed"]
    approved_applications(round_, 1, income_category=NONE)
    assert select(manager, round_)["selection_seed"] == seed
    assert Round.objects.get(pk=round_.pk).selection_seed == seed


def test_a_withdrawal_promotes_nobody_while_the_round_is_still_full(manager, db):
    round_ = RoundFactory(status=Round.Status.CLOSED, capacity=2)
    approved_applications(round_, 2, income_category=BASIC)
    waiting = approved_applications(round_, 1, income_category=NONE)[0]
    select(manager, round_)
    # Capacity cut to one behind the services: one seat is freed, none is open.
    Round.objects.filter(pk=round_.pk).update(capacity=1, budget=1_000_000)
    leaving = Application.objects.filter(round=round_, status="selected").first()
    application_withdraw(application=leaving, actor=leaving.applicant.user)
    assert statuses(round_)[waiting.pk] == "waitlisted"


def test_a_completed_round_promotes_nobody(manager, round_):
    approved_applications(round_, 3, income_category=BASIC)
    waiting = approved_applications(round_, 1, income_category=NONE)[0]
    select(manager, round_)
    Round.objects.filter(pk=round_.pk).update(status=Round.Status.COMPLETED)
    leaving = Application.objects.filter(round=round_, status="selected").first()
    application_withdraw(application=leaving, actor=leaving.applicant.user)
    assert statuses(round_)[waiting.pk] == "waitlisted"


def test_a_selection_read_in_many_chunks_keeps_the_published_order(manager, db, monkeypatch):
    # Chunks of 4 over 21 candidates: the order, the positions and the messages are those
    # of one sorted list, whatever the chunk boundaries.
    from benefits import selection

    monkeypatch.setattr(selection, "CHUNK", 4)
    round_ = RoundFactory(status=Round.Status.CLOSED, capacity=9)
    apps = approved_applications(round_, 7, income_category=NONE)
    apps += approved_applications(round_, 7, income_category=NEAR)
    apps += approved_applications(round_, 7, income_category=BASIC)
    seed = select(manager, round_)["selection_seed"]
    tiers = {BASIC: 1, NEAR: 2, NONE: 3}
    recomputed = sorted(
        apps,
        key=lambda a: (
            tiers[a.income_category],
            hashlib.sha256(f"{seed}:{a.pk}".encode()).hexdigest(),
        ),
    )
    result = statuses(round_)
    assert [result[a.pk] for a in recomputed] == ["selected"] * 9 + ["waitlisted"] * 12
    positions = dict(
        AuditEvent.objects.filter(
            action__in=["application.selected", "application.waitlisted"]
        ).values_list("object_id", "data__position")
    )
    assert [positions[str(a.pk)] for a in recomputed] == list(range(1, 22))
    told = Notification.objects.filter(application__round=round_)
    assert sorted(told.values_list("application_id", flat=True)) == sorted(a.pk for a in apps)


def test_a_second_run_tells_only_the_ones_it_places(manager, round_):
    approved_applications(round_, 2, income_category=NONE)
    select(manager, round_)
    late = approved_applications(round_, 2, income_category=BASIC)
    select(manager, round_)
    # The first run's two were told once; the second run told its two, under its own key.
    per_application = Counter(
        Notification.objects.filter(application__round=round_).values_list(
            "application_id", flat=True
        )
    )
    assert set(per_application.values()) == {1}
    assert {a.pk for a in late} <= set(per_application)


def test_each_placed_candidate_is_audited_with_its_move_tier_and_position(db):
    from benefits.selection import round_select
    from core.roles import Role

    pm = UserFactory(role=Role.PROGRAM_MANAGER)
    round_ = RoundFactory(status=Round.Status.CLOSED, capacity=2, budget=3 * 1_000_000)
    basics = approved_applications(round_, 2, income_category=BASIC)
    none = approved_applications(round_, 1, income_category=NONE)[0]
    round_select(round_=round_, actor=pm)
    # A seat added later: the second run promotes the waitlisted one.
    Round.objects.filter(pk=round_.pk).update(capacity=3)
    round_select(round_=Round.objects.get(pk=round_.pk), actor=pm)

    def events(application):
        return list(
            AuditEvent.objects.filter(
                object_type="benefits.application", object_id=str(application.pk)
            )
            .order_by("pk")
            .values_list("actor_id", "action", "from_state", "to_state", "reason", "data")
        )

    first = sorted(basics, key=lambda a: Application.objects.get(pk=a.pk).lottery_key)
    for position, application in enumerate(first, start=1):
        assert events(application) == [
            (
                pm.pk,
                "application.selected",
                "approved",
                "selected",
                "",
                {"priority_tier": 1, "position": position},
            )
        ]
    assert events(none) == [
        (
            pm.pk,
            "application.waitlisted",
            "approved",
            "waitlisted",
            "",
            {"priority_tier": 3, "position": 3},
        ),
        (
            pm.pk,
            "application.selected",
            "waitlisted",
            "selected",
            "",
            {"priority_tier": 3, "position": 1},
        ),
    ]

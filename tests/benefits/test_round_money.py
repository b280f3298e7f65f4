"""A round's money settings: fixed once it opens, its budget never below what is committed."""

import pytest
from django.utils import timezone

from benefits.models import Application, Round
from core.models import AuditEvent
from tests.factories import ApplicationFactory, RoundFactory, UserFactory

pytestmark = pytest.mark.django_db


def change(client, round_, **body):
    return client.post(f"/api/v1/rounds/{round_.pk}/money/", body, format="json")


def error(response) -> tuple[str | None, str]:
    first = response.json()["errors"][0]
    return first["attr"], first["code"]


def test_a_budget_raise_is_saved_and_audited_with_its_reason(manager):
    round_ = RoundFactory(capacity=10, amount=1_000_000)
    response = change(manager, round_, budget=12_000_000, reason="추경 반영")
    assert response.status_code == 200, response.json()
    assert response.json()["budget"] == 12_000_000
    event = AuditEvent.objects.get(action="round.money_changed", object_id=str(round_.pk))
    assert event.actor == manager.user
    assert event.reason == "추경 반영"
    assert event.data == {"budget": [10_000_000, 12_000_000]}


def test_the_budget_cannot_go_below_what_is_committed(manager):
    round_ = RoundFactory(status=Round.Status.SELECTED, capacity=2, amount=1_000_000)
    Round.objects.filter(pk=round_.pk).update(budget=5_000_000)
    for _ in range(3):
        ApplicationFactory(round=round_, status=Application.Status.SELECTED)
    # Three selected recipients hold 3,000,000 KRW (one more than the capacity, as data).
    response = change(manager, round_, budget=2_500_000, reason="감액")
    assert response.status_code == 409
    assert error(response) == ("budget", "budget_below_committed")
    assert Round.objects.get(pk=round_.pk).budget == 5_000_000
    assert change(manager, round_, budget=3_000_000, reason="감액").status_code == 200
    assert not AuditEvent.objects.filter(
        action="round.money_changed", data__budget=[5_000_000, 2_500_000]
    ).exists()


@pytest.mark.parametrize("field", ["amount", "capacity"])
@pytest.mark.parametrize("state", [Round.Status.OPEN, Round.Status.SELECTED])
def test_amount_and_capacity_are_fixed_once_the_round_opens(manager, field, state):
    round_ = RoundFactory(status=state, capacity=10, amount=1_000_000, budget=20_000_000)
    response = change(manager, round_, **{field: 2, "reason": "변경"})
    assert response.status_code == 400
    assert error(response) == (field, "fixed_after_open")
    fresh = Round.objects.get(pk=round_.pk)
    assert (fresh.amount, fresh.capacity) == (1_000_000, 10)
    assert not AuditEvent.objects.filter(action="round.money_changed").exists()


def test_a_draft_round_takes_a_new_amount_and_capacity(manager):
    round_ = RoundFactory(status=Round.Status.DRAFT, capacity=10, amount=1_000_000)
    response = change(manager, round_, capacity=20, budget=20_000_000, reason="계획 확정")
    assert response.status_code == 200, response.json()
    fresh = Round.objects.get(pk=round_.pk)
    assert (fresh.capacity, fresh.budget) == (20, 20_000_000)


def test_the_budget_must_hold_capacity_times_amount(manager):
    round_ = RoundFactory(capacity=10, amount=1_000_000)
    response = change(manager, round_, budget=9_999_999, reason="감액")
    assert response.status_code == 400
    assert error(response) == ("budget", "budget_below_capacity")


def test_top_up_settings_change_with_a_reason(manager):
    round_ = RoundFactory(status=Round.Status.DISBURSING, capacity=10, budget=11_000_000)
    response = change(manager, round_, top_up_amount=100_000, top_up_share=10, reason="우수 이용자")
    assert response.status_code == 200, response.json()
    assert (response.json()["top_up_amount"], response.json()["top_up_share"]) == (100_000, 10)


@pytest.mark.parametrize(
    ("body", "attr", "code"),
    [
        ({"budget": 20_000_000}, "reason", "required"),
        ({"budget": 20_000_000, "reason": " "}, "reason", "blank"),
        ({"budget": 0, "reason": "x"}, "budget", "min_value"),
        ({"budget": "lots", "reason": "x"}, "budget", "invalid"),
        ({"top_up_share": 101, "reason": "x"}, "top_up_share", "max_value"),
        ({"status": "open", "reason": "x"}, "status", "unknown_field"),
    ],
)
def test_bad_money_changes_are_field_errors(manager, body, attr, code):
    round_ = RoundFactory(capacity=10, amount=1_000_000)
    response = change(manager, round_, **body)
    assert response.status_code == 400
    assert error(response) == (attr, code)
    assert Round.objects.get(pk=round_.pk).budget == 10_000_000


def test_a_finished_round_keeps_its_money(manager):
    round_ = RoundFactory(status=Round.Status.COMPLETED)
    response = change(manager, round_, budget=round_.budget * 2, reason="x")
    assert response.status_code == 409


@pytest.mark.parametrize("role", ["caseworker", "finance", "auditor"])
def test_only_program_managers_change_money(staff, role):
    round_ = RoundFactory()
    assert change(staff(role), round_, budget=round_.budget * 2, reason="x").status_code == 403
    assert Round.objects.get(pk=round_.pk).budget == round_.budget


def test_the_admin_cannot_edit_the_money_of_an_open_round(client):
    admin_user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    round_ = RoundFactory(status=Round.Status.OPEN, capacity=10, amount=1_000_000)
    url = f"/admin/benefits/round/{round_.pk}/change/"
    form = client.get(url).context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if hasattr(field, "fields"):  # split date and time
            local = timezone.localtime(value)
            data[f"{name}_0"], data[f"{name}_1"] = local.date(), local.time()
        elif isinstance(value, dict):
            data[name] = "{}"
        elif value is not None:
            data[name] = value
    assert not {"amount", "capacity", "budget", "top_up_amount"} & set(form.fields)
    data.update(name="새 이름", amount=5, capacity=1, budget=5)
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    fresh = Round.objects.get(pk=round_.pk)
    assert fresh.name == "새 이름"
    assert (fresh.amount, fresh.capacity, fresh.budget) == (1_000_000, 10, 10_000_000)

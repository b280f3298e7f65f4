import pytest

from benefits.models import Application, Round
from core.roles import Role
from tests.factories import ApplicationFactory, RoundFactory


@pytest.fixture
def finance1(staff):
    return staff(Role.FINANCE)


@pytest.fixture
def finance2(staff):
    return staff(Role.FINANCE)


@pytest.fixture
def closed_round(db):
    return RoundFactory(status=Round.Status.CLOSED, capacity=5)


def approved(round_, n: int, **kwargs) -> list[Application]:
    return [
        ApplicationFactory(round=round_, status=Application.Status.APPROVED, **kwargs)
        for _ in range(n)
    ]


@pytest.fixture
def selected_round(closed_round, manager):
    """A closed round of capacity 5 with 5 approved applications, selected."""
    approved(closed_round, 5)
    response = manager.post(f"/api/v1/rounds/{closed_round.pk}/select/")
    assert response.status_code == 200, response.json()
    closed_round.refresh_from_db()
    return closed_round

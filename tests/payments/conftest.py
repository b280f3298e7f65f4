import pytest

from benefits.models import Round
from core.roles import Role
from tests.factories import RoundFactory, approved_applications


@pytest.fixture
def finance1(staff):
    return staff(Role.FINANCE)


@pytest.fixture
def finance2(staff):
    return staff(Role.FINANCE)


@pytest.fixture
def closed_round(db):
    return RoundFactory(status=Round.Status.CLOSED, capacity=5)


@pytest.fixture
def selected_round(closed_round, manager):
    """A closed round of capacity 5 with 5 approved applications, selected."""
    approved_applications(closed_round, 5)
    response = manager.post(f"/api/v1/rounds/{closed_round.pk}/select/")
    assert response.status_code == 200, response.json()
    closed_round.refresh_from_db()
    return closed_round

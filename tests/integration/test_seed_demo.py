import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from benefits.models import Application, Round
from eligibility.models import RegistryKind, RegistrySnapshot

pytestmark = pytest.mark.django_db


def test_seed_demo_is_idempotent_and_covers_every_state(capsys):
    call_command("seed_demo", "--applicants", "30")
    counts = (get_user_model().objects.count(), Application.objects.count(), Round.objects.count())
    call_command("seed_demo", "--applicants", "30")
    assert (
        get_user_model().objects.count(),
        Application.objects.count(),
        Round.objects.count(),
    ) == counts
    assert counts[1] == 30
    assert set(Application.objects.values_list("status", flat=True)) == set(
        Application.Status.values
    )
    assert set(Round.objects.values_list("status", flat=True)) == {"open"}
    districts = set(Application.objects.values_list("applicant__district", flat=True))
    assert len(districts) == 25
    assert set(RegistrySnapshot.objects.filter(status="active").values_list("kind", flat=True)) == {
        k.value for k in RegistryKind
    }
    screened = Application.objects.exclude(
        status__in=["draft", "submitted", "screening", "withdrawn"]
    )
    assert screened.exists()
    assert not screened.exclude(screening_runs__is_current=True).exists()
    out = capsys.readouterr().out
    assert "caseworker" in out and "finance2" in out


def test_demo_logins_work(client):
    call_command("seed_demo", "--applicants", "2")
    from rest_framework.test import APIClient

    api = APIClient()
    for username in [
        "caseworker",
        "manager",
        "finance1",
        "finance2",
        "provider",
        "auditor",
        "admin",
        "citizen001",
    ]:
        response = api.post(
            "/api/v1/auth/token/", {"username": username, "password": "baeum-demo"}, format="json"
        )
        assert response.status_code == 200, username

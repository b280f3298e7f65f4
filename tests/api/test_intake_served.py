"""The intake as a server runs it: no test transaction around the request, so the API's
own transactions commit (and on PostgreSQL the key claim takes its own statement)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from api.models import IdempotencyKey
from benefits.models import Application, Notification
from tests.api.test_applications import TRAINING
from tests.conftest import client_for
from tests.factories import ApplicantFactory, RoundFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def citizen_and_round():
    applicant = ApplicantFactory()
    return client_for(applicant.user), RoundFactory()


def create(client, round_, key, **overrides):
    body = {"round": round_.pk, "income_category": "near_poor", "training": TRAINING}
    body.update(overrides)
    return client.post("/api/v1/applications/", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_create_is_eight_statements(citizen_and_round, django_assert_max_num_queries):
    client, round_ = citizen_and_round
    # Token (with user, applicant and roles), key claim, BEGIN, round, application, audit
    # event, stored response, COMMIT: no savepoint inside the key's transaction.
    with django_assert_max_num_queries(8):
        assert create(client, round_, "k").status_code == 201


def test_replay_conflict_and_expiry_with_committed_keys(citizen_and_round):
    client, round_ = citizen_and_round
    first = create(client, round_, "k")
    assert first.status_code == 201
    again = create(client, round_, "k")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    other = create(client, round_, "k", income_category="none")
    assert other.status_code == 422
    assert other.json()["errors"][0]["code"] == "idempotency_key_reused"

    IdempotencyKey.objects.filter(key="k").update(state=IdempotencyKey.State.RUNNING)
    running = create(client, round_, "k")
    assert running.status_code == 409
    assert running.json()["errors"][0]["code"] == "idempotency_request_in_progress"

    client.post(f"/api/v1/applications/{first.json()['id']}/withdraw/")
    IdempotencyKey.objects.filter(key="k").update(
        state=IdempotencyKey.State.DONE, created_at=timezone.now() - timedelta(hours=25)
    )
    renewed = create(client, round_, "k")
    assert renewed.status_code == 201 and "Idempotent-Replayed" not in renewed
    assert renewed.json()["id"] != first.json()["id"]
    assert Application.objects.exclude(status="withdrawn").count() == 1


def test_a_refused_request_releases_its_key(citizen_and_round):
    client, round_ = citizen_and_round
    assert create(client, round_, "k").status_code == 201
    refused = create(client, round_, "k2")  # a second live application in the round
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["code"] == "already_applied"
    assert not IdempotencyKey.objects.filter(key="k2").exists()
    assert Application.objects.count() == 1


def test_the_claim_leaves_synchronous_commit_on(citizen_and_round):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    client, round_ = citizen_and_round
    assert create(client, round_, "k").status_code == 201
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"


def test_submit_commits_and_then_screens_and_sends(citizen_and_round, settings):
    settings.BAEUM_NOTIFICATION_BACKEND = "tests.benefits.test_notifications.RecordingBackend"
    client, round_ = citizen_and_round
    created = create(client, round_, "k").json()
    response = client.post(f"/api/v1/applications/{created['id']}/submit/")
    assert response.status_code == 200
    assert response.json()["status"] == "submitted"
    # Eager Celery (no broker in tests): the chain ran after the commit.
    assert Application.objects.get(pk=created["id"]).status == "under_review"
    assert Notification.objects.get(kind="submitted").status == Notification.Status.SENT

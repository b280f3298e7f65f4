"""Races between real threads on PostgreSQL: the database constraint decides."""

import itertools
import threading

import pytest
from django.db import connection, connections

from api.models import IdempotencyKey
from benefits.models import Application
from tests.api.test_applications import TRAINING
from tests.conftest import client_for
from tests.factories import ApplicantFactory, RoundFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def run_together(count: int, work):
    """Start `count` threads at one barrier; return what each returned."""
    barrier = threading.Barrier(count)
    results = [None] * count

    def runner(i):
        try:
            barrier.wait()
            results[i] = work(i)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


@pytest.fixture(autouse=True)
def _needs_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("concurrency is tested on PostgreSQL: set DATABASE_URL")


def test_two_concurrent_creates_make_one_live_application():
    applicant = ApplicantFactory()
    round_ = RoundFactory()
    body = {"round": round_.pk, "income_category": "none", "training": TRAINING}

    def create(_):
        return client_for(applicant.user).post("/api/v1/applications/", body, format="json")

    for _attempt in range(5):
        Application.objects.all().delete()
        responses = run_together(2, create)
        codes = sorted(r.status_code for r in responses)
        assert codes == [201, 400], [r.json() for r in responses]
        refused = next(r for r in responses if r.status_code == 400)
        assert refused.json()["errors"][0]["code"] == "already_applied"
        assert Application.objects.filter(applicant=applicant, round=round_).count() == 1


def test_eight_concurrent_retries_with_one_key_act_once():
    applicant = ApplicantFactory()
    round_ = RoundFactory()
    body = {"round": round_.pk, "income_category": "none", "training": TRAINING}

    def create(_):
        return client_for(applicant.user).post(
            "/api/v1/applications/", body, format="json", HTTP_IDEMPOTENCY_KEY="same"
        )

    responses = run_together(8, create)
    codes = [r.status_code for r in responses]
    assert set(codes) <= {201, 409}, [r.json() for r in responses]
    assert codes.count(201) >= 1
    created_ids = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(created_ids) == 1
    assert Application.objects.count() == 1
    assert IdempotencyKey.objects.get().state == IdempotencyKey.State.DONE


def test_concurrent_submit_and_withdraw_leave_one_consistent_state():
    applicant = ApplicantFactory()
    round_ = RoundFactory()
    client = client_for(applicant.user)
    app_id = client.post(
        "/api/v1/applications/",
        {"round": round_.pk, "income_category": "none", "training": TRAINING},
        format="json",
    ).json()["id"]

    def act(i):
        return client_for(applicant.user).post(
            f"/api/v1/applications/{app_id}/{'submit' if i % 2 == 0 else 'withdraw'}/"
        )

    responses = run_together(4, act)
    final = Application.objects.get(pk=app_id).status
    # Screening runs right after a winning submit commits (tasks are eager here).
    assert final in {"under_review", "withdrawn"}
    assert all(r.status_code in (200, 409) for r in responses)
    # Whatever won, every later request saw its effect and was refused.
    from core.models import AuditEvent

    transitions = AuditEvent.objects.filter(object_id=str(app_id)).exclude(from_state="")
    chain = [(e.from_state, e.to_state) for e in transitions.order_by("id")]
    for (_, to_state), (from_state, _) in itertools.pairwise(chain):
        assert to_state == from_state

"""Idempotency-Key: replays, conflicts, in-flight retries and expiry."""

import json
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.response import Response

from api.idempotency import _release, _store_response, idempotency_begin, idempotency_keys_purge
from api.models import IdempotencyKey
from api.tasks import idempotency_keys_purge_task
from benefits.models import Application
from tests.api.test_applications import TRAINING
from tests.api.test_documents import PDF

pytestmark = pytest.mark.django_db


def post(client, round_, key, **overrides):
    body = {"round": round_.pk, "income_category": "near_poor", "training": TRAINING}
    body.update(overrides)
    return client.post("/api/v1/applications/", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_same_key_and_body_replays_the_first_response(citizen, open_round):
    first = post(citizen, open_round, "key-1")
    second = post(citizen, open_round, "key-1")
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert Application.objects.count() == 1


def test_key_order_and_whitespace_do_not_matter(citizen, open_round):
    body = '{"round": %d, "income_category": "none", "training": %s}'
    first = citizen.post(
        "/api/v1/applications/",
        data=body % (open_round.pk, json.dumps(TRAINING)),
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="k",
    )
    reordered = json.dumps(
        {
            "training": dict(reversed(list(TRAINING.items()))),
            "income_category": "none",
            "round": open_round.pk,
        },
        indent=2,
    )
    second = citizen.post(
        "/api/v1/applications/",
        data=reordered,
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="k",
    )
    assert first.status_code == 201 and second.status_code == 201
    assert second["Idempotent-Replayed"] == "true"


def test_same_key_with_another_body_is_422(citizen, open_round):
    assert post(citizen, open_round, "key-2").status_code == 201
    response = post(citizen, open_round, "key-2", income_category="basic_livelihood")
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert (error["attr"], error["code"]) == ("Idempotency-Key", "idempotency_key_reused")
    assert Application.objects.get().income_category == "near_poor"


def test_retry_while_the_first_is_running_is_409(citizen, open_round):
    # The state a concurrent first attempt leaves while it is still being processed.
    first = post(citizen, open_round, "key-3")
    IdempotencyKey.objects.filter(key="key-3").update(state=IdempotencyKey.State.RUNNING)
    response = post(citizen, open_round, "key-3")
    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "idempotency_request_in_progress"
    assert first.status_code == 201
    assert Application.objects.count() == 1


def test_abandoned_running_key_is_taken_over(citizen, open_round):
    post(citizen, open_round, "key-4")
    Application.objects.all().delete()
    IdempotencyKey.objects.filter(key="key-4").update(
        state=IdempotencyKey.State.RUNNING, created_at=timezone.now() - timedelta(minutes=10)
    )
    response = post(citizen, open_round, "key-4")
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response


def test_refused_request_is_not_remembered(citizen, open_round):
    bad = post(citizen, open_round, "key-5", income_category="rich")
    assert bad.status_code == 400
    good = post(citizen, open_round, "key-5")
    assert good.status_code == 201
    assert "Idempotent-Replayed" not in good


def test_keys_belong_to_one_user(citizen, other_citizen, open_round):
    assert post(citizen, open_round, "shared").status_code == 201
    response = post(other_citizen, open_round, "shared")
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response
    assert Application.objects.count() == 2


def test_expired_key_is_a_new_request(citizen, open_round):
    first = post(citizen, open_round, "old")
    citizen.post(f"/api/v1/applications/{first.json()['id']}/withdraw/")
    IdempotencyKey.objects.filter(key="old").update(created_at=timezone.now() - timedelta(hours=25))
    second = post(citizen, open_round, "old")
    assert second.status_code == 201
    assert second.json()["id"] != first.json()["id"]


@pytest.mark.parametrize("key", ["", "x" * 256, "naïve"])
def test_malformed_key_is_refused(citizen, open_round, key):
    response = post(citizen, open_round, key)
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "invalid_idempotency_key"
    assert not Application.objects.exists()


def test_transitions_replay_too(citizen, open_round):
    created = post(citizen, open_round, "c").json()
    url = f"/api/v1/applications/{created['id']}/submit/"
    first = citizen.post(url, HTTP_IDEMPOTENCY_KEY="s")
    again = citizen.post(url, HTTP_IDEMPOTENCY_KEY="s")
    assert first.status_code == again.status_code == 200
    assert again.json()["status"] == "submitted"


def test_purge_deletes_only_expired_keys(citizen, open_round):
    post(citizen, open_round, "fresh")
    IdempotencyKey.objects.create(
        user=citizen.applicant.user,
        key="stale",
        fingerprint="0" * 64,
        state=IdempotencyKey.State.DONE,
        created_at=timezone.now() - timedelta(hours=24, seconds=1),
    )
    assert idempotency_keys_purge_task.delay().get() == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["fresh"]
    assert idempotency_keys_purge() == 0


def test_a_key_reused_on_another_path_is_422(citizen, open_round):
    created = post(citizen, open_round, "c").json()
    submit = citizen.post(f"/api/v1/applications/{created['id']}/submit/", HTTP_IDEMPOTENCY_KEY="t")
    assert submit.status_code == 200
    withdraw = citizen.post(
        f"/api/v1/applications/{created['id']}/withdraw/", HTTP_IDEMPOTENCY_KEY="t"
    )
    assert withdraw.status_code == 422
    assert Application.objects.get(pk=created["id"]).status == Application.Status.SUBMITTED


def test_a_retry_replays_the_users_own_response_never_another_users(
    citizen, other_citizen, open_round
):
    mine = post(citizen, open_round, "pos-1")
    theirs = post(other_citizen, open_round, "pos-1")
    assert mine.json()["id"] != theirs.json()["id"]
    again = post(other_citizen, open_round, "pos-1")
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == theirs.json()


def test_the_same_key_with_another_file_is_422(citizen, open_round):
    draft = Application.objects.get(pk=post(citizen, open_round, "c").json()["id"])
    url = f"/api/v1/applications/{draft.pk}/documents/"

    def send(content):
        body = {"kind": "income_proof", "file": SimpleUploadedFile("proof.pdf", content)}
        return citizen.post(url, body, format="multipart", HTTP_IDEMPOTENCY_KEY="doc-1")

    assert send(PDF).status_code == 201
    assert send(PDF).json() == send(PDF).json()
    assert send(PDF + b"% another scan\n").status_code == 422
    assert draft.documents.count() == 1


def test_a_first_attempt_that_fails_late_never_erases_the_response_its_retry_stored(citizen):
    user = citizen.applicant.user
    first, replay = idempotency_begin(user=user, key="slow", fingerprint="f")
    assert not replay
    # The first attempt stalls past the stale limit; a retry takes the key over and finishes.
    IdempotencyKey.objects.filter(pk=first.pk).update(
        created_at=timezone.now() - timedelta(hours=1)
    )
    retry, replay = idempotency_begin(user=user, key="slow", fingerprint="f")
    assert not replay
    _store_response(retry, Response({"id": 7}, status=201))
    # Then the first attempt fails and lets its claim go: the retry's response stays.
    _release(first)
    record, replay = idempotency_begin(user=user, key="slow", fingerprint="f")
    assert replay
    assert (record.response_status, record.response_body) == (201, {"id": 7})

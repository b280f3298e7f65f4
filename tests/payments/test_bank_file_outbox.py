"""A bank file that has gone missing is made again through the outbox, so that a download
while the broker is down answers "being made" instead of failing."""

import pytest
from django.utils import timezone

from config.celery import app as celery_app
from core.models import TaskOutbox
from core.outbox import outbox_sweep
from payments.exports import bank_files_key
from payments.models import BankFile, DisbursementBatch

pytestmark = pytest.mark.django_db(transaction=True)


def _approved_batch(finance1, finance2, round_) -> DisbursementBatch:
    batch_id = finance1.post("/api/v1/disbursements/", {"round": round_.pk}, format="json")
    batch_id = batch_id.json()["id"]
    assert finance1.post(f"/api/v1/disbursements/{batch_id}/submit/").status_code == 200
    assert finance2.post(f"/api/v1/disbursements/{batch_id}/approve/").status_code == 200
    return DisbursementBatch.objects.get(pk=batch_id)


def test_a_missing_bank_file_downloaded_while_the_broker_is_down_answers_202_then_is_made(
    selected_round, finance1, finance2, broker_down, monkeypatch
):
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)
    batch = _approved_batch(finance1, finance2, selected_round)
    BankFile.objects.filter(batch=batch).delete()  # lost, say, with a restored database
    monkeypatch.setitem(celery_app.conf, "task_always_eager", False)  # and the broker is down

    response = finance1.get(f"/api/v1/disbursements/{batch.pk}/export/?format=csv")

    assert response.status_code == 202, response.content
    entry = TaskOutbox.objects.get(key=bank_files_key(batch))
    assert entry.status == TaskOutbox.Status.PENDING
    assert entry.due_at <= timezone.now()  # the next sweep sends it
    # A second try while it waits records nothing more.
    assert finance1.get(f"/api/v1/disbursements/{batch.pk}/export/?format=csv").status_code == 202
    assert TaskOutbox.objects.filter(key=bank_files_key(batch)).count() == 1

    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)  # the broker is back
    assert outbox_sweep()["sent"] == 1
    response = finance1.get(f"/api/v1/disbursements/{batch.pk}/export/?format=csv")
    assert response.status_code == 200
    assert BankFile.objects.filter(batch=batch).count() == 2


def test_a_bank_file_task_given_up_earlier_is_tried_again_by_the_next_download(
    selected_round, finance1, finance2, monkeypatch
):
    batch = _approved_batch(finance1, finance2, selected_round)
    BankFile.objects.filter(batch=batch).delete()
    TaskOutbox.objects.filter(key=bank_files_key(batch)).update(status=TaskOutbox.Status.FAILED)

    response = finance1.get(f"/api/v1/disbursements/{batch.pk}/export/?format=pain001")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/xml"
    assert TaskOutbox.objects.get(key=bank_files_key(batch)).status == TaskOutbox.Status.DONE

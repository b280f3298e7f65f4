"""A bank result file applied in chunk tasks by the workers: the same outcome as applied
at once, each chunk counted once however often it is delivered, the import finished once."""

import io

import pytest

from benefits.models import Notification
from config.celery import app as celery_app
from core.exceptions import Conflict
from core.models import AuditEvent, TaskOutbox
from payments.imports import (
    ResultFileRejected,
    bank_results_chunk,
    bank_results_import,
    bank_results_run,
    bank_results_upload,
)
from payments.models import BankResultImport, Payment
from tests.factories import UserFactory
from tests.payments.test_money_guards import selected_round, sent_batch

pytestmark = pytest.mark.django_db


@pytest.fixture
def maker(db):
    from core.roles import Role

    return UserFactory(role=Role.FINANCE, is_staff=True)


@pytest.fixture
def checker(db):
    from core.roles import Role

    return UserFactory(role=Role.FINANCE, is_staff=True)


@pytest.fixture
def workers(monkeypatch, settings):
    """Tasks for the workers (their outbox entries wait: the test never commits), in
    chunks of two lines."""
    monkeypatch.setitem(celery_app.conf, "task_always_eager", False)
    settings.BAEUM_RESULTS_CHUNK = 2


def result_file(batch) -> bytes:
    lines = ["reference,result,reason"]
    for i, payment in enumerate(batch.payments.order_by("pk")):
        lines.append(f"{payment.reference},{'failed,closed' if i % 3 == 0 else 'paid,'}")
    return ("\n".join(lines) + "\n").encode()


def upload(batch, actor, data: bytes) -> BankResultImport:
    file = io.BytesIO(data)
    file.name = "results.csv"
    return bank_results_upload(batch=batch, actor=actor, upload=file)


def outcome(batch) -> dict:
    return dict(batch.payments.values_list("pk", "status"))


def test_a_chunked_import_equals_a_one_shot_import(
    maker, checker, settings, monkeypatch, django_capture_on_commit_callbacks
):
    one_shot = sent_batch(selected_round(5), maker, checker)
    chunked = sent_batch(selected_round(5), maker, checker)
    whole = bank_results_import(batch=one_shot, actor=maker, data=result_file(one_shot))

    monkeypatch.setitem(celery_app.conf, "task_always_eager", False)
    settings.BAEUM_RESULTS_CHUNK = 2
    record = upload(chunked, maker, result_file(chunked))
    assert record.status == BankResultImport.Status.QUEUED
    assert record.file  # stored, for the workers
    assert record.summary["lines"] == 5 and record.lines_done == 0
    record = bank_results_run(import_id=record.pk)
    assert record.chunks_total == 3
    assert TaskOutbox.objects.filter(key__startswith=f"bank_results:{record.pk}:").count() == 3
    with django_capture_on_commit_callbacks(execute=True):  # the last commit deletes the file
        for index in (2, 0, 1):  # the workers take them in any order
            assert bank_results_chunk(import_id=record.pk, index=index)
    record.refresh_from_db()

    assert record.status == BankResultImport.Status.SUCCEEDED
    assert (
        record.summary
        == whole.summary
        == {
            "lines": 5,
            "paid": 3,
            "failed": 2,
            "pending": 0,
            "unchanged": 0,
        }
    )
    assert record.lines_done == 5 and not record.file  # the stored file is gone
    assert sorted(outcome(chunked).values()) == sorted(outcome(one_shot).values())
    for batch in (one_shot, chunked):
        batch.refresh_from_db()
        assert batch.status == "reconciled"
    assert Notification.objects.filter(kind="paid").count() == 6
    assert Notification.objects.filter(kind="payment_failed").count() == 4
    assert AuditEvent.objects.filter(action="batch.results_imported").count() == 2


def test_a_redelivered_chunk_changes_nothing(maker, checker, workers):
    batch = sent_batch(selected_round(4), maker, checker)
    record = bank_results_run(import_id=upload(batch, maker, result_file(batch)).pk)
    assert bank_results_chunk(import_id=record.pk, index=0)
    after_first = outcome(batch)
    notifications = Notification.objects.count()
    record.refresh_from_db()
    progress = (record.lines_done, dict(record.summary))
    assert progress[0] == 2

    assert not bank_results_chunk(import_id=record.pk, index=0)
    # Even past the early check, as a second delivery running beside the first would be.
    from payments.imports import _apply_chunk, _stored_lines

    first_two = list(_stored_lines(record))[:2]
    assert not _apply_chunk(record.pk, 0, first_two)
    record.refresh_from_db()
    assert (record.lines_done, record.summary) == progress
    assert outcome(batch) == after_first
    assert Notification.objects.count() == notifications

    assert bank_results_chunk(import_id=record.pk, index=1)
    record.refresh_from_db()
    assert record.status == BankResultImport.Status.SUCCEEDED
    assert record.summary["paid"] + record.summary["failed"] == 4
    assert not bank_results_chunk(import_id=record.pk, index=1)
    assert AuditEvent.objects.filter(action="batch.results_imported").count() == 1


def test_a_dispatch_run_twice_records_its_chunks_once(maker, checker, workers):
    batch = sent_batch(selected_round(3), maker, checker)
    record = upload(batch, maker, result_file(batch))
    bank_results_run(import_id=record.pk)
    bank_results_run(import_id=record.pk)
    assert TaskOutbox.objects.filter(key__startswith=f"bank_results:{record.pk}:").count() == 2


def test_the_same_file_uploaded_twice_replays_the_first_import(maker, checker, workers):
    batch = sent_batch(selected_round(3), maker, checker)
    data = result_file(batch)
    first = upload(batch, maker, data)
    assert upload(batch, maker, data).pk == first.pk
    assert BankResultImport.objects.filter(batch=batch).count() == 1


def test_a_second_file_waits_for_the_running_import_of_its_batch(maker, checker, workers):
    batch = sent_batch(selected_round(3), maker, checker)
    upload(batch, maker, result_file(batch))
    first_line_only = b"\n".join(result_file(batch).splitlines()[:2]) + b"\n"
    with pytest.raises(Conflict):
        upload(batch, maker, first_line_only)


def test_a_file_that_contradicts_a_settled_payment_fails_on_the_worker_applying_nothing(
    maker, checker, workers, django_capture_on_commit_callbacks
):
    batch = sent_batch(selected_round(3), maker, checker)
    first = batch.payments.order_by("pk").first()
    Payment.objects.filter(pk=first.pk).update(status="paid")
    data = result_file(batch)  # says the first one failed
    queued = upload(batch, maker, data)
    with django_capture_on_commit_callbacks(execute=True):
        record = bank_results_run(import_id=queued.pk)
    assert record.status == BankResultImport.Status.FAILED
    assert [e["code"] for e in record.errors] == ["result_conflict"]
    assert record.chunks_total is None
    assert set(batch.payments.exclude(pk=first.pk).values_list("status", flat=True)) == {"sent"}
    record.refresh_from_db()
    assert not record.file
    # A failed import applied nothing: the corrected file may be sent.
    corrected = data.replace(b"failed,closed", b"paid,", 1)
    assert upload(batch, maker, corrected).status == BankResultImport.Status.QUEUED


def test_a_malformed_upload_is_refused_in_the_request_and_nothing_is_stored(
    maker, checker, workers
):
    batch = sent_batch(selected_round(2), maker, checker)
    reference = batch.payments.first().reference
    with pytest.raises(ResultFileRejected) as rejected:
        upload(
            batch,
            maker,
            f"reference,result,reason\n{reference},paid,\n{reference},paid,\n".encode(),
        )
    assert rejected.value.details[0][1] == "duplicate_reference"
    assert not BankResultImport.objects.exists()


def test_the_api_answers_with_the_queued_import_and_its_progress(finance1, maker, checker, workers):
    batch = sent_batch(selected_round(3), maker, checker)
    file = io.BytesIO(result_file(batch))
    file.name = "results.csv"
    response = finance1.post(
        f"/api/v1/disbursements/{batch.pk}/results/", {"file": file}, format="multipart"
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["lines"], body["lines_done"], body["paid"]) == (
        "queued",
        3,
        0,
        0,
    )
    assert body["errors"] == [] and body["finished_at"] is None
    assert set(batch.payments.values_list("status", flat=True)) == {"sent"}

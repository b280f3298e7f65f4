"""A bank result file applied by two real Celery workers on PostgreSQL, through a Redis
broker of the test's own: the chunks are shared, each payment moves once, the import
finishes once and the batch is reconciled (CI's broker run; skipped without one)."""

import io
import time

import pytest
from django.utils import timezone

from benefits.models import Application, Notification
from core.roles import Role
from payments import services
from payments.models import BankResultImport, DisbursementBatch, Payment
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.integration import test_faults as faults
from tests.integration.test_faults import round_with, wait_for

# The fault tests' broker, workers and logs.
cluster, log_dir, redis = faults.cluster, faults.log_dir, faults.redis

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_two_workers_share_a_result_file_and_settle_each_payment_once(cluster):
    n = 1_000  # ten chunks of 100
    round_ = round_with(n, Application.Status.SELECTED, offset=800_000, status="selected")
    workers = [cluster.start("worker", BAEUM_RESULTS_CHUNK="100") for _ in range(2)]
    maker = UserFactory(role=Role.FINANCE, is_staff=True)
    checker = UserFactory(role=Role.FINANCE, is_staff=True)
    response = client_for(maker).post("/api/v1/disbursements/", {"round": round_.pk})
    assert response.status_code == 201, response.content
    batch = DisbursementBatch.objects.get(pk=response.json()["id"])
    assert wait_for(lambda: DisbursementBatch.objects.get(pk=batch.pk).is_ready, 120)
    batch = services.batch_submit(batch=DisbursementBatch.objects.get(pk=batch.pk), actor=maker)
    batch = services.batch_approve(batch=batch, actor=checker)
    assert wait_for(lambda: batch.files.count() == 2, 120)
    batch.files.update(downloaded_at=timezone.now(), downloaded_by=maker)
    batch = services.batch_disburse(batch=batch, actor=maker)

    lines = ["reference,result,reason"]
    for i, payment in enumerate(Payment.objects.filter(batch=batch).order_by("pk")):
        lines.append(f"{payment.reference},{'failed,closed' if i % 10 == 0 else 'paid,'}")
    file = io.BytesIO(("\n".join(lines) + "\n").encode())
    file.name = "results.csv"
    started = time.monotonic()
    response = client_for(maker).post(
        f"/api/v1/disbursements/{batch.pk}/results/", {"file": file}, format="multipart"
    )
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "queued"
    record = BankResultImport.objects.get(pk=response.json()["id"])

    def finished():
        record.refresh_from_db()
        return record.status in (BankResultImport.Status.SUCCEEDED, BankResultImport.Status.FAILED)

    assert wait_for(finished, 180)
    took = time.monotonic() - started
    assert record.status == BankResultImport.Status.SUCCEEDED, record.errors
    assert record.summary == {"lines": n, "paid": 900, "failed": 100, "pending": 0, "unchanged": 0}
    assert sorted(record.chunks_done) == list(range(10)) and record.lines_done == n
    payments = Payment.objects.filter(batch=batch)
    assert payments.filter(status="paid", result_import=record).count() == 900
    assert payments.filter(status="failed", result_import=record).count() == 100
    assert Notification.objects.filter(kind="paid").count() == 900
    assert Notification.objects.filter(kind="payment_failed").count() == 100
    batch.refresh_from_db()
    assert batch.status == "reconciled"
    assert wait_for(lambda: not BankResultImport.objects.get(pk=record.pk).file, 30)
    # Both workers took chunks of it.
    done_by = [w.log.read_text().count(f"bank result import {record.pk}: chunk") for w in workers]
    assert all(done_by) and sum(done_by) >= 10, done_by
    print({"bank results, two workers": {"lines": n, "seconds": round(took, 1)}})

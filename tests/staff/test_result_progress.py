"""The batch page while the workers apply a bank result file: its state, the lines applied
so far, and the progress the page polls."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from config.celery import app as celery_app
from core.roles import Role
from payments.imports import bank_results_chunk, bank_results_run
from payments.models import BankResultImport
from tests.payments.test_money_guards import selected_round, sent_batch
from tests.payments.test_result_chunks import result_file

pytestmark = pytest.mark.django_db


def test_the_batch_page_follows_a_result_file_the_workers_apply(web, monkeypatch, settings):
    monkeypatch.setitem(celery_app.conf, "task_always_eager", False)
    settings.BAEUM_RESULTS_CHUNK = 2
    maker, checker, auditor = web(Role.FINANCE), web(Role.FINANCE), web(Role.AUDITOR)
    batch = sent_batch(selected_round(3), maker.user, checker.user)

    response = maker.post(
        f"/staff/batches/{batch.pk}/results/",
        {"file": SimpleUploadedFile("result.csv", result_file(batch))},
        follow=True,
    )
    assert any("반영하고 있습니다" in str(m) for m in response.context["messages"])
    record = BankResultImport.objects.get(batch=batch)
    progress_url = f"/staff/batches/{batch.pk}/results/{record.pk}/progress/"
    page = response.content.decode()
    assert progress_url in page and "반영한 행" in page

    bank_results_run(import_id=record.pk)
    bank_results_chunk(import_id=record.pk, index=0)
    progress = auditor.get(progress_url).json()
    assert (progress["status"], progress["lines_done"], progress["finished"]) == (
        "running",
        2,
        False,
    )
    bank_results_chunk(import_id=record.pk, index=1)
    assert auditor.get(progress_url).json()["finished"] is True
    page = maker.get(f"/staff/batches/{batch.pk}/").content.decode()
    assert progress_url not in page and "대사 완료" in page
    # Another batch's import is not found under this batch.
    assert (
        auditor.get(f"/staff/batches/{batch.pk + 1}/results/{record.pk}/progress/").status_code
        == 404
    )

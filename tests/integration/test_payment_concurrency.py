"""Money under races and crashes, on PostgreSQL with real threads and a real killed process."""

import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, connections, transaction
from django.db.models import Count

from benefits.models import Applicant, Application, Notification, Round
from core.crypto import account_fingerprint
from core.roles import Role
from payments import build, services
from payments.exports import bank_file_download
from payments.models import BankResultImport, BuildChunk, DisbursementBatch, Payment
from tests.conftest import client_for
from tests.factories import RoundFactory, UserFactory
from tests.integration.test_concurrency import run_together

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _needs_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("money races are tested on PostgreSQL: set DATABASE_URL")


def selected_round(n: int) -> Round:
    """A selected round of n recipients, each with a bank account, made in bulk."""
    round_ = RoundFactory(status=Round.Status.SELECTED, capacity=n)
    User = get_user_model()
    users = User.objects.bulk_create(
        [User(username=f"payee{round_.pk}-{i}", password="!") for i in range(n)]
    )
    applicants = Applicant.objects.bulk_create(
        [
            Applicant(
                user=user,
                legal_name="박서연",
                bank_code="004",
                account_number=f"{100000000000 + i}",
                account_fingerprint=account_fingerprint("004", f"{100000000000 + i}"),
                account_holder="박서연",
            )
            for i, user in enumerate(users)
        ],
        batch_size=2000,
    )
    Application.objects.bulk_create(
        [
            Application(applicant=a, round=round_, status="selected", income_category="none")
            for a in applicants
        ],
        batch_size=2000,
    )
    return round_


def assert_one_live_payment_each(round_: Round) -> None:
    doubled = (
        Payment.objects.filter(round=round_, status__in=Payment.LIVE_STATES)
        .values("application")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )
    assert not doubled.exists()


def test_the_database_refuses_a_second_live_payment_whatever_the_code_does():
    round_ = selected_round(1)
    application = Application.objects.get(round=round_)
    batch = DisbursementBatch.objects.create(round=round_, prepared_by=UserFactory())
    Payment.objects.create(batch=batch, round=round_, application=application, amount=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Payment.objects.create(batch=batch, round=round_, application=application, amount=1)


def test_two_finance_users_creating_batches_at_once_pay_each_entitlement_once():
    round_ = selected_round(300)
    users = [UserFactory(role=Role.FINANCE) for _ in range(2)]

    def create(i):
        return client_for(users[i]).post(
            "/api/v1/disbursements/", {"round": round_.pk}, format="json"
        )

    for _attempt in range(3):
        responses = run_together(2, create)
        codes = sorted(r.status_code for r in responses)
        assert codes[0] in (201, 400) and codes[1] in (201, 400, 409), codes
        assert_one_live_payment_each(round_)
        assert Payment.objects.filter(round=round_, status="pending").count() == 300
        for batch in DisbursementBatch.objects.filter(round=round_, status="draft"):
            services.batch_cancel(batch=batch, actor=users[0])


SLOW_BUILD = """
import os, sys, time
import django
django.setup()
from payments import build
from payments.exports import bank_file_download
real_chunk = build._build_chunk

def slow_chunk(*args):
    done = real_chunk(*args)
    time.sleep(0.05)
    return done

# Small chunks, slowed down, so that the kill surely lands between two of them.
build._build_chunk = slow_chunk
build.batch_build(batch_id=int(sys.argv[1]), chunk_size=200)
"""


def test_a_worker_killed_mid_build_leaves_a_batch_that_a_rerun_completes_exactly():
    round_ = selected_round(10_000)
    batch = DisbursementBatch.objects.create(
        round=round_, prepared_by=UserFactory(role=Role.FINANCE), build_expected=10_000
    )
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    worker = subprocess.Popen([sys.executable, "-c", SLOW_BUILD, str(batch.pk)], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 120
        while Payment.objects.filter(batch=batch).count() < 2_000:
            assert worker.poll() is None, "the build finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    partial = Payment.objects.filter(batch=batch).count()
    assert 2_000 <= partial < 10_000
    batch.refresh_from_db()
    assert batch.build_status == "building"

    from payments.tasks import batch_build_task

    # The retry, as Celery would redeliver it: the chunks not built are sent (and, eager,
    # run) again.
    assert 0 < batch_build_task.run(batch.pk) <= 40
    batch.refresh_from_db()
    assert batch.build_status == "ready"
    payments = Payment.objects.filter(batch=batch)
    assert payments.values("application").distinct().count() == 10_000
    assert set(payments.values_list("application_id", flat=True)) == set(
        Application.objects.filter(round=round_).values_list("id", flat=True)
    )
    assert_one_live_payment_each(round_)


def lock_waiters() -> int:
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"], autocommit=True
    ) as probe:
        return probe.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
            [db["NAME"]],
        ).fetchone()[0]


def test_a_batch_cancelled_while_a_chunk_is_gathered_keeps_none_of_its_payments():
    round_ = selected_round(400)
    maker = UserFactory(role=Role.FINANCE)
    batch = DisbursementBatch.objects.create(round=round_, prepared_by=maker, build_expected=400)
    chunk = build._build_chunks_record(batch.pk, 200)[0]
    db = connection.settings_dict
    # The chunk's task is held inside its transaction, on its own row, as a slow insert is.
    holder = psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"])
    holder.execute(
        f"SELECT 1 FROM {BuildChunk._meta.db_table} WHERE id = %s FOR UPDATE",  # noqa: S608
        [chunk.pk],
    )

    def in_thread(work):
        def run():
            try:
                work()
            finally:
                connections.close_all()

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    gathering = in_thread(
        lambda: build.batch_build_chunk(batch_id=batch.pk, first=chunk.first, last=chunk.last)
    )
    deadline = time.monotonic() + 30
    while lock_waiters() < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    cancelling = in_thread(lambda: services.batch_cancel(batch=batch, actor=maker, reason="x"))
    time.sleep(1)  # the cancel waits for the chunk under way, or (unguarded) is done by now
    holder.rollback()
    holder.close()
    gathering.join(30)
    cancelling.join(30)

    batch.refresh_from_db()
    assert batch.status == DisbursementBatch.Status.CANCELLED
    assert not Payment.objects.filter(batch=batch, status=Payment.Status.PENDING).exists()
    assert Payment.objects.filter(batch=batch).count() == 200  # gathered, then freed


def test_the_same_result_file_imported_twice_at_once_has_one_effect():
    round_ = selected_round(50)
    maker, checker = UserFactory(role=Role.FINANCE), UserFactory(role=Role.FINANCE)
    batch = services.batch_create(round_=round_, actor=maker)
    batch = services.batch_submit(batch=batch, actor=maker)
    batch = services.batch_approve(batch=batch, actor=checker)
    bank_file_download(bank_file=batch.files.get(format="pain001"), actor=maker)
    batch = services.batch_disburse(batch=batch, actor=maker)
    lines = ["reference,result,reason"]
    for i, payment in enumerate(Payment.objects.filter(batch=batch)):
        lines.append(f"{payment.reference},{'failed,closed' if i % 5 == 0 else 'paid,'}")
    content = ("\n".join(lines) + "\n").encode()

    def upload(_):
        file = io.BytesIO(content)
        file.name = "results.csv"
        return client_for(maker).post(
            f"/api/v1/disbursements/{batch.pk}/results/", {"file": file}, format="multipart"
        )

    responses = run_together(2, upload)
    assert [r.status_code for r in responses] == [200, 200], [r.json() for r in responses]
    assert responses[0].json() == responses[1].json()
    assert BankResultImport.objects.filter(batch=batch).count() == 1
    assert Payment.objects.filter(batch=batch, status="paid").count() == 40
    assert Payment.objects.filter(batch=batch, status="failed").count() == 10
    assert Notification.objects.filter(kind="paid").count() == 40
    assert Notification.objects.filter(kind="payment_failed").count() == 10
    batch.refresh_from_db()
    assert batch.status == "reconciled"

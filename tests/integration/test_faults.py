"""Fault tests on the production shape: PostgreSQL, a Redis broker of the test's own, real
Celery workers and beat. A worker is killed (SIGKILL) in the middle of an import, a round's
re-screening and of a batch build (whose chunks two workers share), and the other goes on;
the broker is stopped during intake and during batch creation, and started again. Each
ends with the work done once, nothing half-made left behind, and no raw RRN in any
process's log. Workers on one queue each show that screening on submit is never stuck
behind a long job.

Leases and sweeps are seconds here (BAEUM_OUTBOX_* in the workers' environment) so that
the whole run stays short; each test prints what recovery took.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from benefits.models import Applicant, Application, Notification, Round
from benefits.selectors import round_rescreen_progress
from config.celery import app as celery_app
from core.crypto import account_fingerprint, rrn_hmac
from core.models import AuditEvent, TaskOutbox
from core.outbox import outbox_enqueue
from core.roles import Role
from eligibility.models import RECORD_MODELS, RegistryImportJob, RegistrySnapshot, ScreeningRun
from eligibility.screening_tasks import application_screen_task, round_rescreen_task
from payments.build import batch_build_chunk_key, batch_build_dispatch
from payments.models import BuildChunk, DisbursementBatch, Payment
from tests.conftest import client_for
from tests.factories import ApplicationFactory, RoundFactory, UserFactory, rrn_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
LEASE, REDISPATCH, SWEEP = 3, 2, 1  # seconds
RRNS: set[str] = set()  # every raw RRN these tests hand to the application
LOGS: list[Path] = []
FIGURES: dict[str, dict] = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, seconds=60, every=0.1):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return False


class Redis:
    """A redis-server of this module's own, on a free port: stopped and started at will."""

    def __init__(self, log_dir: Path):
        self.port, self.log_dir, self.process = _free_port(), log_dir, None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *(shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def up():
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        assert wait_for(up, 20), "redis-server did not start"

    def stop(self) -> None:
        self.process.kill()  # gone at once, with every message it held
        self.process.wait(timeout=20)


class Processes:
    """Celery workers and beat on the test database and this module's broker."""

    def __init__(self, redis: Redis, log_dir: Path):
        self.redis, self.log_dir, self.running = redis, log_dir, []

    def env(self) -> dict:
        db = connection.settings_dict
        # The uploads this test stores (tests/conftest.py), under the same keys.
        documents = Path(settings.STORAGES["default"]["OPTIONS"]["location"])
        return {
            **os.environ,
            "BAEUM_DATA_DIR": str(documents.parent),
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,
            "BAEUM_ENCRYPTION_KEYS": settings.BAEUM_ENCRYPTION_KEYS,
            "BAEUM_HMAC_KEY": settings.BAEUM_HMAC_KEY,
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "CELERY_BROKER_URL": self.redis.url,
            "BAEUM_OUTBOX_LEASE_SECONDS": str(LEASE),
            "BAEUM_OUTBOX_REDISPATCH_SECONDS": str(REDISPATCH),
            "BAEUM_OUTBOX_SWEEP_SECONDS": str(SWEEP),
            "CELERY_UNACKED_RESTORE_INTERVAL": "1",
            "BAEUM_LOG_LEVEL": "INFO",
        }

    def start(self, kind: str, *, queues: str = "", **env: str) -> subprocess.Popen:
        """Start a worker (on every queue, or on `queues`) or beat; `env` adds settings."""
        log = self.log_dir / f"{kind}-{uuid.uuid4().hex[:8]}.log"
        LOGS.append(log)
        if kind == "worker":
            args = ["worker", "--pool=solo", "-n", f"{log.stem}@%h"]
            args += ["--without-heartbeat", "--without-gossip", "--without-mingle"]
            args += ["-Q", queues] if queues else []
        else:
            args = ["beat", "-s", str(self.log_dir / f"{log.stem}-schedule")]
        with log.open("w") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", *args, "--loglevel=INFO"],
                cwd=ROOT,
                env={**self.env(), **env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        process.log = log
        self.running.append(process)
        if kind == "worker":
            assert wait_for(lambda: "ready." in log.read_text(), 60), log.read_text()
        return process

    def kill(self, process: subprocess.Popen) -> None:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=20)

    def stop_all(self) -> None:
        for process in self.running:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
        self.running = []


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fault-logs")


@pytest.fixture(scope="module")
def redis(log_dir):
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server")
    server = Redis(log_dir)
    server.start()
    # This process (the web side here) publishes to the same broker. Celery reads the
    # environment's CELERY_BROKER_URL before its configuration.
    saved_url = os.environ.get("CELERY_BROKER_URL")
    os.environ["CELERY_BROKER_URL"] = server.url
    saved = (
        celery_app.conf.broker_url,
        celery_app.conf.task_always_eager,
        celery_app._pool,
        celery_app.amqp._producer_pool,
    )
    celery_app.conf.broker_url, celery_app.conf.task_always_eager = server.url, False
    celery_app._pool = celery_app.amqp._producer_pool = None
    yield server
    if celery_app._pool is not None:
        celery_app._pool.force_close_all()
    (
        celery_app.conf.broker_url,
        celery_app.conf.task_always_eager,
        celery_app._pool,
        celery_app.amqp._producer_pool,
    ) = saved
    if saved_url is None:
        os.environ.pop("CELERY_BROKER_URL", None)
    else:
        os.environ["CELERY_BROKER_URL"] = saved_url
    if server.process.poll() is None:
        server.stop()


@pytest.fixture
def cluster(redis, log_dir, settings):
    if settings.CELERY_TASK_ALWAYS_EAGER or connection.vendor != "postgresql":
        pytest.skip("needs CELERY_BROKER_URL and DATABASE_URL (PostgreSQL)")
    settings.BAEUM_OUTBOX_LEASE = timedelta(seconds=LEASE)
    settings.BAEUM_OUTBOX_REDISPATCH_AFTER = timedelta(seconds=REDISPATCH)
    processes = Processes(redis, log_dir)
    processes.start("beat")
    yield processes
    processes.stop_all()
    # A killed worker's statement may still run in its backend: end it before the flush.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def applicants(n: int, *, offset: int) -> list[Applicant]:
    """n citizens with RRNs and bank accounts, made in bulk."""
    User = get_user_model()
    users = User.objects.bulk_create(
        [User(username=f"f{offset + i}", password="!") for i in range(n)]
    )
    rows = []
    for i, user in enumerate(users):
        rrn = rrn_for(offset + i)
        RRNS.add(rrn)
        account = f"{300000000000 + offset + i}"
        rows.append(
            Applicant(
                user=user,
                legal_name="김민준",
                rrn=rrn,
                rrn_hmac=rrn_hmac(rrn),
                district="11440",
                bank_code="004",
                account_number=account,
                account_fingerprint=account_fingerprint("004", account),
                account_holder="김민준",
                consent_data_checks=True,
                consent_at=timezone.now(),
            )
        )
    return Applicant.objects.bulk_create(rows)


def round_with(n: int, application_status: str, *, offset: int, **round_fields) -> Round:
    round_ = RoundFactory(capacity=max(n, 1), **round_fields)
    Application.objects.bulk_create(
        [
            Application(
                applicant=a,
                round=round_,
                status=application_status,
                income_category="none",
                submitted_at=timezone.now(),
            )
            for a in applicants(n, offset=offset)
        ]
    )
    with connection.cursor() as cursor:
        # Statistics, as a live database has them: the planner's row estimates otherwise
        # make a round's set-based statements crawl over freshly bulk-made tables.
        cursor.execute("ANALYZE")
    return round_


def registry_csv(numbers) -> bytes:
    lines = ["rrn,status,district,valid_from,valid_to"]
    for n in numbers:
        RRNS.add(rrn_for(n))
        lines.append(f"{rrn_for(n)},near_poor,11440,2025-01-01,")
    return ("\n".join(lines) + "\n").encode()


def upload(kind: str, content: bytes) -> RegistryImportJob:
    manager = UserFactory(role=Role.PROGRAM_MANAGER, is_staff=True)
    response = client_for(manager).post(
        f"/api/v1/registries/{kind}/imports/",
        {"file": ContentFile(content, name=f"{kind}.csv")},
        format="multipart",
    )
    assert response.status_code == 202, response.content
    return RegistryImportJob.objects.get(pk=response.json()["id"])


class HeldEntry:
    """Hold an outbox entry's row lock from another connection: the run's next heartbeat
    (at the start of its next chunk) waits on it, so the worker is killed mid-job."""

    def __init__(self, key, *, table: str = TaskOutbox._meta.db_table, column: str = "key"):
        db = connection.settings_dict
        self.conn = psycopg.connect(
            host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"]
        )
        self.conn.execute(f"SELECT 1 FROM {table} WHERE {column} = %s FOR UPDATE", [key])  # noqa: S608
        waiting = (
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = %s AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        # In autocommit: inside one transaction pg_stat_activity is read once and kept
        # (stats_fetch_consistency), so a probe opened before the wait began never saw it.
        with psycopg.connect(
            host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"], autocommit=True
        ) as probe:
            assert wait_for(lambda: probe.execute(waiting, [db["NAME"]]).fetchone()[0] > 0, 30)

    def release(self) -> None:
        self.conn.rollback()
        self.conn.close()


def entry(key: str) -> TaskOutbox:
    return TaskOutbox.objects.get(key=key)


class HeldJob(HeldEntry):
    """Hold an import job's row lock from another connection: a chunk that has written its
    rows waits on it to add its counts, so the worker is killed with its chunk uncommitted."""

    def __init__(self, job: RegistryImportJob):
        super().__init__(job.pk, table=RegistryImportJob._meta.db_table, column="id")


def import_chunk_entries(job: RegistryImportJob):
    return TaskOutbox.objects.filter(key__startswith=f"registry_import:{job.pk}:").exclude(
        key__endswith=":finish"
    )


def loaded_once(job: RegistryImportJob, rows: int) -> bool:
    records = RECORD_MODELS["social_security"].objects.filter(snapshot_id=job.snapshot_id)
    lines = records.values_list("line", flat=True)
    return records.count() == rows and sorted(lines) == list(range(2, rows + 2))


def test_worker_killed_mid_import_has_its_chunk_loaded_again_and_the_snapshot_activates_once(
    cluster,
):
    round_ = round_with(3, Application.Status.UNDER_REVIEW, offset=500_000)
    chunked = {"BAEUM_IMPORT_CHUNK_LINES": "10000"}
    worker = cluster.start("worker", **chunked)
    rows = 100_000  # ten chunks of 10,000: the job is held while one of them is loading
    job = upload("social_security", registry_csv(range(500_000, 500_000 + rows)))
    chunks = import_chunk_entries(job)
    assert wait_for(lambda: chunks.count() == 10)
    held = HeldJob(job)  # a chunk has written its rows and waits to count them
    running = chunks.get(status="running")
    snapshot = RegistryImportJob.objects.get(pk=job.pk).snapshot_id

    cluster.kill(worker)
    killed_at = time.monotonic()
    held.release()
    other_worker = cluster.start("worker", **chunked)

    assert wait_for(lambda: RegistryImportJob.objects.get(pk=job.pk).status == "succeeded"), (
        RegistryImportJob.objects.get(pk=job.pk).errors
    )
    recovered = time.monotonic() - killed_at
    job.refresh_from_db()
    # The same snapshot, each line once: the killed chunk's rows were never committed.
    assert (job.rows_read, job.snapshot_id) == (rows, snapshot)
    assert loaded_once(job, rows)
    active = RegistrySnapshot.objects.filter(kind="social_security", status="active")
    assert list(active.values_list("pk", flat=True)) == [job.snapshot_id]
    assert not RegistrySnapshot.objects.filter(status="loading").exists()
    # The upload is deleted once the job has ended.
    assert wait_for(lambda: not RegistryImportJob.objects.get(pk=job.pk).file)
    assert (entry(running.key).status, entry(running.key).runs) == ("done", 2)
    index = running.args[2]
    assert f"registry import {job.pk}: chunk {index} " in other_worker.log.read_text()
    # The activation re-screens the round under review, once per application.
    trigger = f"rescreen:snapshot-{job.snapshot_id}"
    runs = ScreeningRun.objects.filter(application__round=round_, trigger_key=trigger)
    assert wait_for(lambda: runs.count() == 3)
    assert sorted(runs.values_list("application_id", flat=True)) == sorted(
        round_.applications.values_list("pk", flat=True)
    )
    FIGURES["import, worker killed"] = {"recovered_s": round(recovered, 1), "loaded_twice": 0}
    print(FIGURES)


def test_two_workers_share_a_registry_import_and_load_each_line_once(cluster):
    rows = 20_000  # ten chunks of 2,000 lines
    workers = [cluster.start("worker", BAEUM_IMPORT_CHUNK_LINES="2000") for _ in range(2)]

    started = time.monotonic()
    job = upload("social_security", registry_csv(range(800_000, 800_000 + rows)))

    assert wait_for(lambda: RegistryImportJob.objects.get(pk=job.pk).status == "succeeded", 180)
    took = time.monotonic() - started
    job.refresh_from_db()
    assert (job.rows_read, job.rows_rejected, job.errors) == (rows, 0, [])
    assert loaded_once(job, rows)
    assert set(import_chunk_entries(job).values_list("status", "runs")) == {("done", 1)}
    # Both workers took chunks of it.
    done_by = [w.log.read_text().count(f"registry import {job.pk}: chunk ") for w in workers]
    assert all(done_by) and sum(done_by) == 10, done_by
    FIGURES["import, two workers"] = {"rows": rows, "seconds": round(took, 1)}
    print(FIGURES)


def rescreen_dispatched(round_: Round, job_key: str) -> None:
    """Ask for a round's re-screen as a snapshot's activation does, sent after the commit."""
    with transaction.atomic():
        outbox_enqueue(
            round_rescreen_task, round_.pk, job_key, key=f"rescreen:{round_.pk}:{job_key}"
        )


def chunk_entries(round_: Round, job_key: str):
    return TaskOutbox.objects.filter(key__startswith=f"rescreen:{round_.pk}:{job_key}:")


def screened_once(round_: Round, job_key: str) -> bool:
    runs = ScreeningRun.objects.filter(application__round=round_, trigger_key=f"rescreen:{job_key}")
    per_application = runs.values("application_id").annotate(n=Count("id"))
    return runs.count() == round_.applications.count() and {r["n"] for r in per_application} == {1}


def test_two_workers_share_a_round_rescreen_and_screen_each_application_once(cluster):
    n = 3_000  # ten chunks of 300, each committed in threes of 100
    round_ = round_with(n, Application.Status.UNDER_REVIEW, offset=700_000)
    chunked = {"BAEUM_RESCREEN_CHUNK": "300", "BAEUM_RESCREEN_COMMIT": "100"}
    workers = [cluster.start("worker", **chunked) for _ in range(2)]

    started = time.monotonic()
    rescreen_dispatched(round_, "two")

    chunks = chunk_entries(round_, "two")
    assert wait_for(lambda: chunks.count() == 10 and not chunks.exclude(status="done"), 180)
    took = time.monotonic() - started
    assert screened_once(round_, "two")
    progress = round_rescreen_progress(round_id=round_.pk, job_key="two")
    assert progress == {"screened": n, "under_review": n, "chunks": 10, "chunks_done": 10}
    # Both workers took chunks of it.
    done_by = [w.log.read_text().count("rescreen two of round") for w in workers]
    assert all(done_by), done_by
    FIGURES["re-screen, two workers"] = {"applications": n, "seconds": round(took, 1)}
    print(FIGURES)


def test_worker_killed_mid_rescreen_has_its_chunk_redone_by_the_other_once(cluster):
    n = 8_000  # two chunks of 4,000, each committed in eights of 500
    round_ = round_with(n, Application.Status.UNDER_REVIEW, offset=600_000)
    chunked = {"BAEUM_RESCREEN_CHUNK": "4000", "BAEUM_RESCREEN_COMMIT": "500"}
    first_worker = cluster.start("worker", **chunked)
    rescreen_dispatched(round_, "killed")
    chunks = chunk_entries(round_, "killed")
    assert wait_for(lambda: chunks.count() == 2)
    first, second = chunks.order_by("pk")
    runs = ScreeningRun.objects.filter(application__round=round_, trigger_key="rescreen:killed")
    in_first = runs.filter(application_id__lte=first.args[3])
    # The first worker is inside the first chunk: stop it at its next commit, and kill it.
    assert wait_for(lambda: in_first.exists(), 120)
    held = HeldEntry(first.key)
    screened_before = in_first.count()
    assert 0 < screened_before < 4_000
    other_worker = cluster.start("worker", **chunked)
    assert wait_for(lambda: entry(second.key).status == "done", 120)

    cluster.kill(first_worker)
    killed_at = time.monotonic()
    held.release()

    # Its lease runs out; the sweeper sends the chunk again, and the other worker takes it.
    assert wait_for(lambda: entry(first.key).status == "done", 120)
    recovered = time.monotonic() - killed_at
    assert screened_once(round_, "killed")
    assert entry(first.key).runs == 2
    assert f"chunk {first.args[2]}-{first.args[3]}, " in other_worker.log.read_text()
    FIGURES["re-screen, worker killed"] = {
        "recovered_s": round(recovered, 1),
        "screened_before_kill": screened_before,
        "screened_twice": 0,
    }
    print(FIGURES)


def test_screening_on_submit_is_not_stuck_behind_a_long_job(cluster):
    round_ = round_with(1, Application.Status.UNDER_REVIEW, offset=800_000)
    cluster.start("worker", queues="default")
    rescreen_dispatched(round_, "behind")
    application = ApplicationFactory(status=Application.Status.SUBMITTED)
    Application.objects.filter(pk=application.pk).update(submitted_at=timezone.now())
    with transaction.atomic():
        outbox_enqueue(
            application_screen_task, application.pk, "submit:1", key=f"screen:{application.pk}"
        )

    # The worker on `default` screens the submitted application and leaves the re-screen,
    # on `long`, to another worker.
    assert wait_for(
        lambda: Application.objects.get(pk=application.pk).status != Application.Status.SUBMITTED
    )
    time.sleep(REDISPATCH + SWEEP)  # long enough for the sweeper to have sent it again
    assert entry(f"rescreen:{round_.pk}:behind").runs == 0
    cluster.start("worker", queues="long")
    assert wait_for(lambda: screened_once(round_, "behind"))


def finance_clients():
    preparer = UserFactory(role=Role.FINANCE, is_staff=True)
    return client_for(preparer)


class HeldRow:
    """Hold a row's lock from another connection until released; wait for a waiter."""

    def __init__(self, sql: str, params: list):
        db = connection.settings_dict
        self.conn = psycopg.connect(
            host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"]
        )
        self.conn.execute(sql, params)

    def waited_on(self) -> bool:
        db = connection.settings_dict
        waiting = (
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = %s AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        # Autocommit: inside one transaction pg_stat_activity would not change.
        with psycopg.connect(
            host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"], autocommit=True
        ) as probe:
            return wait_for(lambda: probe.execute(waiting, [db["NAME"]]).fetchone()[0] > 0, 60)

    def release(self) -> None:
        self.conn.rollback()
        self.conn.close()


def built_once(round_: Round, batch_id: int) -> None:
    payments = Payment.objects.filter(batch_id=batch_id)
    n = round_.applications.count()
    assert payments.count() == n == payments.values("application_id").distinct().count()
    assert Payment.objects.filter(round=round_).count() == n
    built = AuditEvent.objects.filter(object_id=str(batch_id), action="batch.built")
    assert built.count() == 1
    assert not BuildChunk.objects.filter(batch_id=batch_id, built_at__isnull=True).exists()


def test_two_workers_share_a_batch_build_and_pay_each_application_once(cluster):
    n = 3_000  # ten chunks of 300
    round_ = round_with(n, Application.Status.SELECTED, offset=900_000, status="selected")
    workers = [cluster.start("worker", BAEUM_BUILD_CHUNK="300") for _ in range(2)]

    started = time.monotonic()
    response = finance_clients().post("/api/v1/disbursements/", {"round": round_.pk})
    assert response.status_code == 201, response.content
    batch_id = response.json()["id"]

    assert wait_for(lambda: DisbursementBatch.objects.get(pk=batch_id).is_ready, 180)
    took = time.monotonic() - started
    built_once(round_, batch_id)
    assert BuildChunk.objects.filter(batch_id=batch_id).count() == 10
    # Both workers took chunks of it; the last one to commit finished it, once.
    done_by = [w.log.read_text().count(f"batch build {batch_id}: chunk") for w in workers]
    assert all(done_by) and sum(done_by) == 10, done_by
    finished = [w.log.read_text().count(", batch built") for w in workers]
    assert sum(finished) == 1, finished
    FIGURES["batch build, two workers"] = {"payments": n, "seconds": round(took, 1)}
    print(FIGURES)


def test_worker_killed_mid_batch_build_has_its_chunk_redone_by_the_other_once(cluster):
    n = 6_000  # three chunks of 2,000
    round_ = round_with(n, Application.Status.SELECTED, offset=700_000, status="selected")
    response = finance_clients().post("/api/v1/disbursements/", {"round": round_.pk})
    assert response.status_code == 201, response.content
    batch_id = response.json()["id"]
    # Cut here, with no worker up yet, so that the test knows the chunks in advance.
    with transaction.atomic():
        assert batch_build_dispatch(batch_id=batch_id, chunk_size=2_000) == 3
    first, *rest = BuildChunk.objects.filter(batch_id=batch_id).order_by("first")
    # The first worker takes the first chunk and waits, inside its transaction, on this.
    held = HeldRow(
        f"SELECT 1 FROM {BuildChunk._meta.db_table} WHERE id = %s FOR UPDATE",  # noqa: S608
        [first.pk],
    )
    first_worker = cluster.start("worker")
    assert held.waited_on(), first_worker.log.read_text()[-3000:]
    key = batch_build_chunk_key(batch_id, first.first)
    assert entry(key).status == "running"
    other_worker = cluster.start("worker")
    assert wait_for(
        lambda: all(entry(batch_build_chunk_key(batch_id, c.first)).status == "done" for c in rest),
        120,
    )
    assert not DisbursementBatch.objects.get(pk=batch_id).is_ready

    cluster.kill(first_worker)
    killed_at = time.monotonic()
    held.release()

    # Its lease runs out; the sweeper sends the chunk again, and the other worker takes it.
    assert wait_for(lambda: DisbursementBatch.objects.get(pk=batch_id).is_ready, 120)
    recovered = time.monotonic() - killed_at
    built_once(round_, batch_id)
    assert entry(key).runs == 2
    assert f"batch build {batch_id}: chunk {first.first}-{first.last}, " in (
        other_worker.log.read_text()
    )
    FIGURES["batch build, worker killed"] = {
        "recovered_s": round(recovered, 1),
        "chunk_payments_rolled_back": "all",
        "payments_doubled": 0,
    }
    print(FIGURES)


def test_broker_down_during_intake_answers_200_and_screens_everything_once_it_returns(
    cluster, redis
):
    round_ = RoundFactory()
    drafts = [ApplicationFactory(round=round_) for _ in range(7)]
    RRNS.update(a.applicant.rrn for a in drafts)
    # Two submitted with no worker up: their messages sit in Redis, which then dies.
    for application in drafts[:2]:
        response = client_for(application.applicant.user).post(
            f"/api/v1/applications/{application.pk}/submit/"
        )
        assert response.status_code == 200
    redis.stop()
    for application in drafts[2:]:
        response = client_for(application.applicant.user).post(
            f"/api/v1/applications/{application.pk}/submit/"
        )
        assert response.status_code == 200, response.content
        assert response.json()["status"] == "submitted"

    redis.start()
    back_at = time.monotonic()
    cluster.start("worker")

    ids = [a.pk for a in drafts]
    screened = Application.objects.filter(pk__in=ids, status=Application.Status.UNDER_REVIEW)
    assert wait_for(lambda: screened.count() == len(ids), 120)
    recovered = time.monotonic() - back_at
    runs = ScreeningRun.objects.filter(application_id__in=ids, trigger_key__startswith="submit:")
    assert runs.count() == len(ids)
    assert runs.values("application_id").distinct().count() == len(ids)
    sent = Notification.objects.filter(application_id__in=ids, kind="submitted", status="sent")
    assert wait_for(lambda: sent.count() == len(ids))
    FIGURES["intake, broker down"] = {
        "recovered_s": round(recovered, 1),
        "submits_answered_2xx": len(ids),
        "messages_lost_in_broker_recovered": 2,
    }
    print(FIGURES)


def test_broker_down_during_batch_creation_answers_201_and_the_batch_is_built(cluster, redis):
    n = 20
    round_ = round_with(n, Application.Status.SELECTED, offset=800_000, status="selected")
    client = finance_clients()
    redis.stop()
    first = client.post(
        "/api/v1/disbursements/", {"round": round_.pk}, HTTP_IDEMPOTENCY_KEY="batch-1"
    )
    replay = client.post(
        "/api/v1/disbursements/", {"round": round_.pk}, HTTP_IDEMPOTENCY_KEY="batch-1"
    )
    assert (first.status_code, replay.status_code) == (201, 201), first.content
    assert replay.json()["id"] == first.json()["id"]
    batch_id = first.json()["id"]
    assert DisbursementBatch.objects.get(pk=batch_id).build_status == "building"

    redis.start()
    back_at = time.monotonic()
    cluster.start("worker")

    assert wait_for(lambda: DisbursementBatch.objects.get(pk=batch_id).is_ready, 120)
    recovered = time.monotonic() - back_at
    payments = Payment.objects.filter(round=round_)
    assert payments.count() == n == payments.values("application_id").distinct().count()
    assert DisbursementBatch.objects.filter(round=round_).count() == 1
    FIGURES["batch creation, broker down"] = {"recovered_s": round(recovered, 1)}
    print(FIGURES)


def test_no_log_of_the_fault_tests_holds_a_raw_rrn():
    if not LOGS or not RRNS:
        pytest.skip("the fault tests did not run")
    needles = RRNS | {r.replace("-", "") for r in RRNS}
    for log in LOGS:
        text = log.read_text()
        assert text, log
        found = [n for n in needles if n in text]
        assert not found, (log.name, found[:3])
    assert settings.CELERY_WORKER_HIJACK_ROOT_LOGGER is False

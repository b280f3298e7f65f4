"""A batch build spread over Celery workers: one worker, then two, on rounds of one size.

1. Two selected scholarship rounds of --payments recipients each, with bank accounts
   (made in bulk, as bench/disbursement.py does).
2. A redis-server of the bench's own on a free port, and Celery workers (solo pool, on the
   `long` queue, as production runs them) against the bench database.
3. A batch opened on each round as finance opens one (`batch_create`, whose build goes
   through the task outbox): `batch_build_task` cuts it into chunk tasks of
   BAEUM_BUILD_CHUNK payable applications, which the workers share; the last chunk to
   commit marks the batch ready. Timed from the request to the batch ready, with 1 worker
   on the first round, then with 2 on the second. The workers are started (and ready)
   before the clock starts.

Prints both times and their ratio, and appends a section to bench/RESULTS.md (unless
--no-write).

    .venv/bin/python bench/build_workers.py [--payments 70000]

Uses (and recreates) the database in BENCH_BUILD_WORKERS_DATABASE_URL
(default postgres://postgres@127.0.0.1:5432/baeum_bench_build_workers).
"""

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.intake import recreate_database  # noqa: E402
from bench.rescreen_workers import free_port, start_redis, start_workers, stop, wait_for  # noqa: E402
from bench.screening import checkpoint, setup_django  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/baeum_bench_build_workers"


def make_round(n: int, prefix: str) -> int:
    """A selected scholarship round of n recipients, each with a bank account of their own."""
    from datetime import date, timedelta

    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from benefits.models import Applicant, Application, Program, Round
    from core.crypto import account_fingerprint

    program, _ = Program.objects.get_or_create(
        code="SCHOLARSHIP", defaults={"name": "Scholarship", "name_ko": "평생학습 장학금"}
    )
    now = timezone.now()
    round_ = Round.objects.create(
        program=program,
        name=f"Bench round {prefix}",
        year=2026,
        status=Round.Status.SELECTED,
        applications_open_at=now - timedelta(days=60),
        applications_close_at=now - timedelta(days=30),
        period_starts_on=date(2026, 1, 1),
        period_ends_on=date(2026, 12, 31),
        capacity=n,
        amount=1_000_000,
        budget=n * 1_000_000,
        ruleset_version="scholarship-2026.1",
    )
    User = get_user_model()
    base = 100_000_000_000 + (1 if prefix == "b" else 0) * 10_000_000
    for start in range(0, n, 10_000):
        stop_at = min(start + 10_000, n)
        users = User.objects.bulk_create(
            [User(username=f"{prefix}payee{i}", password="!") for i in range(start, stop_at)]
        )
        applicants = Applicant.objects.bulk_create(
            [
                Applicant(
                    user=user,
                    legal_name="김민준",
                    bank_code="004",
                    account_number=f"{base + i}",
                    account_fingerprint=account_fingerprint("004", f"{base + i}"),
                    account_holder="김민준",
                )
                for i, user in zip(range(start, stop_at), users, strict=True)
            ]
        )
        Application.objects.bulk_create(
            [
                Application(applicant=a, round=round_, status="selected", income_category="none")
                for a in applicants
            ]
        )
    return round_.pk


def timed_build(round_id: int, maker, workers: int, env: dict, log_dir: Path) -> dict:
    from django.db import connection
    from django.db.models import Count

    from benefits.models import Round
    from payments.models import BuildChunk, DisbursementBatch, Payment
    from payments.services import batch_create

    processes = start_workers(workers, env, log_dir)
    try:
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        checkpoint()
        started = time.perf_counter()
        batch = batch_create(round_=Round.objects.get(pk=round_id), actor=maker)
        created = time.perf_counter() - started
        ready = DisbursementBatch.objects.filter(
            pk=batch.pk, build_status=DisbursementBatch.BuildStatus.READY
        )
        if not wait_for(ready.exists, 3600, every=0.05):
            raise SystemExit(f"batch #{batch.pk}: not built within the hour")
        seconds = time.perf_counter() - started
    finally:
        stop(processes)
    payments = Payment.objects.filter(batch=batch, status=Payment.Status.PENDING)
    expected = batch.build_expected
    per_application = set(
        payments.values("application_id").annotate(n=Count("id")).values_list("n", flat=True)
    )
    if payments.count() != expected or per_application != {1}:
        raise SystemExit(f"batch #{batch.pk}: {payments.count()} payments for {expected}")
    line = f"batch build {batch.pk}: chunk "
    shares = [p.log.read_text().count(line) for p in processes]
    finished = sum(p.log.read_text().count(", batch built") for p in processes)
    return {
        "seconds": seconds,
        "create_s": created,
        "payments": expected,
        "chunks": BuildChunk.objects.filter(batch=batch).count(),
        "shares": shares,
        "finished": finished,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--payments", type=int, default=70_000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("needs redis-server")
    url = os.environ.get("BENCH_BUILD_WORKERS_DATABASE_URL", DEFAULT_URL)
    began = time.perf_counter()
    load = os.getloadavg()

    recreate_database(url)
    with tempfile.TemporaryDirectory(prefix="baeum-bench-build-") as tmp:
        tmp = Path(tmp)
        log_dir = tmp / "logs"
        log_dir.mkdir()
        setup_django(url, str(tmp / "data"))
        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group

        from config.celery import app as celery_app
        from core.roles import Role

        rounds = [make_round(args.payments, prefix) for prefix in ("a", "b")]
        maker = get_user_model().objects.create(username="maker")
        maker.groups.add(Group.objects.get(name=Role.FINANCE))
        setup_seconds = time.perf_counter() - began
        print(f"set-up: {setup_seconds:.0f} s", file=sys.stderr)

        port = free_port()
        redis = start_redis(port)
        broker = f"redis://127.0.0.1:{port}/0"
        # From here on this process publishes to the workers' broker instead of running
        # tasks itself.
        celery_app.conf.broker_url, celery_app.conf.task_always_eager = broker, False
        env = {**os.environ, "CELERY_BROKER_URL": broker, "BAEUM_LOG_LEVEL": "INFO"}
        try:
            one = timed_build(rounds[0], maker, 1, env, log_dir)
            print(f"1 worker: {one['seconds']:.1f} s", file=sys.stderr)
            two = timed_build(rounds[1], maker, 2, env, log_dir)
            print(f"2 workers: {two['seconds']:.1f} s", file=sys.stderr)
        finally:
            redis.kill()
            redis.wait(timeout=20)

    ratio = one["seconds"] / two["seconds"]
    rows = [
        f"| {n} | {r['seconds']:.1f} | {r['create_s']:.2f} | {r['chunks']} | {r['shares']} | "
        f"{r['payments'] / r['seconds']:,.0f} | {r['finished']} |"
        for n, r in ((1, one), (2, two))
    ]
    lines = [
        f"### Batch build over Celery workers — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `.venv/bin/python bench/build_workers.py --payments {args.payments}`. "
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, shared with other engineers' "
        f"test suites (load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the "
        "start); PostgreSQL and Redis on the same machine. Two selected scholarship rounds of "
        f"{args.payments:,} recipients with bank accounts; a batch opened on each with "
        "`batch_create` (its build sent through the outbox), cut into chunk tasks of "
        f"{settings.BAEUM_BUILD_CHUNK:,} payable applications, each one transaction; timed "
        "from the request to the batch marked ready by its last chunk, with the workers "
        f"(solo pool, `-Q long`) ready before the clock starts. Set-up took "
        f"{setup_seconds:.0f} s.",
        "",
        "| workers | seconds | of which the request | chunks | chunks per worker | "
        "payments/s | finished by |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: |",
        *rows,
        "",
        f"Two workers against one: **{ratio:.2f}×** as fast. Each batch has exactly one "
        "pending payment per application (checked after each), and one worker's last chunk "
        "finished it.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        with (ROOT / "bench" / "RESULTS.md").open("a", encoding="utf-8") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()

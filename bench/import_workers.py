"""A registry import spread over Celery workers: one worker, then two, on the same file.

1. A social-security registry of --rows rows (rrn_hmac, one row a person), written once.
2. For reference, the file imported in this process (`registry_import_run`: the same
   chunks, one after the other).
3. A redis-server of the bench's own on a free port, and Celery workers (solo pool, on the
   `long` queue, as production runs them) against the bench database.
4. The file uploaded again (`registry_import_create`, not timed) and its import asked for
   as an upload asks for it (`registry_import_run_task` through the task outbox): it reads
   the file through once, records one chunk task per BAEUM_IMPORT_CHUNK_LINES lines, which
   the workers share, and the last chunk records the finish (duplicate check and
   activation). Timed from the request to the job's success, with 1 worker, then with 2.
   The workers are started (and ready) before the clock starts.

Prints the times and their ratio, and appends a section to bench/RESULTS.md (unless
--no-write).

    .venv/bin/python bench/import_workers.py [--rows 1000000]

Uses (and recreates) the database in BENCH_WORKERS_DATABASE_URL
(default postgres://postgres@127.0.0.1:5432/baeum_bench_import_workers).
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

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/baeum_bench_import_workers"
KIND = "social_security"


def write_file(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", buffering=1 << 20) as f:
        f.write("rrn_hmac,status,district,valid_from,valid_to\n")
        for n in range(rows):
            status = "near_poor" if n % 3 else "basic_livelihood"
            f.write(f"{n:064x},{status},11440,2025-01-01,{'2026-12-31' if n % 2 else ''}\n")


def upload(path: Path):
    from django.core.files import File

    from eligibility.imports import registry_import_create

    with path.open("rb") as f:
        return registry_import_create(
            kind=KIND, uploaded_file=File(f, name=path.name), actor=None, schedule=False
        )


def checked(job, rows: int) -> None:
    from eligibility.models import RECORD_MODELS

    job.refresh_from_db()
    loaded = RECORD_MODELS[KIND].objects.filter(snapshot_id=job.snapshot_id)
    if (job.status, job.rows_read, loaded.count()) != ("succeeded", rows, rows):
        raise SystemExit(f"import {job.pk}: {job.status}, {job.rows_read} read, {job.errors}")


def timed_import(path: Path, rows: int, workers: int, env: dict, log_dir: Path) -> dict:
    from django.db import connection, transaction

    from core.outbox import outbox_enqueue
    from eligibility.models import RegistryImportChunk, RegistryImportJob
    from eligibility.tasks import registry_import_run_task

    job = upload(path)
    processes = start_workers(workers, env, log_dir)
    try:
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        checkpoint()
        started = time.perf_counter()
        with transaction.atomic():
            outbox_enqueue(registry_import_run_task, job.pk, key=f"registry_import:{job.pk}")
        finished = RegistryImportJob.objects.filter(
            pk=job.pk, status__in=[RegistryImportJob.Status.SUCCEEDED, "failed"]
        )
        if not wait_for(finished.exists, 3600, every=0.05):
            raise SystemExit(f"{workers} workers: not finished within the hour")
        seconds = time.perf_counter() - started
    finally:
        stop(processes)
    checked(job, rows)
    line = f"registry import {job.pk}: chunk "
    shares = [p.log.read_text().count(line) for p in processes]
    chunks = RegistryImportChunk.objects.filter(snapshot_id=job.snapshot_id).count()
    return {"seconds": seconds, "chunks": chunks, "shares": shares}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("needs redis-server")
    url = os.environ.get("BENCH_WORKERS_DATABASE_URL", DEFAULT_URL)
    load = os.getloadavg()

    recreate_database(url)
    with tempfile.TemporaryDirectory(prefix="baeum-bench-import-") as tmp:
        tmp = Path(tmp)
        log_dir = tmp / "logs"
        log_dir.mkdir()
        setup_django(url, str(tmp / "data"))
        from django.conf import settings

        from config.celery import app as celery_app
        from eligibility.imports import registry_import_run

        path = tmp / f"{KIND}.csv"
        write_file(path, args.rows)
        size_mb = path.stat().st_size / 1e6

        job = upload(path)
        checkpoint()
        started = time.perf_counter()
        registry_import_run(job_id=job.pk)
        inline = time.perf_counter() - started
        checked(job, args.rows)
        print(f"in this process: {inline:.1f} s", file=sys.stderr)

        port = free_port()
        redis = start_redis(port)
        broker = f"redis://127.0.0.1:{port}/0"
        # From here on this process publishes to the workers' broker instead of running
        # tasks itself.
        celery_app.conf.broker_url, celery_app.conf.task_always_eager = broker, False
        env = {**os.environ, "CELERY_BROKER_URL": broker, "BAEUM_LOG_LEVEL": "INFO"}
        try:
            one = timed_import(path, args.rows, 1, env, log_dir)
            print(f"1 worker: {one['seconds']:.1f} s", file=sys.stderr)
            two = timed_import(path, args.rows, 2, env, log_dir)
            print(f"2 workers: {two['seconds']:.1f} s", file=sys.stderr)
        finally:
            redis.kill()
            redis.wait(timeout=20)

    ratio = one["seconds"] / two["seconds"]
    lines = [
        f"### Registry import over Celery workers — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `.venv/bin/python bench/import_workers.py --rows {args.rows}`. Machine: "
        f"{platform.machine()}, {os.cpu_count()} cores, shared with other engineers' test "
        f"suites (load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the start); "
        f"PostgreSQL on the same machine. A social-security registry of {args.rows:,} rows "
        f"({size_mb:.0f} MB, rrn_hmac), uploaded sealed (not timed), its import requested "
        "through the outbox (`registry_import_run_task`): one read of the whole file to cut "
        f"it into chunk tasks of {settings.BAEUM_IMPORT_CHUNK_LINES:,} lines, each checked "
        "and COPYed in one transaction by whichever worker takes it, then the finish "
        "(duplicate check over the snapshot, activation). Timed from the request to the "
        "job's success, with the workers (solo pool, `-Q long`) ready before the clock "
        "starts; each import supersedes the one before.",
        "",
        "| workers | seconds | chunks | chunks per worker | rows/s |",
        "| --- | ---: | ---: | --- | ---: |",
        f"| 1 | {one['seconds']:.1f} | {one['chunks']} | {one['shares']} | "
        f"{args.rows / one['seconds']:,.0f} |",
        f"| 2 | {two['seconds']:.1f} | {two['chunks']} | {two['shares']} | "
        f"{args.rows / two['seconds']:,.0f} |",
        "",
        f"Two workers against one: **{ratio:.2f}×** as fast. Every row loaded once (rows "
        f"read and rows in the snapshot checked after each). For reference, "
        f"`registry_import_run` of the same file in the bench's own process (the same "
        f"chunks one after the other, no broker): {inline:.1f} s "
        f"({args.rows / inline:,.0f} rows/s).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        with (ROOT / "bench" / "RESULTS.md").open("a", encoding="utf-8") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()

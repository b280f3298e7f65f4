"""A round's re-screen spread over Celery workers: one worker, then two, on the same round.

1. As bench/screening.py: --applications applicants, the five registries of --rows rows
   imported through `registry_import_run`, and a scholarship round with one application
   under review per applicant.
2. A redis-server of the bench's own on a free port, and Celery workers (solo pool, on the
   `long` queue, as production runs them) against the bench database.
3. The re-screen asked for as a snapshot's activation asks for it (`round_rescreen_task`
   through the task outbox): it records one chunk task per BAEUM_RESCREEN_CHUNK
   applications, which the workers share. Timed from the request to the last chunk done,
   with 1 worker (job `w1`), then with 2 (job `w2`): each job is a new trigger, so each
   screens the whole round. The workers are started (and ready) before the clock starts.

Prints both times and their ratio, and appends a section to bench/RESULTS.md (unless
--no-write).

    .venv/bin/python bench/rescreen_workers.py [--rows 1000000] [--applications 100000]

Uses (and recreates) the database in BENCH_WORKERS_DATABASE_URL
(default postgres://postgres@127.0.0.1:5432/baeum_bench_workers).
"""

import argparse
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.intake import recreate_database  # noqa: E402
from bench.screening import (  # noqa: E402
    KINDS,
    checkpoint,
    make_people,
    make_round,
    real_import,
    setup_django,
    write_csv,
)

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/baeum_bench_workers"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, seconds: float, every: float = 0.1) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return False


def start_redis(port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [
            *(shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def up():
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    if not wait_for(up, 20):
        raise SystemExit("redis-server did not start")
    return process


def start_workers(n: int, env: dict, log_dir: Path) -> list[subprocess.Popen]:
    workers = []
    for i in range(n):
        log = log_dir / f"worker-{len(list(log_dir.iterdir()))}-{i}.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "celery", "-A", "config", "worker"),
                    *("--pool=solo", "-Q", "long", "-n", f"{log.stem}@%h"),
                    *("--without-heartbeat", "--without-gossip", "--without-mingle"),
                    "--loglevel=INFO",
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        process.log = log
        workers.append(process)
    for process in workers:
        if not wait_for(lambda p=process: "ready." in p.log.read_text(), 120):
            raise SystemExit(f"worker did not start: {process.log.read_text()[-2000:]}")
    return workers


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def timed_rescreen(round_id: int, job_key: str, workers: int, env: dict, log_dir: Path) -> dict:
    from django.db import connection, transaction

    from benefits.models import Application
    from core.models import TaskOutbox
    from core.outbox import outbox_enqueue
    from eligibility.models import ScreeningRun
    from eligibility.screening_tasks import round_rescreen_task

    processes = start_workers(workers, env, log_dir)
    try:
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        checkpoint()
        key = f"rescreen:{round_id}:{job_key}"
        chunks = TaskOutbox.objects.filter(key__startswith=f"{key}:")
        started = time.perf_counter()
        with transaction.atomic():
            outbox_enqueue(round_rescreen_task, round_id, job_key, key=key)

        def finished() -> bool:
            dispatched = TaskOutbox.objects.filter(key=key, status=TaskOutbox.Status.DONE)
            return dispatched.exists() and not chunks.exclude(status=TaskOutbox.Status.DONE)

        if not wait_for(finished, 3600, every=0.05):
            raise SystemExit(f"{job_key}: not finished within the hour")
        seconds = time.perf_counter() - started
    finally:
        stop(processes)
    runs = ScreeningRun.objects.filter(
        application__round_id=round_id, trigger_key=f"rescreen:{job_key}"
    )
    under_review = Application.objects.filter(round_id=round_id).count()
    screened = runs.values("application_id").distinct().count()
    if runs.count() != under_review or screened != under_review:
        raise SystemExit(f"{job_key}: {runs.count()} runs for {under_review} applications")
    line = f"rescreen {job_key} of round {round_id}: chunk "
    shares = [p.log.read_text().count(line) for p in processes]
    return {"seconds": seconds, "chunks": chunks.count(), "shares": shares}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--applications", type=int, default=100_000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("needs redis-server")
    url = os.environ.get("BENCH_WORKERS_DATABASE_URL", DEFAULT_URL)
    began = time.perf_counter()
    load = os.getloadavg()

    recreate_database(url)
    with tempfile.TemporaryDirectory(prefix="baeum-bench-workers-") as tmp:
        tmp = Path(tmp)
        log_dir = tmp / "logs"
        log_dir.mkdir()
        setup_django(url, str(tmp / "data"))
        from django.conf import settings

        from config.celery import app as celery_app

        people = make_people(args.applications)
        hmacs = [h for _, h, _ in people]
        districts = [d for _, _, d in people]
        for kind in KINDS:
            path = tmp / f"{kind}.csv"
            write_csv(path, kind, args.rows, hmacs, districts)
            real_import(kind, path)
            path.unlink()
            print(f"{kind} imported", file=sys.stderr)
        round_id = make_round(people, args.rows)
        del people, hmacs, districts
        setup_seconds = time.perf_counter() - began

        port = free_port()
        redis = start_redis(port)
        broker = f"redis://127.0.0.1:{port}/0"
        # From here on this process publishes to the workers' broker instead of running
        # tasks itself.
        celery_app.conf.broker_url, celery_app.conf.task_always_eager = broker, False
        env = {
            **os.environ,
            "CELERY_BROKER_URL": broker,
            "BAEUM_LOG_LEVEL": "INFO",
        }
        # For reference: the whole round in this process, one facts query for the round.
        from django.db import connection

        from benefits.rescreen import round_rescreen

        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        checkpoint()
        started = time.perf_counter()
        round_rescreen(round_id=round_id, job_key="inline")
        inline = time.perf_counter() - started
        print(f"in this process: {inline:.1f} s", file=sys.stderr)
        try:
            one = timed_rescreen(round_id, "w1", 1, env, log_dir)
            print(f"1 worker: {one['seconds']:.1f} s", file=sys.stderr)
            two = timed_rescreen(round_id, "w2", 2, env, log_dir)
            print(f"2 workers: {two['seconds']:.1f} s", file=sys.stderr)
        finally:
            redis.kill()
            redis.wait(timeout=20)

    ratio = one["seconds"] / two["seconds"]
    lines = [
        f"### Round re-screen over Celery workers — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `.venv/bin/python bench/rescreen_workers.py --rows {args.rows} "
        f"--applications {args.applications}`. Machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, shared with other engineers' test suites (load average "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the start); PostgreSQL on the "
        "same machine. A scholarship round of "
        f"{args.applications:,} applications under review against five registries of "
        f"{args.rows:,} rows; the re-screen requested through the outbox "
        f"(`round_rescreen_task`) and cut into chunk tasks of "
        f"{settings.BAEUM_RESCREEN_CHUNK:,} applications, committed every "
        f"{settings.BAEUM_RESCREEN_COMMIT:,}; timed from the request to the last chunk "
        "done, with the workers (solo pool, `-Q long`) ready before the clock starts. "
        f"Set-up took {setup_seconds:.0f} s.",
        "",
        "| workers | seconds | chunks | chunks per worker | applications/s |",
        "| --- | ---: | ---: | --- | ---: |",
        f"| 1 | {one['seconds']:.1f} | {one['chunks']} | {one['shares']} | "
        f"{args.applications / one['seconds']:,.0f} |",
        f"| 2 | {two['seconds']:.1f} | {two['chunks']} | {two['shares']} | "
        f"{args.applications / two['seconds']:,.0f} |",
        "",
        f"Two workers against one: **{ratio:.2f}×** as fast. Each application was screened "
        "exactly once per job (one run per application, checked after each). For "
        f"reference, `round_rescreen` of the same round in the bench's own process (one "
        f"facts query for the whole round, no broker): {inline:.1f} s.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        with (ROOT / "bench" / "RESULTS.md").open("a", encoding="utf-8") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()

"""The bank files of an approved batch of N payments on PostgreSQL, as a city-wide round makes them.

1. A selected round of --payments recipients with bank accounts, its batch built, submitted and
   approved (`bench/disbursement.py`'s round; untimed).
2. Timed: the CSV and the pain.001 generated, the pain.001 XSD- and total-validated, both stored
   encrypted (`bank_files_generate_task`, what approval queues), then both downloaded and read
   whole by a second finance user (`bank_file_for_download`).
3. Timed without the database: the same transfers, held in memory, written to CSV and to
   pain.001 and the pain.001 validated (`payments.bankfiles`), so the writer and validator
   show apart from the database and the encryption.

    .venv/bin/python bench/bankfiles.py [--payments 70000] [--repeat 3] [--no-write] [--profile]

With --repeat N the files are made (and the memory steps run) N times, the stored files
deleted between runs, and the best time is reported: the machine is shared.

Uses (and recreates) the database in BENCH_BANKFILES_DATABASE_URL
(default postgres://postgres@127.0.0.1:5432/baeum_bench_bankfiles).
"""

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import bench.disbursement as disbursement  # noqa: E402
from bench.disbursement import make_round, timed  # noqa: E402
from bench.intake import recreate_database  # noqa: E402
from bench.screening import setup_django  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/baeum_bench_bankfiles"


def approved_batch(round_id: int):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection

    from benefits.models import Round
    from core.roles import Role
    from payments import services

    User = get_user_model()
    finance = Group.objects.get(name=Role.FINANCE)
    maker = User.objects.create(username="maker")
    checker = User.objects.create(username="checker")
    maker.groups.add(finance)
    checker.groups.add(finance)
    batch = services.batch_build(
        batch_id=services.batch_create(round_=Round.objects.get(pk=round_id), actor=maker).pk
    )
    batch = services.batch_submit(batch=batch, actor=maker)
    batch = services.batch_approve(batch=batch, actor=checker)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return batch, maker


def download_both(batch, actor) -> int:
    from payments.exports import bank_file_for_download
    from payments.models import BankFile

    size = 0
    for fmt in (BankFile.Format.CSV, BankFile.Format.PAIN001):
        _, chunks = bank_file_for_download(batch=batch, fmt=fmt, actor=actor)
        size += sum(len(chunk) for chunk in chunks)
    return size


def pure(batch) -> dict:
    """Write and validate the batch's transfers from memory, without the database."""
    from payments.bankfiles import validate_pain001, write_csv, write_pain001
    from payments.exports import _batch_totals, batch_header, transfer_lines

    lines = list(transfer_lines(batch))
    count, total = _batch_totals(batch)
    header = batch_header(batch, count=count, total=total)
    figures = {}
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        write_csv(lines, out)
        figures["csv"] = time.perf_counter() - t0
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        write_pain001(header, lines, out)
        figures["write"] = time.perf_counter() - t0
        out.seek(0)
        t0 = time.perf_counter()
        validate_pain001(out)
        figures["validate"] = time.perf_counter() - t0
    return figures


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--payments", type=int, default=70_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of N")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--profile", action="store_true", help="cProfile each step to stderr")
    args = parser.parse_args()
    disbursement.PROFILE = args.profile
    url = os.environ.get("BENCH_BANKFILES_DATABASE_URL", DEFAULT_URL)
    n = args.payments

    load = os.getloadavg()[0]
    recreate_database(url)
    with tempfile.TemporaryDirectory(prefix="baeum-bench-bankfiles-") as tmp:
        setup_django(url, str(Path(tmp) / "data"))
        from django.db import connection

        from config.celery import app
        from payments.models import BankFile
        from payments.tasks import bank_files_generate_task

        # Approval queues the files for a worker; this script makes them itself, timed.
        app.conf.task_always_eager = False
        app.conf.broker_url = "memory://"

        t0 = time.perf_counter()
        batch, maker = approved_batch(make_round(n))
        print(f"approved batch of {n}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)

        runs = []
        for attempt in range(args.repeat):
            if attempt:
                for stored in BankFile.objects.filter(batch=batch):
                    stored.file.delete(save=False)
                    stored.delete()
            _, generate_s, generate_rss = timed(lambda: bank_files_generate_task(batch.pk))
            files = {f.format: f for f in BankFile.objects.filter(batch=batch)}
            assert all(f.payments_count == n for f in files.values()), files
            size, download_s, download_rss = timed(lambda: download_both(batch, maker))
            print(f"generate {generate_s:.2f} s, download {download_s:.2f} s", file=sys.stderr)
            runs.append((generate_s, download_s, generate_rss, download_rss, pure(batch)))
        generate_s = min(run[0] for run in runs)
        download_s = min(run[1] for run in runs)
        generate_rss = max(run[2] for run in runs)
        download_rss = max(run[3] for run in runs)
        figures = {key: min(run[4][key] for run in runs) for key in runs[0][4]}

    csv_mb = files[BankFile.Format.CSV].size / 2**20
    xml_mb = files[BankFile.Format.PAIN001].size / 2**20
    total_s = generate_s + download_s
    lines = [
        f"### Bank files — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `.venv/bin/python bench/bankfiles.py --payments {n}` · PostgreSQL "
        f"{connection.pg_version // 10000} · {platform.machine()}, {os.cpu_count()} cores "
        "(shared)",
        "",
        f"Best of {args.repeat} runs; load average before the run {load:.1f}.",
        "",
        "| step | time | per 1,000 payments | peak RSS |",
        "|---|---|---|---|",
        f"| generate CSV ({csv_mb:.0f} MB) + pain.001 ({xml_mb:.0f} MB), validate, store "
        f"encrypted | {generate_s:.2f} s | {generate_s / n * 1000 * 1000:.0f} ms | "
        f"{generate_rss:.0f} MB |",
        f"| download both, read whole ({size / 2**20:.0f} MB) | {download_s:.2f} s | "
        f"{download_s / n * 1000 * 1000:.0f} ms | {download_rss:.0f} MB |",
        f"| **bank-files stage (generate + download)** | **{total_s:.2f} s** | "
        f"**{total_s / n * 1000 * 1000:.0f} ms** | |",
        f"| of which, from memory: write CSV | {figures['csv']:.2f} s | | |",
        f"| of which, from memory: write pain.001 | {figures['write']:.2f} s | | |",
        f"| of which, from memory: validate pain.001 | {figures['validate']:.2f} s | | |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        with (ROOT / "bench" / "RESULTS.md").open("a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()

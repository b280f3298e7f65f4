"""Server time of the staff workbench's heaviest pages on a round of 100,000 applications.

1. A round of --applications applications (made in bulk): half under review, half
   selected, each with a current screening run (one in ten found a duplicate, outcomes
   mixed), applicants spread over the 25 districts. With --shared-every N, every N-th
   selected applicant gives the previous one's bank account, so that the batch's
   pre-release audit has flagged payments to list (two per account).
2. A disbursement batch of the selected half, built by the services (`batch_create`,
   `batch_build`): --applications / 2 payments, before approval (so the batch page also
   computes its pre-release audit).
3. Each page (and the API's batch and audit answers) is requested in-process through
   Django's test client, signed in as the role that reads it, --repeat times after one
   warm-up; the time is the whole request (middleware, queries, template), i.e. the
   server's side of the page. The batch page shows the audit as its build read it (a kept
   reading younger than BAEUM_AUDIT_MAX_AGE); two more rows time reading it again: the
   page's button, and a view whose reading is too old.

    .venv/bin/python bench/workbench.py [--applications 100000] [--repeat 7] \
        [--shared-every 0] [--queries]

Uses (and recreates) the database in BENCH_WORKBENCH_DATABASE_URL
(default postgres://postgres@127.0.0.1:5432/baeum_bench_workbench).
"""

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.intake import recreate_database  # noqa: E402
from bench.screening import setup_django  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/baeum_bench_workbench"
CHUNK = 10_000
NAMES = "김이박최정강조윤장임한오서신권황안송류홍"


def make_round(n: int, shared_every: int = 0) -> int:
    """A selected scholarship round of n applications; the second half selected."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from benefits.models import Applicant, Application, Program, Round
    from core.crypto import account_fingerprint
    from core.districts import SEOUL_DISTRICTS
    from eligibility.models import ScreeningRun

    districts = sorted(SEOUL_DISTRICTS)
    program, _ = Program.objects.get_or_create(
        code="SCHOLARSHIP", defaults={"name": "Scholarship", "name_ko": "평생학습 장학금"}
    )
    now = timezone.now()
    round_ = Round.objects.create(
        program=program,
        name="Bench round",
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

    def account(i: int) -> str:
        shared = shared_every and i > n // 2 and (i - n // 2) % shared_every == 0
        return f"{100000000000 + i - 1 if shared else 100000000000 + i}"

    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        users = User.objects.bulk_create(
            [User(username=f"applicant{i}", password="!") for i in range(start, stop)]
        )
        applicants = Applicant.objects.bulk_create(
            [
                Applicant(
                    user=user,
                    legal_name=NAMES[i % len(NAMES)] + "민준",
                    birth_date=date(1960, 1, 1) + timedelta(days=i % 15000),
                    district=districts[i % 25],
                    bank_code="004",
                    account_number=account(i),
                    account_fingerprint=account_fingerprint("004", account(i)),
                    account_holder="김민준",
                )
                for i, user in zip(range(start, stop), users, strict=True)
            ]
        )
        applications = Application.objects.bulk_create(
            [
                Application(
                    applicant=a,
                    round=round_,
                    status="under_review" if i < n // 2 else "selected",
                    income_category="basic_livelihood",
                    submitted_at=now - timedelta(days=30, seconds=n - i),
                )
                for i, a in zip(range(start, stop), applicants, strict=True)
            ]
        )
        ScreeningRun.objects.bulk_create(
            [
                ScreeningRun(
                    application=a,
                    trigger_key="bench",
                    ruleset_version="scholarship-2026.1",
                    outcome=("eligible", "needs_review", "ineligible")[i % 3],
                    duplicate_found=i % 10 == 0,
                    rules=[{"rule": "income_status", "outcome": "pass", "code": "x"}],
                )
                for i, a in zip(range(start, stop), applications, strict=True)
            ]
        )
    return round_.pk


def staff_user(username: str, role: str):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    user = get_user_model().objects.create_user(username=username, password="!")
    user.groups.add(Group.objects.get(name=role))
    return user


def build_batch(round_id: int, maker) -> int:
    from benefits.models import Round
    from payments.services import batch_build, batch_create

    batch = batch_create(round_=Round.objects.get(pk=round_id), actor=maker)
    return batch_build(batch_id=batch.pk).pk


def slowest_queries(client, url: str, n: int = 3) -> list[tuple[float, str]]:
    """The page's slowest queries (ms, start of the SQL), to see where its time goes."""
    from django.db import connection

    timings = []

    def timed(execute, sql, params, many, context):
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            timings.append(((time.perf_counter() - t0) * 1000, sql[:160]))

    with connection.execute_wrapper(timed):
        client.get(url)
    return sorted(timings, reverse=True)[:n]


def time_page(client, url: str, repeat: int, method: str = "get") -> dict:
    """GET a page (200), or POST a button's form (302), once to warm up, then `repeat` times."""
    expected = 200 if method == "get" else 302
    request = getattr(client, method)
    response = request(url)  # warm-up: sessions, content types, the planner's caches
    assert response.status_code == expected, (url, response.status_code)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        response = request(url)
        times.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == expected
    return {"median": statistics.median(times), "max": max(times), "bytes": len(response.content)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--applications", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument(
        "--shared-every",
        type=int,
        default=0,
        help="every N-th selected applicant gives the previous one's account (0: none)",
    )
    parser.add_argument("--queries", action="store_true", help="show each page's slowest queries")
    args = parser.parse_args()
    url = os.environ.get("BENCH_WORKBENCH_DATABASE_URL", DEFAULT_URL)
    recreate_database(url)
    setup_django(url, tempfile.mkdtemp(prefix="baeum-bench-workbench-"))

    from django.conf import settings
    from django.db import connection
    from django.test import Client

    from core.roles import Role, ensure_roles

    ensure_roles()
    t0 = time.perf_counter()
    round_id = make_round(args.applications, args.shared_every)
    caseworker = staff_user("bench-caseworker", Role.CASEWORKER)
    finance = staff_user("bench-finance", Role.FINANCE)
    batch_id = build_batch(round_id, finance)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    print(f"setup: {time.perf_counter() - t0:.1f} s", file=sys.stderr)

    reviewer, payer = Client(), Client()
    reviewer.force_login(caseworker)
    payer.force_login(finance)
    last_page = args.applications // 2 // 50
    pages = [
        ("queue, default (under review, 50 a page)", reviewer, "/staff/review/"),
        ("queue, flag=duplicate", reviewer, "/staff/review/?flag=duplicate"),
        ("queue, district + name search", reviewer, "/staff/review/?district=11440&q=김"),
        ("queue, RRN prefix search", reviewer, "/staff/review/?rrn=600101"),
        (f"queue, last page ({last_page})", reviewer, f"/staff/review/?page={last_page}"),
        ("batch page (draft, with the pre-release audit)", payer, f"/staff/batches/{batch_id}/"),
        ("batch page, payments search by name", payer, f"/staff/batches/{batch_id}/?q=박"),
        (
            "batch page's 'read the audit again' (POST: the whole audit read and kept)",
            payer,
            f"/staff/batches/{batch_id}/audit/",
            "post",
        ),
        (
            "batch page, its reading older than BAEUM_AUDIT_MAX_AGE (read again on view)",
            payer,
            f"/staff/batches/{batch_id}/",
            "stale",
        ),
        ("batches list", payer, "/staff/batches/"),
        ("API: the batch (with its audit summary)", payer, f"/api/v1/disbursements/{batch_id}/"),
        ("API: the batch's audit list", payer, f"/api/v1/disbursements/{batch_id}/audit/"),
    ]
    shared = (
        f", every {args.shared_every}th selected applicant sharing the previous one's account"
        if args.shared_every
        else ""
    )
    print(
        f"Staff workbench pages, {args.applications:,} applications "
        f"({args.applications // 2:,} under review, a batch of {args.applications // 2:,} "
        f"payments{shared}); PostgreSQL {connection.pg_version // 10000}, Python "
        f"{platform.python_version()}, {os.cpu_count()} cores; median of {args.repeat}:"
    )
    print("| page | median ms | max ms |")
    print("|---|---:|---:|")
    for name, client, path, *how in pages:
        method = how[0] if how else "get"
        if method == "stale":  # every reading is too old: each view reads the audit again
            settings.BAEUM_AUDIT_MAX_AGE, method = timedelta(0), "get"
        result = time_page(client, path, args.repeat, method)
        print(f"| {name} | {result['median']:.0f} | {result['max']:.0f} |")
        if args.queries and method == "get":
            for ms, sql in slowest_queries(client, path):
                print(f"    {ms:7.1f} ms  {sql}", file=sys.stderr)


if __name__ == "__main__":
    main()

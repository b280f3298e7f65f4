"""Intake throughput: application create (with Idempotency-Key) + submit, against a bare endpoint.

Both run in the same gunicorn (2 sync workers, persistent DB connections) on PostgreSQL,
with 16 concurrent clients, one after the other in the same run. Prints requests/s,
p50/p99 and the ratio, and appends them to bench/RESULTS.md.

    .venv/bin/python bench/intake.py [--seconds 20] [--clients 16]

Uses (and recreates) the database in BENCH_DATABASE_URL
(default postgres://postgres@127.0.0.1:5432/baeum_bench).
"""

import argparse
import http.client
import importlib
import json
import multiprocessing as mp
import os
import platform
import socket
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/baeum_bench"
BENCH_BROKER = "redis://127.0.0.1:6379/14"
TRAINING = {
    "course_id": "AIG20260001",
    "course_name": "빅데이터 분석 실무",
    "institution": "서울직업전문학교",
    "starts_on": "2026-12-01",
    "ends_on": "2027-03-31",
    "weekly_hours": 15,
}


def recreate_database(url: str) -> None:
    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    env = {
        **os.environ,
        "PGHOST": parsed.hostname or "127.0.0.1",
        "PGPORT": str(parsed.port or 5432),
        "PGUSER": parsed.username or "postgres",
    }
    subprocess.run(["dropdb", "--if-exists", "--force", name], env=env, check=True)
    subprocess.run(["createdb", name], env=env, check=True)


def prepare(url: str, applicants: int) -> tuple[int, list[tuple[str, int]]]:
    """Migrate, create an open round and citizens with tokens; return (round id, tokens)."""
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from bench.bare import TABLE_SQL
    from benefits.models import Applicant, Program, Round
    from core.crypto import account_fingerprint, rrn_hmac
    from core.roles import Role

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(TABLE_SQL)
    program, _ = Program.objects.get_or_create(
        code="SCHOLARSHIP", defaults={"name": "Scholarship", "name_ko": "장학금"}
    )
    now = timezone.now()
    round_ = Round.objects.create(
        program=program,
        name="bench",
        year=now.year,
        status="open",
        applications_open_at=now - timedelta(days=1),
        applications_close_at=now + timedelta(days=30),
        period_starts_on=date(now.year, 1, 1),
        period_ends_on=date(now.year, 12, 31),
        capacity=100_000,
        amount=1_000_000,
        budget=100_000 * 1_000_000,
        ruleset_version="bench",
    )
    User = get_user_model()
    users = User.objects.bulk_create(
        [User(username=f"bench{i}", password="!") for i in range(applicants)], batch_size=2000
    )
    Group.objects.get(name=Role.CITIZEN).user_set.add(*users)
    tokens = Token.objects.bulk_create(
        [Token(user=u, key=Token.generate_key()) for u in users], batch_size=2000
    )
    rows = []
    for i, user in enumerate(users):
        born = date(1960, 1, 1) + timedelta(days=i % 15000)
        rrn = f"{born:%y%m%d}{1 if born.year < 2000 else 3}{i:06d}"
        account = f"{100000000000 + i}"
        # The encrypted fields take plaintext and encrypt on the way to the database.
        rows.append(
            Applicant(
                user=user,
                legal_name="벤치",
                rrn=rrn,
                rrn_hmac=rrn_hmac(rrn),
                birth_date=born,
                phone="010-1234-5678",
                email=f"b{i}@example.org",
                district="11440",
                address="서울",
                bank_code="004",
                account_number=account,
                account_fingerprint=account_fingerprint("004", account),
                account_holder="벤치",
                consent_data_checks=True,
                consent_at=now,
            )
        )
    Applicant.objects.bulk_create(rows, batch_size=2000)
    connection.close()
    return round_.pk, [(t.key, t.user_id) for t in tokens]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(url: str, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DB_CONN_MAX_AGE": "600",
        "BAEUM_BENCH_ENDPOINTS": "1",
        "DJANGO_DEBUG": "0",
        "BAEUM_LOG_LEVEL": "WARNING",
        # Production shape: screening and notifications go to the broker for a worker,
        # not into the request; nothing consumes them here and the queue is flushed after.
        "CELERY_BROKER_URL": BENCH_BROKER,
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--worker-class",
            "sync",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("gunicorn did not start")


def _request(port: int, path: str, body: dict, token: str, key: str | None = None):
    headers = {"Content-Type": "application/json", "Authorization": f"Token {token}"}
    if key:
        headers["Idempotency-Key"] = key
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", path, body=json.dumps(body), headers=headers)
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, payload, time.perf_counter() - started


def client_loop(args) -> tuple[list[float], int, int]:
    mode, port, round_id, tokens, seconds, warmup = args
    latencies, errors, done = [], 0, 0
    start = time.perf_counter()
    end = start + warmup + seconds
    i = 0
    while time.perf_counter() < end and i < len(tokens):
        token = tokens[i][0]
        measuring = time.perf_counter() >= start + warmup
        if mode == "bare":
            status, _, took = _request(
                port,
                "/bench/bare/",
                {"round": round_id, "income_category": "near_poor", **TRAINING},
                token,
            )
            sample = [(status, took, 201)]
        else:
            status, payload, took = _request(
                port,
                "/api/v1/applications/",
                {"round": round_id, "income_category": "near_poor", "training": TRAINING},
                token,
                key=f"intake-{i}",
            )
            sample = [(status, took, 201)]
            if status == 201:
                app_id = json.loads(payload)["id"]
                s2, _, t2 = _request(port, f"/api/v1/applications/{app_id}/submit/", {}, token)
                sample.append((s2, t2, 200))
        i += 1
        if measuring:
            for status, took, expected in sample:
                latencies.append(took)
                done += 1
                if status != expected:
                    errors += 1
    return latencies, done, errors


def run_mode(mode, port, round_id, token_slices, seconds, warmup):
    with mp.Pool(len(token_slices)) as pool:
        started = time.perf_counter()
        results = pool.map(
            client_loop, [(mode, port, round_id, s, seconds, warmup) for s in token_slices]
        )
        elapsed = time.perf_counter() - started - warmup
    latencies = sorted(x for r in results for x in r[0])
    done = sum(r[1] for r in results)
    errors = sum(r[2] for r in results)

    def pct(p):
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000

    return {
        "mode": mode,
        "requests": done,
        "errors": errors,
        "rps": done / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
    }


def server_cost(round_id: int, tokens: list[tuple[str, int]], n: int = 200) -> dict:
    """Milliseconds of server work per request, in-process with one client: no load generator."""
    os.environ["BAEUM_BENCH_ENDPOINTS"] = "1"
    from django.conf import settings
    from django.test import Client
    from django.urls import clear_url_caches

    settings.BAEUM_BENCH_ENDPOINTS = True
    import config.urls
    from config.celery import app

    # As under gunicorn: tasks go to the broker, not inline.
    app.conf.task_always_eager = False
    app.conf.broker_url = BENCH_BROKER

    importlib.reload(config.urls)
    clear_url_caches()
    client = Client()
    body = json.dumps({"round": round_id, "income_category": "near_poor", "training": TRAINING})
    bare_body = json.dumps({"round": round_id, "income_category": "near_poor", **TRAINING})

    def post(path, token, data="{}", **headers):
        response = client.post(
            path,
            data=data,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Token {token}",
            **headers,
        )
        assert response.status_code in (200, 201), response.content
        return response

    timings = {}
    started = time.perf_counter()
    for token, _ in tokens[:n]:
        post("/bench/bare/", token, bare_body)
    timings["bare"] = (time.perf_counter() - started) / n * 1000
    ids = []
    started = time.perf_counter()
    for i, (token, _) in enumerate(tokens[:n]):
        ids.append(
            post("/api/v1/applications/", token, body, HTTP_IDEMPOTENCY_KEY=f"cost-{i}").json()[
                "id"
            ]
        )
    timings["create"] = (time.perf_counter() - started) / n * 1000
    started = time.perf_counter()
    for (token, _), app_id in zip(tokens[:n], ids, strict=True):
        post(f"/api/v1/applications/{app_id}/submit/", token)
    timings["submit"] = (time.perf_counter() - started) / n * 1000
    subprocess.run(["redis-cli", "-n", "14", "FLUSHDB"], check=False, capture_output=True)
    return timings


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--per-client", type=int, default=1500)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)

    recreate_database(url)
    round_id, tokens = prepare(url, args.clients * args.per_client * 2)
    half = len(tokens) // 2
    bare_tokens, intake_tokens = tokens[:half], tokens[half:]

    def slices(items):
        return [items[i :: args.clients] for i in range(args.clients)]

    port = free_port()
    server = start_server(url, port)
    try:
        bare = run_mode("bare", port, round_id, slices(bare_tokens), args.seconds, args.warmup)
        intake = run_mode(
            "intake", port, round_id, slices(intake_tokens), args.seconds, args.warmup
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
        subprocess.run(["redis-cli", "-n", "14", "FLUSHDB"], check=False, capture_output=True)
    # Tokens no load phase reached: their applicants have no application yet.
    cost = server_cost(round_id, intake_tokens[-400:])

    ratio = intake["rps"] / bare["rps"]
    cost_ratio = cost["bare"] / ((cost["create"] + cost["submit"]) / 2)
    lines = [
        f"### Intake throughput — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `.venv/bin/python bench/intake.py --seconds {args.seconds:g} "
        f"--clients {args.clients}`  ",
        f"Machine: {os.cpu_count()} cores, {platform.platform()}, Python "
        f"{platform.python_version()}; gunicorn 2 sync workers, PostgreSQL, "
        f"{args.clients} concurrent clients, persistent DB connections.",
        "",
        "| endpoint | requests | errors | requests/s | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r, label in (
        (bare, "bare DRF insert (8 fields)"),
        (intake, "intake: create (Idempotency-Key) + submit"),
    ):
        lines.append(
            f"| {label} | {r['requests']} | {r['errors']} | {r['rps']:.0f} | "
            f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} |"
        )
    lines += [
        "",
        f"Ratio intake/bare requests/s: **{ratio:.2f}** (target ≥ 0.50); intake p99 "
        f"{intake['p99_ms']:.1f} ms (target < 100 ms); applications/s: {intake['rps'] / 2:.0f}.",
        "",
        f"Server work per request, in-process, one client (no load generator sharing the "
        f"2 cores): bare {cost['bare']:.2f} ms, create {cost['create']:.2f} ms, submit "
        f"{cost['submit']:.2f} ms; bare/intake ratio **{cost_ratio:.2f}**.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        results = ROOT / "bench" / "RESULTS.md"
        if not results.exists():
            results.write_text(
                "# Benchmark results\n\nFigures from `bench/` scripts; ratios "
                "are measured within one run.\n\n"
            )
        with results.open("a") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()

"""Voucher redemption throughput under gunicorn, and the lapse job over 1,000,000 accounts.

1. Redemptions: gunicorn (2 sync workers, persistent connections) on PostgreSQL, 16
   concurrent providers (one process each, own token) redeeming 1,000 KRW against
   random accounts among --accounts (10,000) with an Idempotency-Key each, against the
   bare DRF endpoint of bench/bare.py (validate 8 fields, INSERT one row) in the same run.
2. Lapse: --lapse-accounts (1,000,000) expired voucher accounts (a third partly spent),
   made set-based from templates; `vouchers_lapse` (chunked, row-locked, idempotent)
   against one hand-written `INSERT … SELECT … GROUP BY` + `UPDATE` of the same rows
   (rolled back), then a second `vouchers_lapse` that must lapse nothing.

    .venv/bin/python bench/vouchers.py [--seconds 20] [--accounts 10000]
        [--lapse-accounts 1000000] [--no-write]

Uses (and recreates) BENCH_VOUCHERS_DATABASE_URL
(default postgres://postgres@127.0.0.1:5432/baeum_bench_vouchers).
"""

import argparse
import multiprocessing as mp
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.intake import (  # noqa: E402
    TRAINING,
    _request,
    free_port,
    recreate_database,
    start_server,
)
from bench.screening import PeakRSS, setup_django  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/baeum_bench_vouchers"
PROVIDERS = 16
BALANCE = 350_000_000  # large enough that no account runs dry during the run


def make_round(code: str, *, status: str, expires: date | None):
    from django.utils import timezone

    from benefits.models import Program, Round

    program, _ = Program.objects.get_or_create(
        code="VOUCHER", defaults={"name": "Voucher", "name_ko": "평생학습 바우처"}
    )
    now = timezone.now()
    return Round.objects.create(
        program=program,
        name=code,
        year=2026,
        status=status,
        applications_open_at=now - timedelta(days=60),
        applications_close_at=now - timedelta(days=30),
        period_starts_on=date(2026, 1, 1),
        period_ends_on=date(2026, 12, 31),
        capacity=1,
        amount=1,
        budget=10**15,
        ruleset_version="voucher-2026.1",
        voucher_expires_on=expires,
    )


def columns(model, **override) -> tuple[str, str]:
    """Column list and a SELECT list copying a template row, with some columns replaced."""
    names = [f.column for f in model._meta.concrete_fields if not f.primary_key]
    return ", ".join(names), ", ".join(override.get(n, f"t.{n}") for n in names)


def _code_sql(tag: str) -> str:
    """A code shaped like the real ones (XXXX-XXXX-XXXX-XXXX), unique per application."""
    raw = f"('{tag.upper()}' || lpad(a.id::text, 15, '0'))"
    return " || '-' || ".join(f"substr({raw}, {i}, 4)" for i in (1, 5, 9, 13))


def make_accounts(n_applicants: int, n_rounds: int, *, expires: date, tag: str) -> int:
    """n_applicants × n_rounds voucher accounts with a credit each, made in SQL from templates."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from benefits.models import Applicant, Application, Round
    from payments.models import VoucherAccount

    User = get_user_model()
    users = User.objects.bulk_create(
        [User(username=f"{tag}{i}", password="!") for i in range(n_applicants)]
    )
    Applicant.objects.bulk_create([Applicant(user=u, legal_name="이지은") for u in users])
    first = make_round(f"{tag}-0", status=Round.Status.DISBURSING, expires=expires)
    template_app = Application.objects.create(
        applicant=Applicant.objects.filter(user__username=f"{tag}0").get(),
        round=first,
        status="selected",
        income_category="none",
    )
    with connection.cursor() as cursor:
        cols, select = columns(Round, name="t.name || '-' || g")
        cursor.execute(
            f"INSERT INTO benefits_round ({cols}) SELECT {select} FROM benefits_round t, "
            f"generate_series(1, %s) g WHERE t.id = %s",
            [n_rounds - 1, first.pk],
        )
        cols, select = columns(Application, applicant_id="p.id", round_id="r.id")
        cursor.execute(
            f"""INSERT INTO benefits_application ({cols})
            SELECT {select} FROM benefits_application t
            CROSS JOIN benefits_applicant p CROSS JOIN benefits_round r
            WHERE t.id = %s AND r.name LIKE %s AND p.id IN (
                SELECT a.id FROM benefits_applicant a JOIN auth_user u ON u.id = a.user_id
                WHERE u.username LIKE %s)
              AND NOT (p.id = t.applicant_id AND r.id = t.round_id)""",
            [template_app.pk, f"{tag}-%", f"{tag}%"],
        )
        cols, select = columns(
            VoucherAccount,
            code=_code_sql(tag),
            application_id="a.id",
            applicant_id="a.applicant_id",
            round_id="a.round_id",
            expires_on="%s",
            lapsed_at="NULL",
            created_at="now()",
        )
        cursor.execute(
            f"""INSERT INTO payments_voucheraccount ({cols.replace("t.", "")})
            SELECT {select.replace("t.", "a.")} FROM benefits_application a
            JOIN benefits_round r ON r.id = a.round_id WHERE r.name LIKE %s""",
            [expires, f"{tag}-%"],
        )
        cursor.execute(
            """INSERT INTO payments_voucherentry (account_id, kind, amount, balance_after,
                   course, completed, idempotency_key, at)
            SELECT v.id, 'credit', %s, %s, '', false, '', now()
            FROM payments_voucheraccount v WHERE v.code LIKE %s""",
            [BALANCE if tag == "r" else 350_000] * 2 + [f"{tag.upper()}%"],
        )
        if tag == "l":  # a third spent part of their balance
            cursor.execute(
                """INSERT INTO payments_voucherentry (account_id, kind, amount, balance_after,
                       course, completed, idempotency_key, at)
                SELECT v.id, 'redemption', -100000, 250000, '바리스타 과정', false, '', now()
                FROM payments_voucheraccount v WHERE v.code LIKE %s AND v.id %% 3 = 0""",
                [f"{tag.upper()}%"],
            )
        cursor.execute("VACUUM ANALYZE")
    return VoucherAccount.objects.filter(code__startswith=tag.upper()).count()


def make_providers() -> list[str]:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from rest_framework.authtoken.models import Token

    from core.crypto import account_fingerprint
    from core.roles import Role
    from payments.models import Provider, ProviderUser

    User = get_user_model()
    group = Group.objects.get(name=Role.PROVIDER)
    tokens = []
    for i in range(PROVIDERS):
        provider = Provider.objects.create(
            name=f"평생교육원 {i}",
            business_registration_number=f"{1000000000 + i}",
            bank_code="020",
            account_number=f"{1002000000000 + i}",
            account_holder=f"평생교육원 {i}",
            account_fingerprint=account_fingerprint("020", f"{1002000000000 + i}"),
        )
        user = User.objects.create(username=f"provider{i}", password="!")
        user.groups.add(group)
        ProviderUser.objects.create(user=user, provider=provider)
        tokens.append(Token.objects.create(user=user).key)
    return tokens


def client_loop(args):
    mode, port, token, codes, seconds, warmup, seed = args
    rng = random.Random(seed)
    latencies, errors = [], 0
    start = time.perf_counter()
    i = 0
    while time.perf_counter() < start + warmup + seconds:
        measuring = time.perf_counter() >= start + warmup
        if mode == "bare":
            body = {"round": 1, "income_category": "none", **TRAINING}
            status, _, took = _request(port, "/bench/bare/", body, token)
        else:
            body = {"voucher_code": rng.choice(codes), "amount": 1000, "course": "요가 과정"}
            status, _, took = _request(
                port, "/api/v1/vouchers/redemptions/", body, token, key=f"{seed}-{i}"
            )
        i += 1
        if measuring:
            latencies.append(took)
            errors += status != 201
    return latencies, errors


def run_mode(mode, port, tokens, codes, seconds, warmup) -> dict:
    with mp.Pool(len(tokens)) as pool:
        started = time.perf_counter()
        results = pool.map(
            client_loop,
            [(mode, port, t, codes, seconds, warmup, f"{mode}{n}") for n, t in enumerate(tokens)],
        )
        elapsed = time.perf_counter() - started - warmup
    latencies = sorted(x for r in results for x in r[0])

    def pct(p):
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000

    return {
        "requests": len(latencies),
        "errors": sum(r[1] for r in results),
        "rps": len(latencies) / elapsed,
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
    }


def raw_lapse(today: date) -> float:
    """The same lapse by hand: one INSERT … SELECT … GROUP BY and one UPDATE, rolled back."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        t0 = time.perf_counter()
        cursor.execute(
            """INSERT INTO payments_voucherentry (account_id, kind, amount, balance_after,
                   course, completed, idempotency_key, at)
            SELECT e.account_id, 'lapse', -SUM(e.amount), 0, '', false, '', now()
            FROM payments_voucherentry e JOIN payments_voucheraccount v ON v.id = e.account_id
            WHERE v.expires_on < %s AND v.lapsed_at IS NULL
            GROUP BY e.account_id HAVING SUM(e.amount) > 0""",
            [today],
        )
        cursor.execute(
            "UPDATE payments_voucheraccount SET lapsed_at = now()"
            " WHERE expires_on < %s AND lapsed_at IS NULL",
            [today],
        )
        seconds = time.perf_counter() - t0
        transaction.set_rollback(True)
    return seconds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--lapse-accounts", type=int, default=1_000_000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    url = os.environ.get("BENCH_VOUCHERS_DATABASE_URL", DEFAULT_URL)

    recreate_database(url)
    with tempfile.TemporaryDirectory(prefix="baeum-bench-vouchers-") as tmp:
        data_dir = str(Path(tmp) / "data")
        setup_django(url, data_dir)
        from django.db import connection

        from bench.bare import TABLE_SQL
        from payments.models import VoucherAccount, VoucherEntry
        from payments.vouchers import vouchers_lapse

        with connection.cursor() as cursor:
            cursor.execute(TABLE_SQL)
        tokens = make_providers()
        far = date(2099, 12, 31)
        made = make_accounts(100, args.accounts // 100, expires=far, tag="r")
        codes = list(
            VoucherAccount.objects.filter(code__startswith="R").values_list("code", flat=True)
        )
        print(f"{made} accounts to redeem against", file=sys.stderr)

        port = free_port()
        os.environ["BAEUM_DATA_DIR"] = data_dir  # the server shares the keys
        server = start_server(url, port)
        try:
            bare = run_mode("bare", port, tokens, codes, args.seconds, args.warmup)
            redeem = run_mode("redeem", port, tokens, codes, args.seconds, args.warmup)
        finally:
            server.terminate()
            server.wait(timeout=30)
            subprocess.run(["redis-cli", "-n", "14", "FLUSHDB"], check=False, capture_output=True)
        print(f"bare {bare['rps']:.0f}/s, redeem {redeem['rps']:.0f}/s", file=sys.stderr)
        charged = VoucherEntry.objects.filter(kind="redemption").count()

        t0 = time.perf_counter()
        side = int(args.lapse_accounts**0.5)
        lapse_n = make_accounts(
            side, args.lapse_accounts // side, expires=date(2026, 1, 1), tag="l"
        )
        made_s = time.perf_counter() - t0
        print(f"{lapse_n} expired accounts made in {made_s:.0f} s", file=sys.stderr)
        today = date(2026, 11, 24)
        raw = raw_lapse(today)
        with PeakRSS() as rss:
            t0 = time.perf_counter()
            lapsed = vouchers_lapse(today=today)
            lapse_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = vouchers_lapse(today=today)
        again_s = time.perf_counter() - t0
        lapse_entries = VoucherEntry.objects.filter(kind="lapse").count()
        print(f"lapse {lapse_s:.1f} s (raw {raw:.1f} s)", file=sys.stderr)

    lines = [
        f"### Vouchers — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `.venv/bin/python bench/vouchers.py --seconds {args.seconds:g} --accounts "
        f"{args.accounts} --lapse-accounts {args.lapse_accounts}` · {os.cpu_count()} cores, "
        f"{platform.machine()}, PostgreSQL {connection.pg_version // 10000}; gunicorn 2 sync "
        f"workers, {PROVIDERS} concurrent providers, persistent DB connections.",
        "",
        "| endpoint | requests | errors | requests/s | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r, label in (
        (bare, "bare DRF insert (8 fields)"),
        (redeem, f"redemption (Idempotency-Key, row lock, {len(codes):,} accounts)"),
    ):
        lines.append(
            f"| {label} | {r['requests']} | {r['errors']} | {r['rps']:.0f} | "
            f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} |"
        )
    lines += [
        "",
        f"Ratio redemption/bare requests/s: **{redeem['rps'] / bare['rps']:.2f}** "
        f"({charged:,} redemptions written).",
        "",
        f"Lapse of {lapse_n:,} expired accounts: `vouchers_lapse` **{lapse_s:.1f} s** "
        f"({lapsed:,} lapsed, {lapse_entries:,} lapse entries; peak RSS {rss.peak_mb:.0f} MB) "
        f"against {raw:.1f} s for one `INSERT … SELECT … GROUP BY` + `UPDATE` by hand: "
        f"**{lapse_s / raw:.1f}×**. Run again: {again:,} lapsed in {again_s:.2f} s.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        with (ROOT / "bench" / "RESULTS.md").open("a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()

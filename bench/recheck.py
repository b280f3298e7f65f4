"""The post-approval re-check beside the review re-screen, on the same round.

1. As bench/screening.py: --applications applicants, the five registries of --rows rows
   imported through `registry_import_run`, and a scholarship round with one application
   under review per applicant.
2. `round_rescreen` of the round (the review re-screen a caseworker triggers).
3. The same applications turned `approved` (a bulk UPDATE: set-up, not the decision
   service), then a new social-security snapshot in which one applicant in 20 no longer
   appears. Its activation queues the re-check (eager here) that raises
   `eligibility_changed` flags; then `round_recheck` is timed once more on the same
   snapshots (the same evaluation; the flags already raised are kept, not raised twice).

Prints a markdown section and appends it to bench/RESULTS.md (unless --no-write).

    .venv/bin/python bench/recheck.py [--rows 1000000] [--applications 100000] [--no-write]

Uses (and recreates) the database in BENCH_RECHECK_DATABASE_URL
(default postgres://postgres@127.0.0.1:5432/baeum_bench_recheck).
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
from bench.intake import recreate_database  # noqa: E402
from bench.screening import (  # noqa: E402
    KINDS,
    PeakRSS,
    checkpoint,
    make_people,
    make_round,
    real_import,
    setup_django,
    write_csv,
)

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/baeum_bench_recheck"
DROPPED_EVERY = 20  # one applicant in 20 leaves the social-security registry


def timed(call) -> dict:
    checkpoint()
    with PeakRSS() as rss:
        started = time.perf_counter()
        totals = call()
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "totals": totals, "rss_peak": rss.peak_mb}


def approve_all(round_id: int) -> int:
    from benefits.models import Application

    # Set-up only: the bench measures the re-check, not a hundred thousand decisions.
    return Application.objects.filter(round_id=round_id).update(status=Application.Status.APPROVED)


def write_reduced_social_security(path: Path, rows: int, hmacs: list[str], districts) -> None:
    """The same registry as before, without the rows of one applicant in DROPPED_EVERY."""
    full = path.with_suffix(".full.csv")
    write_csv(full, "social_security", rows, hmacs, districts)
    dropped = {h for i, h in enumerate(hmacs) if i % DROPPED_EVERY == 0}
    with full.open(encoding="utf-8") as src, path.open("w", encoding="utf-8") as dst:
        dst.write(next(src))
        for line in src:
            if line[:64] not in dropped:
                dst.write(line)
    full.unlink()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--applications", type=int, default=100_000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    url = os.environ.get("BENCH_RECHECK_DATABASE_URL", DEFAULT_URL)
    began = time.perf_counter()
    load = os.getloadavg()[0]

    recreate_database(url)
    with tempfile.TemporaryDirectory(prefix="baeum-bench-recheck-") as tmp:
        tmp = Path(tmp)
        setup_django(url, str(tmp / "data"))
        from django.db import connection

        from benefits import rescreen
        from benefits.models import ApplicationFlag
        from eligibility import recheck

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
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")

        rescreened = timed(lambda: rescreen.round_rescreen(round_id=round_id, job_key="bench"))
        print(f"round_rescreen: {rescreened['seconds']:.1f} s", file=sys.stderr)
        approved = approve_all(round_id)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")

        path = tmp / "social_security_new.csv"
        write_reduced_social_security(path, args.rows, hmacs, districts)
        imported = timed(lambda: real_import("social_security", path))
        flagged = ApplicationFlag.objects.filter(
            application__round_id=round_id,
            kind=ApplicationFlag.Kind.ELIGIBILITY_CHANGED,
            cleared_at__isnull=True,
        ).count()
        rechecked = timed(lambda: recheck.round_recheck(round_id=round_id, job_key="bench"))
        print(f"round_recheck: {rechecked['seconds']:.1f} s", file=sys.stderr)

    ratio = rechecked["seconds"] / rescreened["seconds"]
    expected = len(range(0, args.applications, DROPPED_EVERY))
    lines = [
        f"### Post-approval re-check beside the review re-screen — "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `.venv/bin/python bench/recheck.py --rows {args.rows} "
        f"--applications {args.applications}`  ",
        f"Machine: {os.cpu_count()} cores, {platform.platform()}, Python "
        f"{platform.python_version()}; PostgreSQL on the same machine; load average "
        f"{load:.1f} at the start; total run {time.perf_counter() - began:.0f} s.",
        "",
        f"One scholarship round of {args.applications} applications against five registries "
        f"of {args.rows} rows (set-up as bench/screening.py). The review re-screen runs on "
        f"the applications under review; then all {approved} are turned approved and a new "
        f"social-security snapshot leaves out one applicant in {DROPPED_EVERY}: its "
        "activation queues the re-check (eager), which raised the flags below; "
        "`round_recheck` is then timed again on the same snapshots (same evaluation, no "
        "flag raised twice).",
        "",
        "| measurement | seconds | applications/s | peak RSS MB |",
        "|---|---:|---:|---:|",
        f"| review re-screen `round_rescreen` | {rescreened['seconds']:.1f} | "
        f"{rescreened['totals']['screened'] / rescreened['seconds']:,.0f} | "
        f"{rescreened['rss_peak']:.0f} |",
        f"| post-approval re-check `round_recheck` | {rechecked['seconds']:.1f} | "
        f"{rechecked['totals']['checked'] / rechecked['seconds']:,.0f} | "
        f"{rechecked['rss_peak']:.0f} |",
        f"| new social-security snapshot: import, activation and its re-check | "
        f"{imported['seconds']:.1f} | — | {imported['rss_peak']:.0f} |",
        "",
        f"Re-check / re-screen: **{ratio:.2f}×**. Open `eligibility_changed` flags after "
        f"the snapshot: {flagged} (applicants left out of the registry: {expected}); the "
        f"timed re-check checked {rechecked['totals']['checked']} and raised "
        f"{rechecked['totals']['flagged']} more.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        with (ROOT / "bench" / "RESULTS.md").open("a") as f:
            f.write("\n" + text + "\n")


if __name__ == "__main__":
    main()

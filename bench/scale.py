"""A whole scholarship round at several sizes on PostgreSQL: time, rows/s, memory, growth.

Plays simulate_round's stages (benefits/simulation) on one fresh database, one round per
size, after a one-off import of the five registries (reported apart):

1. registries: the five CSVs with the rows of every size's people (as simulate_round
   writes them) padded with strangers to --registry-rows rows each, stored and imported
   through registry_import_create + registry_import_run;
2. per size, a round: setup, citizens (simulate_round's bulk registration), intake,
   screening and review (bench/scale_stages.py: a fixed sample through the services, the
   rest in bulk through the same transitions), the re-screen, selection, batch build,
   both bank files, bank results with 5% failures, account fixes, the reissue batch, and
   the round report.

Per stage: seconds, rows/s, the peak RSS of this process, of the Celery workers (--workers)
and of the largest PostgreSQL process (sampled from /proc every 0.2 s), and the database
size after it; then each stage's growth between sizes. Prints a markdown section and
appends it to bench/RESULTS.md (unless --no-write).

    .venv/bin/python bench/scale.py --sizes 10000,100000 --registry-rows 1000000
    .venv/bin/python bench/scale.py --sizes 2000 --registry-rows 20000 --no-write  # quick

Tasks run eagerly in this process unless --workers N starts N Celery workers (solo pool)
on --broker. Uses (and recreates) the database in BENCH_SCALE_DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/baeum_scalebench_bench).
"""

import argparse
import itertools
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.intake import recreate_database  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/baeum_scalebench_bench"
MB = 1 << 20


# Memory of every process: this one, the worker and its children, PostgreSQL's.


def _stat(pid: int) -> tuple[str, int] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = text[text.index("(") + 1 : text.rindex(")")]
    ppid = int(text[text.rindex(")") + 2 :].split()[1])
    return comm, ppid


def _rss(pid: int) -> int:
    """Resident memory of a process without its shared memory: PostgreSQL's shared buffers
    (`shared_buffers`, one cache for the whole server) would otherwise count in every
    backend that has touched them."""
    try:
        fields = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        )
        return (int(fields["VmRSS"].split()[0]) - int(fields["RssShmem"].split()[0])) * 1024
    except (OSError, KeyError, ValueError):
        return 0


class Watch:
    """Peak RSS per role, sampled in a thread: `take()` returns the peaks since the last."""

    def __init__(self, worker_pids: tuple[int, ...] = (), interval: float = 0.2):
        self.worker_pids, self.interval = set(worker_pids), interval
        self.peaks = {"bench": 0, "worker": 0, "postgres": 0}
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> dict[str, int]:
        sample = {"bench": _rss(os.getpid()), "worker": 0, "postgres": 0}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            stat = _stat(int(entry.name))
            if stat is None:
                continue
            comm, ppid = stat
            pid = int(entry.name)
            if comm.startswith("postgres"):
                sample["postgres"] = max(sample["postgres"], _rss(pid))
            elif self.worker_pids & {pid, ppid}:
                sample["worker"] = max(sample["worker"], _rss(pid))
        return sample

    def _run(self) -> None:
        while not self._stop.is_set():
            sample = self._sample()
            with self._lock:
                for role, value in sample.items():
                    self.peaks[role] = max(self.peaks[role], value)
            self._stop.wait(self.interval)

    def take(self) -> dict[str, float]:
        sample = self._sample()
        with self._lock:
            peaks = {r: max(v, sample[r]) / MB for r, v in self.peaks.items()}
            self.peaks = dict.fromkeys(self.peaks, 0)
        return peaks

    def stop(self) -> None:
        self._stop.set()


class Autovacuum:
    """What PostgreSQL's autovacuum does, for a server that runs with it off (as this
    machine's does, for the test suites): every `naptime` seconds, on its own connection,
    VACUUM the tables whose dead or inserted rows pass autovacuum's default thresholds and
    ANALYZE those whose changed rows do. Without it a long bulk load keeps the plans made
    when its tables were empty: a foreign-key check planned as a sequential scan of a
    10-row table reads 100,000 rows per check by the end of the intake."""

    THRESHOLDS = """
        SELECT s.schemaname, s.relname,
               s.n_dead_tup > 50 + 0.2 * GREATEST(c.reltuples, 0)
               OR s.n_ins_since_vacuum > 1000 + 0.2 * GREATEST(c.reltuples, 0) AS vacuum,
               s.n_mod_since_analyze > 50 + 0.1 * GREATEST(c.reltuples, 0) AS analyze
        FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
        WHERE c.relpersistence = 'p'  -- as autovacuum: never another session's temp table
    """

    def __init__(self, url: str, naptime: float = 60.0):
        import psycopg

        self.runs, self.seconds = 0, 0.0
        self._connection = psycopg.connect(url, autocommit=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(naptime,), daemon=True)
        self._thread.start()

    def _run(self, naptime: float) -> None:
        import psycopg
        from psycopg import sql

        while not self._stop.wait(naptime):
            rows = self._connection.execute(self.THRESHOLDS).fetchall()
            for schema, table, vacuum, analyze in rows:
                if not (vacuum or analyze):
                    continue
                started = time.perf_counter()
                command = "VACUUM ANALYZE {}" if vacuum else "ANALYZE {}"
                name = sql.Identifier(schema, table)
                try:
                    self._connection.execute(sql.SQL(command).format(name))
                except psycopg.errors.UndefinedTable:
                    continue  # dropped since the statistics were read (a test's table)
                self.runs += 1
                self.seconds += time.perf_counter() - started

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._connection.close()


def autovacuum_is_on() -> bool:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        return cursor.fetchone()[0] == "on"


def database_mb() -> float:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_database_size(current_database())")
        return cursor.fetchone()[0] / MB


class Statements:
    """Each stage's costliest statements, from PostgreSQL's pg_stat_statements (the server
    must load it: shared_preload_libraries = 'pg_stat_statements'): `reset()` before a
    stage, `top()` after it prints the `n` statements that took the most time in it."""

    def __init__(self, n: int):
        import psycopg
        from django.db import DatabaseError, connection

        self.n = n
        try:
            with connection.cursor() as cursor:
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                cursor.execute("SELECT pg_stat_statements_reset()")
        except (DatabaseError, psycopg.Error) as exc:
            # Said before the registries are imported, not after the first stage.
            raise SystemExit(
                "--statements needs the server to load pg_stat_statements: "
                "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements', "
                f"then restart PostgreSQL ({exc})"
            ) from None

    def reset(self) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_statements_reset()")

    def top(self, stage: str) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT calls, total_exec_time, rows, left(regexp_replace(query, '\\s+', ' ', 'g'),"
                " 240) FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database"
                " WHERE datname = current_database()) ORDER BY total_exec_time DESC LIMIT %s",
                [self.n],
            )
            for calls, ms, rows, query in cursor.fetchall():
                print(f"    [{stage}] {ms / 1000:8.1f} s {calls:7,} calls {rows:9,} rows  {query}")


def analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


# Set-up.


def setup_django(url: str, data_dir: str, broker: str | None) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_DEBUG"] = "0"  # no connection.queries growing with every query
    os.environ["BAEUM_DATA_DIR"] = data_dir  # uploads and dev keys off the source tree
    os.environ.setdefault("BAEUM_LOG_LEVEL", "WARNING")
    if broker:
        os.environ["CELERY_BROKER_URL"] = broker
    else:
        os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def start_worker(data_dir: str, n: int) -> subprocess.Popen:
    from celery import current_app
    from django.conf import settings

    current_app.control.purge()
    env = {
        **os.environ,
        "BAEUM_DATA_DIR": data_dir,
        "BAEUM_ENCRYPTION_KEYS": settings.BAEUM_ENCRYPTION_KEYS,
        "BAEUM_HMAC_KEY": settings.BAEUM_HMAC_KEY,
    }
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo"]
    command += ["--loglevel=WARNING", "--without-heartbeat", "--without-gossip"]
    command += ["--without-mingle", f"--hostname=scale{n}@%h"]
    return subprocess.Popen(command, cwd=ROOT, env=env)


def draw_people(sizes: list[int], salt: int) -> dict[int, object]:
    """Each size's people (drawn as they are read): distinct index ranges under one salt,
    so nobody is in two."""
    from django.utils import timezone

    from benefits.models import Program
    from benefits.simulation import population

    people, start = {}, 0
    for size in sizes:
        people[size] = population.Population(
            program=Program.Code.SCHOLARSHIP,
            count=size,
            seed=1,
            salt=salt,
            today=timezone.localdate(),
            start=start,
        )
        start += size
    return people


def _filler(kind: str, i: int, rng: random.Random, year: int, districts: list[str]) -> str:
    """One stranger's row (or a course nobody takes): never an applicant's."""
    if kind == "training_courses":
        return f"SCALE{i:09d},직업훈련 과정 {i},훈련기관 {i % 997},{year}-01-01,{year}-12-31,true\n"
    h = rng.randbytes(32).hex()
    if kind == "social_security":
        status = "basic_livelihood" if i % 3 == 0 else "near_poor"
        return f"{h},{status},{districts[i % len(districts)]},{year - 2}-01-01,\n"
    if kind == "naeilbaeum":
        return f"{h},{year - 1}-01-01,{year + 3}-12-31,,{year - 2}-03-01,{year - 2}-06-30\n"
    if kind == "youth_allowance":
        return f"{h},{year - 2}-01,{year - 2}-06\n"
    return f"{h},{year - 1}\n"  # national_voucher


def write_registries(directory: Path, people, rows: int) -> dict[str, tuple[Path, int]]:
    from django.utils import timezone

    from benefits.simulation import population
    from core.districts import SEOUL_DISTRICTS

    districts = list(SEOUL_DISTRICTS)
    year = timezone.localdate().year
    files = population.registry_files(
        directory=directory,
        population=people,
        year=year,
        period=(date(year, 1, 1), date(year, 12, 31)),
        carry_over=False,
    )
    padded = {}
    for kind, (path, own) in files.items():
        rng = random.Random(f"scale-{kind}")
        with path.open("a", encoding="utf-8", buffering=1 << 20) as f:
            for i in range(max(rows - own, 0)):
                f.write(_filler(kind, i, rng, year, districts))
        padded[kind] = (path, max(rows, own))
    return padded


def import_registries(files: dict, watch: Watch) -> list[dict]:
    from django.core.files import File

    from eligibility.imports import registry_import_create, registry_import_run

    results = []
    for kind, (path, _rows) in files.items():
        watch.take()
        started = time.perf_counter()
        with path.open("rb") as f:
            job = registry_import_create(
                kind=kind, uploaded_file=File(f, name=path.name), actor=None, schedule=False
            )
        stored = time.perf_counter() - started
        job = registry_import_run(job_id=job.pk)
        seconds = time.perf_counter() - started
        if job.status != "succeeded":
            raise SystemExit(f"{kind} import {job.status}: {job.errors[:3]}")
        path.unlink()
        results.append(
            {"kind": kind, "rows": job.rows_read, "store": stored, "seconds": seconds}
            | watch.take()
            | {"db_mb": database_mb()}
        )
        print(f"  {kind}: {job.rows_read:,} rows in {seconds:.1f} s", flush=True)
    return results


# The round.


def stages() -> list:
    from bench import scale_stages as bulk
    from benefits.simulation import intake, payouts

    return [
        ("setup", intake.setup),
        ("citizens", intake.citizens),
        ("intake", bulk.bulk_intake),
        ("screening", bulk.bulk_screening),
        ("rescreen", intake.rescreen),
        ("review", bulk.bulk_review),
        ("selection", payouts.selection),
        ("batch", payouts.batch),
        ("bank-files", payouts.bank_files),
        ("bank-results", payouts.bank_results),
        ("account-fixes", payouts.account_fixes),
        ("reissue", payouts.reissue),
        ("report", payouts.report),
    ]


def _profiled(stage, sim) -> int:
    import cProfile
    import pstats

    profile = cProfile.Profile()
    count = profile.runcall(stage, sim)
    print(f"--- profile of {stage.__name__} ---", flush=True)
    stats = pstats.Stats(profile)
    stats.sort_stats("cumulative").print_stats(30)
    stats.sort_stats("tottime").print_stats(20)
    return count


def play_round(
    size: int,
    people: list,
    salt: int,
    watch: Watch,
    timeout: float,
    profile: str = "",
    statements: Statements | None = None,
) -> dict:
    from benefits.models import Program
    from benefits.simulation import Simulation

    sim = Simulation(
        program=Program.Code.SCHOLARSHIP, applicants=size, seed=1, salt=salt, timeout=timeout
    )
    sim.population = people
    rows = []
    try:
        for name, stage in stages():
            if statements:
                statements.reset()
            watch.take()
            started, drawn = time.perf_counter(), people.drawing_seconds
            profiled = name in profile.split(",") or profile == "all"
            count = _profiled(stage, sim) if profiled else stage(sim)
            # Drawing the simulated people is the bench's work, not Baeum's: set apart.
            drawing = people.drawing_seconds - drawn
            seconds = time.perf_counter() - started - drawing
            if drawing:
                print(f"  {size:,} {name}: {drawing:.1f} s drawing people (not counted)")
            rows.append(
                {"stage": name, "rows": count, "seconds": seconds, "drawing": drawing}
                | watch.take()
                | {"db_mb": database_mb()}
            )
            print(f"  {size:,} {name}: {count:,} rows in {seconds:.1f} s", flush=True)
            if statements:
                statements.top(f"{size:,} {name}")
            if name == "intake":
                # What autovacuum would do within a minute of the bulk writes; timed apart.
                watch.take()
                started = time.perf_counter()
                analyze()
                rows.append(
                    {"stage": "(analyze)", "rows": 0, "seconds": time.perf_counter() - started}
                    | watch.take()
                    | {"db_mb": database_mb()}
                )
    finally:
        sim.close()
    return {"size": size, "stages": rows, "notes": sim.notes, "report": sim.report}


# Report.


def _rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:,.0f}" if rows and seconds > 0 else ""


def markdown(args, imports: list[dict], rounds: list[dict], began: str, loads: tuple) -> str:
    import django
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        server = cursor.fetchone()[0]
    worker = (
        f"{args.workers} Celery worker(s) (solo pool) on the broker"
        if args.workers
        else "eager tasks in this process"
    )
    sizes = ", ".join(f"{r['size']:,}" for r in rounds)
    lines = [
        f"### Whole round at {sizes} applicants — {began}",
        "",
        f"Command: `.venv/bin/python bench/scale.py --sizes {args.sizes} "
        f"--registry-rows {args.registry_rows}"
        f"{f' --workers {args.workers}' if args.workers else ''}`  ",
        f"Machine: {os.cpu_count()} cores shared with other sessions' test suites "
        f"(load average {loads[0]:.1f} at the start, {loads[1]:.1f} at the end), "
        f"{platform.platform()}, Python {platform.python_version()}, Django "
        f"{django.get_version()}, PostgreSQL {server} on the same machine; {worker}. "
        "Memory: each process's resident memory without shared memory (PostgreSQL's "
        "shared buffers are one cache for the server, not any one backend's).",
        "",
        f"Registry imports (once, before the rounds): five registries of "
        f"{args.registry_rows:,} rows each.",
        "",
        "| registry | rows | store s | store + import s | rows/s | RSS bench MB "
        "| RSS postgres MB | DB MB after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i in imports:
        lines.append(
            f"| {i['kind']} | {i['rows']:,} | {i['store']:.1f} | {i['seconds']:.1f} | "
            f"{_rate(i['rows'], i['seconds'])} | {i['bench']:.0f} | {i['postgres']:.0f} | "
            f"{i['db_mb']:,.0f} |"
        )
    total = sum(i["seconds"] for i in imports)
    lines += ["", f"Imports: **{total:.0f} s** in all.", ""]
    for r in rounds:
        lines += [
            f"Round of {r['size']:,} applicants:",
            "",
            "| stage | rows | seconds | rows/s | RSS bench MB | RSS worker MB "
            "| RSS postgres MB | DB MB after |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for s in r["stages"]:
            worker_mb = f"{s['worker']:.0f}" if args.workers else "—"
            lines.append(
                f"| {s['stage']} | {s['rows']:,} | {s['seconds']:.2f} | "
                f"{_rate(s['rows'], s['seconds'])} | {s['bench']:.0f} | {worker_mb} | "
                f"{s['postgres']:.0f} | {s['db_mb']:,.0f} |"
            )
        work = sum(s["seconds"] for s in r["stages"])
        by_stage = {s["stage"]: s for s in r["stages"]}
        citizens = by_stage["citizens"]["seconds"]
        fixes = by_stage["account-fixes"]
        peak = max(max(s["bench"], s["worker"], s["postgres"]) for s in r["stages"])
        lines += [
            f"| **total** | | **{work:.1f}** | | | | | |",
            "",
            f"The round's work without registering the citizens (accounts that exist before "
            f"a round): **{work - citizens:.1f} s**; without the citizens' own requests "
            f"(registering, and giving another account after a failed transfer: "
            f"{fixes['rows']:,} calls of {1000 * fixes['seconds'] / max(fixes['rows'], 1):.1f} ms "
            f"through the service, spread over days in a real round): "
            f"**{work - citizens - fixes['seconds']:.1f} s**. Largest process: {peak:.0f} MB. "
            f"Review: {r['notes'].get('review')}; selection: {r['notes'].get('selection')}. "
            f"Drawing the simulated people (the bench's own work, set apart from the stages): "
            f"{sum(s.get('drawing', 0) for s in r['stages']):.1f} s.",
            "",
        ]
    if len(rounds) > 1:
        header = " | ".join(f"s at {r['size']:,}" for r in rounds)
        lines += [
            "Growth between sizes (time ratio; per row: the time ratio over the size ratio, "
            "1.00 is linear):",
            "",
            f"| stage | {header} | "
            + " | ".join(f"{a['size']:,}→{b['size']:,} (per row)" for a, b in pairwise(rounds))
            + " |",
            "|---|" + "---:|" * (2 * len(rounds) - 1),
        ]
        names = [s["stage"] for s in rounds[0]["stages"]] + ["total"]
        for name in names:
            times = []
            for r in rounds:
                if name == "total":
                    times.append(sum(s["seconds"] for s in r["stages"]))
                else:
                    times.append(next(s["seconds"] for s in r["stages"] if s["stage"] == name))
            ratios = []
            for (a, ta), (b, tb) in pairwise(zip(rounds, times, strict=True)):
                grow = tb / ta if ta > 0 else float("nan")
                ratios.append(f"{grow:.2f}× ({grow / (b['size'] / a['size']):.2f})")
            lines.append(
                f"| {name} | "
                + " | ".join(f"{t:.2f}" for t in times)
                + " | "
                + " | ".join(ratios)
                + " |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--registry-rows", type=int, default=10_000_000)
    parser.add_argument("--workers", type=int, default=0, help="Celery workers (0: eager)")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--no-write", action="store_true", help="print, do not append")
    parser.add_argument(
        "--profile", default="", help="print a cProfile of these stages (comma-separated, or all)"
    )
    parser.add_argument(
        "--statements",
        type=int,
        default=0,
        help="print each stage's N costliest SQL statements (needs pg_stat_statements)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    url = os.environ.get("BENCH_SCALE_DATABASE_URL", DEFAULT_URL)
    began = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    loads = [os.getloadavg()[0]]

    recreate_database(url)
    data_dir = tempfile.mkdtemp(prefix="baeum-scale-")
    setup_django(url, data_dir, args.broker if args.workers else None)
    statements = Statements(args.statements) if args.statements else None
    workers = [start_worker(data_dir, n) for n in range(args.workers)]
    watch = Watch(tuple(w.pid for w in workers))
    autovacuum = None if autovacuum_is_on() else Autovacuum(url)
    try:
        salt = random.Random(sum(sizes)).randrange(10**9)
        people = draw_people(sizes, salt)
        print(f"registries: {args.registry_rows:,} rows each", flush=True)
        with tempfile.TemporaryDirectory(prefix="baeum-scale-csv-") as directory:
            everyone = itertools.chain.from_iterable(people[size] for size in sizes)
            files = write_registries(Path(directory), everyone, args.registry_rows)
            imports = import_registries(files, watch)
        analyze()
        rounds = []
        for size in sizes:
            rounds.append(
                play_round(
                    size,
                    people.pop(size),
                    salt,
                    watch,
                    args.timeout,
                    args.profile,
                    statements,
                )
            )
    finally:
        watch.stop()
        if autovacuum is not None:
            autovacuum.stop()
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)
    loads.append(os.getloadavg()[0])
    text = markdown(args, imports, rounds, began, tuple(loads))
    if autovacuum is not None:
        text += (
            f"\nThe server runs with autovacuum off: the bench did its work instead "
            f"(bench.scale.Autovacuum, every 60 s): {autovacuum.runs} VACUUM/ANALYZE runs, "
            f"{autovacuum.seconds:.0f} s on their own connection, beside the stages.\n"
        )
    print(text)
    if not args.no_write:
        with (ROOT / "bench" / "RESULTS.md").open("a") as f:
            f.write("\n" + text + "\n")


if __name__ == "__main__":
    main()

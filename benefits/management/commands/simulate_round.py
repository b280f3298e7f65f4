"""Play a whole round end to end through the services, with a progress bar per stage, then
print the round report and the time each stage took."""

import logging
import time
from contextlib import contextmanager

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from benefits.models import Program
from benefits.simulation import Simulation, SimulationError, StageTiming, run, stages_for
from benefits.simulation.teardown import run_delete
from core.districts import district_name

# One line per message, screening chunk or import would tear through the progress bars.
QUIET_LOGGERS = ("baeum.notifications", "eligibility")


class _Stream:
    """The command's stdout as the plain stream rich writes to."""

    def __init__(self, wrapper):
        self.wrapper = wrapper

    def write(self, text: str) -> int:
        self.wrapper.write(text, ending="")
        return len(text)

    def flush(self) -> None:
        self.wrapper.flush()

    def isatty(self) -> bool:
        return self.wrapper.isatty()


class _Bar:
    def __init__(self, progress: Progress, description: str, total: int | None):
        self.progress = progress
        self.task = progress.add_task(description, total=total)

    def advance(self, amount: int = 1) -> None:
        self.progress.advance(self.task, amount)

    def set(self, completed: int) -> None:
        self.progress.update(self.task, completed=completed)


@contextmanager
def _quiet(verbosity: int):
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    if verbosity < 2:
        for logger in loggers:
            logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _plain(value) -> str:
    """A note as text: counts by name, nested."""
    if isinstance(value, dict):
        return "; ".join(f"{k} {_plain(v)}" for k, v in value.items()) if value else "none"
    return f"{value:,}" if isinstance(value, int) else str(value)


class Command(BaseCommand):
    help = (
        "Play a whole round (registrations to payments) through the services with generated "
        "data, then print the round report and the time per stage."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--program", choices=Program.Code.values, default=Program.Code.SCHOLARSHIP
        )
        parser.add_argument("--applicants", type=int, default=1000)
        parser.add_argument(
            "--seed", type=int, default=1, help="decides who claims, holds and gets what"
        )
        parser.add_argument(
            "--fail-rate",
            type=float,
            default=0.05,
            help="share of the first batch's bank transfers that fail (scholarship)",
        )
        parser.add_argument(
            "--keep",
            action="store_true",
            help="leave the run's round, users and rows in the database (removed otherwise)",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=300.0,
            help="seconds a wait for the worker may go without progress",
        )
        parser.add_argument(
            "--fresh-registries",
            action="store_true",
            help="import this run's people alone, dropping the other rounds' registry rows",
        )

    def handle(self, *args, **options):
        console = Console(file=_Stream(self.stdout), highlight=False)
        try:
            sim = Simulation(
                program=options["program"],
                applicants=options["applicants"],
                seed=options["seed"],
                fail_rate=options["fail_rate"],
                timeout=options["timeout"],
                carry_over_registries=not options["fresh_registries"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        tasks = "eager (in this process)" if settings.CELERY_TASK_ALWAYS_EAGER else "Celery worker"
        console.print(
            f"Simulating a {sim.program} round of {sim.applicants:,} applicants "
            f"(run {sim.prefix}, seed {sim.seed}) on {connection.vendor}, tasks {tasks}."
        )
        progress = Progress(
            TextColumn("{task.description:<32}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        sim.track = lambda description, total: _Bar(progress, description, total)
        started = time.perf_counter()
        try:
            with _quiet(options["verbosity"]), progress:
                timings = run(
                    sim,
                    stages_for(sim.program),
                    on_stage=lambda t: console.print(
                        f"{t.name}: {t.rows:,} rows in {t.seconds:.1f} s"
                    ),
                )
        except SimulationError as exc:
            raise CommandError(f"The simulation stopped: {exc}") from None
        finally:
            sim.close()
            if not options["keep"]:
                removed = self._remove(sim, console)
        total = time.perf_counter() - started
        self._report(console, sim)
        self._timings(console, timings, total)
        if options["keep"]:
            console.print(f"Kept round #{sim.round_.pk} and the users named {sim.prefix}-….")
        else:
            console.print(
                f"Removed the run's {removed:,} rows (--keep leaves them); the registry "
                "snapshots it imported stay active."
            )

    def _remove(self, sim: Simulation, console: Console) -> int:
        counts = run_delete(prefix=sim.prefix)
        return sum(counts.values())

    def _report(self, console: Console, sim: Simulation) -> None:
        report = sim.report
        applications = report["applications"]
        statuses = Table(title=f"Round #{report['round']} ({report['program']}): applications")
        statuses.add_column("status")
        statuses.add_column("applications", justify="right")
        for status, n in applications["by_status"].items():
            if n:
                statuses.add_row(status, f"{n:,}")
        statuses.add_row("total", f"{applications['total']:,}", style="bold")
        console.print(statuses)
        rate = report["approval_rate"]
        console.print(f"Approval rate: {'—' if rate is None else f'{rate:.1%}'}")

        busiest = sorted(report["districts"], key=lambda d: -d["applications"])[:5]
        districts = Table(title="Five districts with the most applications")
        for column in ("district", "applications", "approved", "selected", "paid", "paid KRW"):
            districts.add_column(column, justify="left" if column == "district" else "right")
        for row in busiest:
            districts.add_row(
                f"{district_name(row['district'])} ({row['district']})",
                *(f"{row[c]:,}" for c in ("applications", "approved", "selected", "paid")),
                f"{row['paid_amount']:,}",
            )
        console.print(districts)

        amounts = Table(title="Amounts (KRW)")
        amounts.add_column("")
        amounts.add_column("KRW", justify="right")
        for name, value in report["amounts"].items():
            amounts.add_row(name, f"{value:,}")
        console.print(amounts)
        found = ", ".join(f"{k} {v}" for k, v in report["duplicates"].items())
        console.print(f"Duplicates found by screening: {found}")
        for name, value in sim.notes.items():
            console.print(f"{name.capitalize()}: {_plain(value)}")

    def _timings(self, console: Console, timings: list[StageTiming], total: float) -> None:
        table = Table(title="Time per stage")
        for column in ("stage", "rows", "seconds", "rows/s"):
            table.add_column(column, justify="left" if column == "stage" else "right")
        for t in timings:
            rate = t.rows_per_second
            table.add_row(t.name, f"{t.rows:,}", f"{t.seconds:.2f}", f"{rate:,.0f}" if rate else "")
        table.add_row("total", "", f"{sum(t.seconds for t in timings):.2f}", "", style="bold")
        console.print(table)
        console.print(f"Wall time, removal included: {total:.1f} s")

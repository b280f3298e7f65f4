"""A whole round played end to end through the services, stage by stage.

`simulate_round` drives it; bench scripts may call the same stages. A stage is a function
of the run's `Simulation` that does its part through the services the API calls, waits
for the tasks it set off (polling the database: eager or on a real worker alike), and
returns how many rows it handled. `run` plays a program's stages in order and times them.
"""

import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from benefits.models import Program


class SimulationError(Exception):
    """The run cannot go on: a task failed or stalled, or the data does not add up."""


class Tracker(Protocol):
    """A stage's progress, as the caller draws it (the command: a rich progress bar)."""

    def advance(self, amount: int = 1) -> None: ...

    def set(self, completed: int) -> None: ...


class _Silent:
    def advance(self, amount: int = 1) -> None:
        pass

    def set(self, completed: int) -> None:
        pass


def silent(description: str, total: int | None) -> Tracker:
    """A tracker that shows nothing (the default, and the tests')."""
    return _Silent()


def new_prefix() -> str:
    """A name no other run has: it starts every username and the round's name."""
    return f"sim-{secrets.token_hex(4)}"


@dataclass
class Simulation:
    """One run: its options, the people and objects it made, and what it noted on the way."""

    program: str
    applicants: int
    seed: int = 1
    # Share of the first batch's bank transfers that the simulated bank fails.
    fail_rate: float = 0.05
    # Seconds a wait may go without progress before the run gives up.
    timeout: float = 300.0
    poll_interval: float = 0.2
    # Keep the other rounds' registry rows in the snapshots this run imports (see
    # population.registry_files); False imports this run's people alone.
    carry_over_registries: bool = True
    # Citizens registered one by one through citizen_register and applicant_profile_update;
    # the rest are written in bulk as the same rows (see intake.citizens).
    service_sample: int = 3
    track: Callable[[str, int | None], Tracker] = silent
    prefix: str = field(default_factory=new_prefix)
    salt: int = field(default_factory=lambda: secrets.randbelow(10**9))

    round_: Any = None
    staff: dict = field(default_factory=dict)
    provider: Any = None
    population: Any = None  # population.Population, drawn by intake.registries
    batches: list[int] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)
    report: dict | None = None
    _workdir: Path | None = None

    def __post_init__(self):
        if self.program not in Program.Code.values:
            raise ValueError(f"unknown program {self.program!r}")
        if self.applicants < 1:
            raise ValueError("at least one applicant")
        if not 0 <= self.fail_rate <= 1:
            raise ValueError("fail_rate is a share between 0 and 1")

    @property
    def scholarship(self) -> bool:
        return self.program == Program.Code.SCHOLARSHIP

    @property
    def workdir(self) -> Path:
        """A private temporary directory for the run's files (registry CSVs, bank results)."""
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix=f"baeum-{self.prefix}-"))
        return self._workdir

    def close(self) -> None:
        """Remove the run's temporary files."""
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def username(self, name: str) -> str:
        return f"{self.prefix}-{name}"


@dataclass(frozen=True)
class StageTiming:
    name: str
    seconds: float
    rows: int

    @property
    def rows_per_second(self) -> float | None:
        return self.rows / self.seconds if self.seconds > 0 else None


Stage = Callable[[Simulation], int]


def stages_for(program: str) -> list[tuple[str, Stage]]:
    """The stages of a round of `program`, in the order they are played."""
    from benefits.simulation import intake, payouts

    common = [
        ("setup", intake.setup),
        ("registries", intake.registries),
        ("citizens", intake.citizens),
        ("intake", intake.intake),
        ("screening", intake.screening),
        ("rescreen", intake.rescreen),
        ("review", intake.review),
        ("resubmissions", intake.resubmissions),
        ("selection", payouts.selection),
        ("batch", payouts.batch),
    ]
    if program == Program.Code.VOUCHER:
        money = [
            ("credit", payouts.credit),
            ("redemptions", payouts.redemptions),
            ("settlement", payouts.settlement),
        ]
    else:
        money = [
            ("bank-files", payouts.bank_files),
            ("bank-results", payouts.bank_results),
            ("account-fixes", payouts.account_fixes),
            ("reissue", payouts.reissue),
        ]
    return [*common, *money, ("report", payouts.report)]


def run(
    sim: Simulation,
    stages: list[tuple[str, Stage]] | None = None,
    *,
    on_stage: Callable[[StageTiming], None] | None = None,
) -> list[StageTiming]:
    """Play the stages (the program's own by default) and return the time each took."""
    timings = []
    for name, stage in stages if stages is not None else stages_for(sim.program):
        started = time.perf_counter()
        rows = stage(sim)
        timing = StageTiming(name, time.perf_counter() - started, rows)
        timings.append(timing)
        if on_stage is not None:
            on_stage(timing)
    return timings

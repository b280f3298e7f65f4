"""The simulated population: who applies, what they claim, and what the registries say.

Everything a person does is drawn from the run's seed, so two runs with one seed play
the same story; only the identifying digits (RRN serials, account numbers) come from the
run's own salt, so that runs on one database never collide on a person or an account.
"""

import csv
import random
import time
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from benefits.models import Application, Program
from core.banks import BANKS
from core.crypto import rrn_hmac
from core.districts import SEOUL_DISTRICTS
from eligibility.imports import active_snapshot
from eligibility.models import RECORD_MODELS, RegistryKind
from eligibility.registry_csv import COLUMNS

Income = Application.IncomeCategory

# The approved catalogue of the simulation: (course id, name, institution, vocational).
COURSES = (
    ("SIM-C001", "빅데이터 분석 실무", "서울직업전문학교", True),
    ("SIM-C002", "전기기능사 취득 과정", "서울기술교육원", True),
    ("SIM-C003", "바리스타 자격 과정", "마포평생학습관", True),
    ("SIM-C004", "요양보호사 양성 과정", "서울요양보호사교육원", True),
    ("SIM-C005", "웹 개발자 부트캠프", "서울디지털아카데미", True),
    ("SIM-C006", "용접기능사 과정", "서울기술교육원", True),
    ("SIM-C007", "시니어 스마트폰 활용", "종로노인복지관", False),
)
VOCATIONAL = tuple(c for c in COURSES if c[3])
NOT_VOCATIONAL = tuple(c for c in COURSES if not c[3])
SURNAMES = "김이박최정강조윤장임한오서신권황안송류홍"
GIVEN = ("민준", "서연", "도윤", "지우", "하준", "서윤", "은우", "하은", "지호", "수아")
DISTRICTS = tuple(SEOUL_DISTRICTS)
BANK_CODES = tuple(BANKS)

# Shares of the population, per program: what people claim, and how the registries answer.
CLAIMS = {
    Program.Code.SCHOLARSHIP: ((Income.BASIC_LIVELIHOOD, 0.45), (Income.NEAR_POOR, 0.50)),
    Program.Code.VOUCHER: ((Income.BASIC_LIVELIHOOD, 0.20), (Income.NEAR_POOR, 0.25)),
}
NOT_IN_REGISTRY = 0.04  # a low-income claim the social-security registry does not confirm
UNDERSTATED = 0.04  # claimed near-poor, registered as basic livelihood (a review)
NON_VOCATIONAL_COURSE = 0.04
NO_CERTIFICATE = 0.05  # a scholarship applicant who forgets the certificate (documents asked)
NAEILBAEUM, YOUTH_ALLOWANCE, NATIONAL_VOUCHER = 0.04, 0.03, 0.02
SHARED_ACCOUNT = 0.01
UNDER_19 = 0.01  # voucher applicants too young


@dataclass(slots=True)
class Person:
    index: int
    rrn: str
    legal_name: str
    phone: str
    district: str
    address: str
    bank_code: str
    account_number: str
    income_category: str
    registry_status: str | None  # what the social-security registry says, if it lists them
    course: tuple[str, str, str, bool] | None
    certificate: bool
    naeilbaeum: bool
    youth_allowance: bool
    national_voucher: bool
    rrn_hmac: str = ""
    applicant_id: int | None = None


# An RRN's six last digits hold a million serials: the people of serials n and n + 10**6
# are born on days of different residues modulo this, so that no two of a run share an RRN
# (up to this many million people).
SERIAL_BLOCKS = 4


def _rrn(rng: random.Random, serial: int, *, minor: bool, today: date) -> str:
    block = serial // 10**6 % SERIAL_BLOCKS
    if minor:
        days = 365 * 17 + rng.randrange(0, 300 // SERIAL_BLOCKS) * SERIAL_BLOCKS + block
        born = today - timedelta(days=days)
    else:
        days = rng.randrange(0, 365 * 38 // SERIAL_BLOCKS) * SERIAL_BLOCKS + block
        born = date(1962, 1, 1) + timedelta(days=days)
    gender = (3 if born.year >= 2000 else 1) + rng.randrange(2)
    return f"{born:%y%m%d}{gender}{serial % 10**6:06d}"


def _draw(index: int, *, program: str, seed: int, salt: int, today: date) -> tuple[Person, bool]:
    """Person `index` as drawn alone, and whether they give the previous person's account."""
    rng = random.Random(f"{seed}:person:{index}")
    scholarship = program == Program.Code.SCHOLARSHIP
    draw = rng.random()
    income = Income.NONE
    for category, share in CLAIMS[program]:
        if draw < share:
            income = category
            break
        draw -= share
    status = None
    if income != Income.NONE:
        status = income
        draw = rng.random()
        if draw < NOT_IN_REGISTRY:
            status = None
        elif income == Income.NEAR_POOR and draw < NOT_IN_REGISTRY + UNDERSTATED:
            status = Income.BASIC_LIVELIHOOD
    course = None
    if scholarship:
        pool = NOT_VOCATIONAL if rng.random() < NON_VOCATIONAL_COURSE else VOCATIONAL
        course = pool[rng.randrange(len(pool))]
    name = rng.choice(SURNAMES) + rng.choice(GIVEN)
    minor = not scholarship and rng.random() < UNDER_19
    # Serials and accounts follow the index under the run's salt: unique within a run.
    rrn = _rrn(rng, salt + index, minor=minor, today=today)
    person = Person(
        index=index,
        rrn=rrn,
        rrn_hmac=rrn_hmac(rrn),
        legal_name=name,
        phone=f"010-{rng.randrange(1000, 10000)}-{rng.randrange(1000, 10000)}",
        district=DISTRICTS[rng.randrange(len(DISTRICTS))],
        address=f"서울특별시 {rng.randrange(1, 300)}번길 {rng.randrange(1, 50)}",
        bank_code=BANK_CODES[rng.randrange(len(BANK_CODES))],
        account_number=f"{salt % 10**6:06d}{index:08d}",
        income_category=income,
        registry_status=status,
        course=course,
        certificate=scholarship and rng.random() >= NO_CERTIFICATE,
        naeilbaeum=rng.random() < NAEILBAEUM,
        youth_allowance=rng.random() < YOUTH_ALLOWANCE,
        national_voucher=rng.random() < NATIONAL_VOUCHER,
    )
    # A fraud signal: now and then someone gives the previous person's account.
    return person, rng.random() < SHARED_ACCOUNT


OTHER_BENEFITS = ("naeilbaeum", "youth_allowance", "national_voucher")


class Population(Sequence):
    """`count` people (indexes start…start+count-1) for a round of `program`, drawn when a
    slice of them is read rather than held: a city-wide round's million people would take
    more than a gigabyte. Person i is the same whichever slice draws them; the applicant
    each one became is kept (`remember`), eight bytes a person."""

    def __init__(self, *, program: str, count: int, seed: int, salt: int, today: date, start=0):
        self.start, self.count = start, count
        self._args = {"program": program, "seed": seed, "salt": salt, "today": today}
        self._applicants = array("q", bytes(8 * count))
        self.drawing_seconds = 0.0  # time spent drawing people, for a bench to set apart
        # However few they are, someone holds each of the other benefits, for screening to
        # find: when nobody does, the person a quarter, a half, three quarters in does.
        self._forced: dict[int, list[str]] = {}
        missing = set(OTHER_BENEFITS) if count > 3 else set()
        for person in self._people(start, start + count) if missing else ():
            missing -= {holds for holds in OTHER_BENEFITS if getattr(person, holds)}
            if not missing:
                break
        for position, holds in enumerate(OTHER_BENEFITS):
            if holds in missing:
                self._forced.setdefault(start + (position + 1) * count // 4, []).append(holds)

    def __len__(self) -> int:
        return self.count

    def _people(self, first: int, stop: int):
        """Draw people first…stop-1 in order, each with the account they give."""
        began = time.perf_counter()
        drawn = []
        # Whoever gives the previous person's account gives the one that person gives.
        back = first
        while back > self.start and _draw(back, **self._args)[1]:
            back -= 1
        previous = None
        for index in range(back, stop):
            person, copies = _draw(index, **self._args)
            if copies and index > self.start and previous is not None:
                person.bank_code = previous.bank_code
                person.account_number = previous.account_number
            previous = person
            if index >= first:
                for holds in self._forced.get(index, ()):
                    setattr(person, holds, True)
                person.applicant_id = self._applicants[index - self.start] or None
                drawn.append(person)
        self.drawing_seconds += time.perf_counter() - began
        return drawn

    def __getitem__(self, key):
        if isinstance(key, slice):
            first, stop, step = key.indices(self.count)
            if step != 1:
                raise ValueError("a population is read in plain slices")
            return self._people(self.start + first, self.start + max(first, stop))
        if key < 0:
            key += self.count
        if not 0 <= key < self.count:
            raise IndexError(key)
        return self._people(self.start + key, self.start + key + 1)[0]

    def __iter__(self):
        for first in range(0, self.count, DRAW_CHUNK):
            yield from self[first : first + DRAW_CHUNK]

    def remember(self, people: list[Person]) -> None:
        """Keep the applicant each of these people became."""
        for person in people:
            self._applicants[person.index - self.start] = person.applicant_id or 0


DRAW_CHUNK = 10_000


def people(
    *, program: str, count: int, seed: int, salt: int, today: date, start: int = 0
) -> list[Person]:
    """Draw `count` people (indexes start…start+count-1) for a round of `program`."""
    return list(
        Population(program=program, count=count, seed=seed, salt=salt, today=today, start=start)
    )


def replacement_account(applicant_id: int, salt: int) -> str:
    """The account a citizen gives after a payment to the first one failed: a digit longer
    than any first account, so never someone else's."""
    return f"9{salt % 10**6:06d}{applicant_id:08d}"


def training(person: Person, period: tuple[date, date]) -> dict | None:
    """The training an application names: the person's course over the round's period."""
    if person.course is None:
        return None
    course_id, name, institution, _ = person.course
    return {
        "course_id": course_id,
        "course_name": name,
        "institution": institution,
        "starts_on": period[0] + timedelta(days=14),
        "ends_on": min(period[0] + timedelta(days=134), period[1]),
        "weekly_hours": 15,
    }


# Registry files.


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _carried_rows(kind: str, skip: set[str]):
    """The active snapshot's rows as CSV values with `rrn_hmac`, except those of `skip`."""
    snapshot = active_snapshot(kind)
    if snapshot is None:
        return
    model = RECORD_MODELS[kind]
    person = kind != RegistryKind.TRAINING_COURSES
    columns = (("rrn_hmac",) if person else ()) + COLUMNS[kind]
    rows = (
        model.objects.filter(snapshot=snapshot)
        .order_by("line")
        .values_list(*columns)
        .iterator(chunk_size=10_000)
    )
    for row in rows:
        if row[0] in skip:
            continue
        if kind == RegistryKind.YOUTH_ALLOWANCE:
            row = (row[0], f"{row[1]:%Y-%m}", f"{row[2]:%Y-%m}")
        yield [_csv_value(v) for v in row]


def registry_files(
    *,
    directory: Path,
    population: Iterable[Person],
    year: int,
    period: tuple[date, date],
    carry_over: bool,
) -> dict[str, tuple[Path, int]]:
    """Write the five registry CSVs for the population; return {kind: (path, rows)}.

    Person registries name people by `rrn_hmac`: the files on disk hold no RRN, and rows
    carried over from the active snapshots (the other rounds' people) have only their hash.
    The people are read once, as they stream.
    """
    start, end = period
    training_from, training_to = start + timedelta(days=14), start + timedelta(days=134)
    mine: set[str] = set()
    paths, files, writers, rows = {}, {}, {}, dict.fromkeys(RegistryKind.values, 0)
    try:
        for kind in RegistryKind.values:
            person = kind != RegistryKind.TRAINING_COURSES
            paths[kind] = directory / f"{kind}.csv"
            files[kind] = paths[kind].open("w", newline="", encoding="utf-8")
            writers[kind] = csv.writer(files[kind], lineterminator="\n")
            writers[kind].writerow((("rrn_hmac",) if person else ()) + COLUMNS[kind])

        def write(kind: str, row: list) -> None:
            writers[kind].writerow([_csv_value(v) for v in row])
            rows[kind] += 1

        for person in population:
            hmac = person.rrn_hmac
            if carry_over:
                mine.add(hmac)
            if person.registry_status:
                write(
                    RegistryKind.SOCIAL_SECURITY,
                    [hmac, person.registry_status, person.district, date(year - 1, 1, 1), None],
                )
            if person.naeilbaeum:
                course_id = person.course[0] if person.course else "HRD-OTHER"
                write(
                    RegistryKind.NAEILBAEUM,
                    [hmac, date(year, 1, 1), date(year + 4, 12, 31), course_id, training_from,
                     training_to],
                )  # fmt: skip
            if person.youth_allowance:
                write(
                    RegistryKind.YOUTH_ALLOWANCE,
                    [hmac, f"{start:%Y-%m}", f"{min(start + timedelta(days=150), end):%Y-%m}"],
                )
            if person.national_voucher:
                write(RegistryKind.NATIONAL_VOUCHER, [hmac, year])
        for course_id, name, institution, vocational in COURSES:
            write(RegistryKind.TRAINING_COURSES, [course_id, name, institution, start, end,
                                                  vocational])  # fmt: skip
        if carry_over:
            course_ids = {c[0] for c in COURSES}
            for kind in RegistryKind.values:
                person = kind != RegistryKind.TRAINING_COURSES
                for row in _carried_rows(kind, mine if person else course_ids):
                    writers[kind].writerow(row)
                    rows[kind] += 1
    finally:
        for f in files.values():
            f.close()
    return {kind: (paths[kind], rows[kind]) for kind in RegistryKind.values}

"""The simulated population: who applies, what they claim, and what the registries say.

Everything a person does is drawn from the run's seed, so two runs with one seed play
the same story; only the identifying digits (RRN serials, account numbers) come from the
run's own salt, so that runs on one database never collide on a person or an account.
"""

import csv
import random
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


def _rrn(rng: random.Random, serial: int, *, minor: bool, today: date) -> str:
    if minor:
        born = today - timedelta(days=365 * 17 + rng.randrange(0, 300))
    else:
        born = date(1962, 1, 1) + timedelta(days=rng.randrange(0, 365 * 38))
    gender = (3 if born.year >= 2000 else 1) + rng.randrange(2)
    return f"{born:%y%m%d}{gender}{serial % 10**6:06d}"


def people(
    *, program: str, count: int, seed: int, salt: int, today: date, start: int = 0
) -> list[Person]:
    """Draw `count` people (indexes start…start+count-1) for a round of `program`."""
    result = []
    claims = CLAIMS[program]
    scholarship = program == Program.Code.SCHOLARSHIP
    for index in range(start, start + count):
        rng = random.Random(f"{seed}:person:{index}")
        draw = rng.random()
        income = Income.NONE
        for category, share in claims:
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
        own_account = f"{salt % 10**6:06d}{index:08d}"
        rrn = _rrn(rng, salt + index, minor=minor, today=today)
        result.append(
            Person(
                index=index,
                rrn=rrn,
                rrn_hmac=rrn_hmac(rrn),
                legal_name=name,
                phone=f"010-{rng.randrange(1000, 10000)}-{rng.randrange(1000, 10000)}",
                district=DISTRICTS[rng.randrange(len(DISTRICTS))],
                address=f"서울특별시 {rng.randrange(1, 300)}번길 {rng.randrange(1, 50)}",
                bank_code=BANK_CODES[rng.randrange(len(BANK_CODES))],
                account_number=own_account,
                income_category=income,
                registry_status=status,
                course=course,
                certificate=scholarship and rng.random() >= NO_CERTIFICATE,
                naeilbaeum=rng.random() < NAEILBAEUM,
                youth_allowance=rng.random() < YOUTH_ALLOWANCE,
                national_voucher=rng.random() < NATIONAL_VOUCHER,
            )
        )
        # A fraud signal: now and then someone gives the previous person's account.
        if result[-1].index > start and rng.random() < SHARED_ACCOUNT:
            result[-1].bank_code = result[-2].bank_code
            result[-1].account_number = result[-2].account_number
    # However few they are, someone holds each of the other benefits, for screening to find.
    for position, holds in enumerate(("naeilbaeum", "youth_allowance", "national_voucher")):
        if len(result) > 3 and not any(getattr(p, holds) for p in result):
            setattr(result[(position + 1) * len(result) // 4], holds, True)
    return result


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
    population: list[Person],
    year: int,
    period: tuple[date, date],
    carry_over: bool,
) -> dict[str, tuple[Path, int]]:
    """Write the five registry CSVs for the population; return {kind: (path, rows)}.

    Person registries name people by `rrn_hmac`: the files on disk hold no RRN, and rows
    carried over from the active snapshots (the other rounds' people) have only their hash.
    """
    hmacs = [p.rrn_hmac for p in population]
    mine = set(hmacs)
    course_ids = {c[0] for c in COURSES}
    start, end = period
    training_from, training_to = start + timedelta(days=14), start + timedelta(days=134)
    own: dict[str, list[list]] = {kind: [] for kind in RegistryKind.values}
    for person, hmac in zip(population, hmacs, strict=True):
        if person.registry_status:
            own[RegistryKind.SOCIAL_SECURITY].append(
                [hmac, person.registry_status, person.district, date(year - 1, 1, 1), None]
            )
        if person.naeilbaeum:
            course_id = person.course[0] if person.course else "HRD-OTHER"
            own[RegistryKind.NAEILBAEUM].append(
                [hmac, date(year, 1, 1), date(year + 4, 12, 31), course_id, training_from,
                 training_to]
            )  # fmt: skip
        if person.youth_allowance:
            own[RegistryKind.YOUTH_ALLOWANCE].append(
                [hmac, f"{start:%Y-%m}", f"{min(start + timedelta(days=150), end):%Y-%m}"]
            )
        if person.national_voucher:
            own[RegistryKind.NATIONAL_VOUCHER].append([hmac, year])
    own[RegistryKind.TRAINING_COURSES] = [
        [course_id, name, institution, start, end, vocational]
        for course_id, name, institution, vocational in COURSES
    ]
    paths = {}
    for kind in RegistryKind.values:
        person = kind != RegistryKind.TRAINING_COURSES
        path = directory / f"{kind}.csv"
        with path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow((("rrn_hmac",) if person else ()) + COLUMNS[kind])
            writer.writerows([_csv_value(v) for v in row] for row in own[kind])
            rows = len(own[kind])
            if carry_over:
                for row in _carried_rows(kind, mine if person else course_ids):
                    writer.writerow(row)
                    rows += 1
        paths[kind] = (path, rows)
    return paths

"""The demo world `seed_demo` loads: both programs through a year of rounds, told by the services.

Every state change goes through the services the API and the staff workbench call (register,
profile, apply, upload, submit, screen, decide, close, select, batch, approve, export, bank
results, vouchers, redemptions), so the demo shows what Baeum does, not what a fixture says.
Only the calendar is pretended: the earlier rounds' application windows are moved into the
past once their applications are in, since a round accepts applications only while open.

The cast is a fixed pattern of 40 parts played over and over (citizen001 plays part 1,
citizen041 plays it again): with the default 200 applicants every part has five players, and
`--applicants 40` still shows every state. Round capacities follow from the cast, so the
numbers the README quotes are the same on every machine.
"""

import csv
import io
import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.utils import timezone

from benefits import document_services, rounds, services
from benefits.after_decision import application_appeal_file
from benefits.models import Applicant, Application, Program, Round
from benefits.screening_record import application_screen
from benefits.selection import round_select
from benefits.training_end import application_training_end
from core.banks import BANKS
from core.districts import SEOUL_DISTRICTS
from eligibility.imports import active_snapshot, registry_import_create, registry_import_run
from payments.exports import bank_file_for_download, bank_file_generate
from payments.imports import bank_results_import
from payments.models import BankFile, Payment, VoucherAccount
from payments.recoveries import recovery_repayment_record
from payments.services import (
    batch_approve,
    batch_build,
    batch_create,
    batch_disburse,
    batch_submit,
)
from payments.vouchers import voucher_course_complete, voucher_redeem, voucher_refund

User = get_user_model()

SCHOLARSHIP, VOUCHER = Program.Code.SCHOLARSHIP, Program.Code.VOUCHER
PROGRAMS = {
    SCHOLARSHIP: (
        "Seoul citizen lifelong-learning scholarship",
        "서울시민 평생학습 장학금",
        1_000_000,
    ),
    VOUCHER: ("Lifelong-learning voucher", "평생학습 바우처", 350_000),
}
DUPLICATE_POLICY = {
    "naeilbaeum": "review",
    "youth_allowance": "review",
    "national_voucher": "block",
}
OPEN_ROUND_CAPACITY = 3000

# The README's citizen: the demo registries know her (a basic-livelihood recipient in
# 마포구 who also holds a Naeil-baeum card for the same months), so her screening asks
# for a person.
README_CITIZEN_RRN = "900101-2345678"
README_CITIZEN_DISTRICT = "11440"

# The approved catalogue of the demo (course id, name, institution, vocational). The README
# imports it again with one course more: keep the two in step.
COURSES = [
    ("AIG20260001", "빅데이터 분석 실무", "서울직업전문학교", True),
    ("AIG20260002", "전기기능사 취득 과정", "한국폴리텍대학 서울정수캠퍼스", True),
    ("AIG20260003", "바리스타 자격 과정", "마포평생학습관", True),
    ("AIG20260004", "요양보호사 양성 과정", "서울요양보호사교육원", True),
    ("AIG20260005", "시니어 스마트폰 활용", "종로노인복지관", False),
    ("AIG20260006", "웹 개발자 부트캠프", "서울디지털재단 아카데미", True),
]
VOCATIONAL = [i for i, course in enumerate(COURSES) if course[3]]
NOT_VOCATIONAL = next(i for i, course in enumerate(COURSES) if not course[3])


@dataclass(frozen=True)
class RoundPlan:
    """One demo round: where its window lies and how far the year has carried it."""

    key: str
    program: str
    ordinal: int
    opened_days_ago: int
    # draft, open, closed (in review), selected, checker (a batch waits for its approver),
    # paid (a reconciled batch with failures), vouchers (issued and redeemed).
    stage: str


ROUNDS = [
    RoundPlan("s1", SCHOLARSHIP, 1, 150, "paid"),
    RoundPlan("s2", SCHOLARSHIP, 2, 95, "checker"),
    RoundPlan("s3", SCHOLARSHIP, 3, 50, "closed"),
    RoundPlan("s4", SCHOLARSHIP, 4, 3, "open"),
    RoundPlan("v1", VOUCHER, 1, 140, "vouchers"),
    RoundPlan("v2", VOUCHER, 2, 60, "selected"),
    RoundPlan("v3", VOUCHER, 3, 3, "open"),
]
WINDOW_DAYS = 30


@dataclass(frozen=True)
class Part:
    """What one demo citizen does: the round, how far the application goes, and the facts
    the registries hold about the person."""

    round: str
    path: tuple[str, ...]
    income: str = "basic_livelihood"
    # The person's status in the social-security registry (None: not in it).
    registry: str | None = "basic_livelihood"
    duplicate: str | None = None  # naeilbaeum, youth_allowance or national_voucher
    certificate: bool = True  # the enrollment certificate is uploaded (scholarship)
    course: int | None = None  # index in COURSES; None: a vocational one
    shared_account: bool = False  # shares one bank account with the round's other sharer


DRAFT: tuple[str, ...] = ()
REVIEW = ("submit",)
DOCS = ("submit", "request_documents")
APPROVE = ("submit", "approve")
REJECT = ("submit", "reject")
APPEAL = ("submit", "reject", "appeal")  # rejected, and the citizen objects
WITHDRAW = ("submit", "withdraw")
NEAR = {"income": "near_poor", "registry": "near_poor"}

CAST = [
    Part("v2", APPROVE),  # citizen001: the README's voucher recipient
    Part("s4", DRAFT),
    Part("s3", APPROVE, shared_account=True),
    Part("s3", APPROVE, shared_account=True),
    Part("s4", REVIEW, duplicate="naeilbaeum"),
    Part("s2", APPROVE, shared_account=True),
    Part("s2", APPROVE, shared_account=True),
    Part("s1", APPROVE),
    Part("v1", APPROVE),
    Part("s4", DOCS, certificate=False, **NEAR),
    Part("s3", REVIEW, duplicate="naeilbaeum"),
    Part("s3", REVIEW, income="near_poor", registry=None),
    Part("s2", APPROVE),
    Part("s1", APPROVE, **NEAR),
    Part("v1", APPROVE),
    Part("s4", APPROVE),
    Part("s3", REVIEW, duplicate="national_voucher"),
    Part("s3", DOCS, certificate=False),
    Part("s2", APPROVE, **NEAR),
    Part("s1", APPROVE),
    Part("v3", REVIEW),
    Part("s4", REJECT, income="near_poor", registry=None),
    Part("s3", APPEAL, course=NOT_VOCATIONAL),
    Part("s3", WITHDRAW),
    Part("s2", REJECT, registry=None),
    Part("s1", APPROVE, **NEAR),
    Part("v2", APPROVE, **NEAR),
    Part("s4", WITHDRAW),
    Part("s3", APPROVE),
    Part("s3", APPROVE, **NEAR),
    Part("s2", WITHDRAW),
    Part("s1", APPROVE),
    Part("v1", APPROVE),
    Part("s4", REVIEW, duplicate="youth_allowance", **NEAR),
    Part("s4", REVIEW),
    Part("s2", APPROVE),
    Part("s1", REJECT, registry=None),
    Part("v2", REJECT, duplicate="national_voucher"),
    Part("v3", DRAFT),
    Part("v3", APPROVE),
]

# How the spring voucher holders used their vouchers, in turn: the amount charged, then.
VOUCHER_USES = (
    (350_000, "complete"),  # all of it, on a course completed: an excellent user
    (200_000, "refund"),  # 50,000 of it refunded
    (120_000, None),
    (350_000, "complete"),
    (0, None),  # not used yet
)
REASONS = {
    "request_documents": "소득 증빙 서류와 수강 확인서를 올려 주세요.",
    "reject": "사회보장 정보로 자격이 확인되지 않습니다.",
    "withdraw": "개인 사정",
    "appeal": "직업능력개발 훈련 과정으로 인정된 과정입니다. 확인서를 첨부합니다.",
    "training_ended": "훈련기관 통보: 개인 사정으로 수강을 포기했습니다.",
}
SURNAMES = "김이박최정강조윤장임한오서신권황안송류홍"
GIVEN = [
    "민준",
    "서연",
    "도윤",
    "지우",
    "하준",
    "서윤",
    "은우",
    "하은",
    "지호",
    "수아",
    "예준",
    "지민",
]
# The smallest PDF that parses whole: one empty A4 page (a real upload is a scan).
PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>endobj\n"
    b"trailer<</Root 1 0 R>>\nstartxref\n0\n%%EOF\n"
)


def synthetic_rrn(rng: random.Random) -> str:
    born = date(1960, 1, 1) + timedelta(days=rng.randrange(0, 365 * 45))
    female = rng.random() < 0.5
    gender = (3 if born.year >= 2000 else 1) + (1 if female else 0)
    return f"{born:%y%m%d}{gender}{rng.randrange(0, 10**6):06d}"


@dataclass(frozen=True)
class Citizen:
    number: int
    part: Part
    rrn: str
    district: str

    @property
    def username(self) -> str:
        return f"citizen{self.number:03d}"

    @property
    def repetition(self) -> int:
        return (self.number - 1) // len(CAST)


def cast(count: int) -> list[Citizen]:
    """The demo citizens: who they are and which part each plays."""
    districts = list(SEOUL_DISTRICTS)
    return [
        Citizen(
            number=i,
            part=CAST[(i - 1) % len(CAST)],
            rrn=synthetic_rrn(random.Random(i)),
            district=districts[i % len(districts)],
        )
        for i in range(1, count + 1)
    ]


def capacity(plan: RoundPlan, citizens: list[Citizen]) -> int:
    """The round's seats: fewer than its approvals where the demo shows a waitlist."""
    if plan.stage == "open":
        return OPEN_ROUND_CAPACITY
    parts = [c.part for c in citizens if c.part.round == plan.key]
    approved = [p for p in parts if p.path == APPROVE]
    if plan.key == "s2":  # every basic-livelihood recipient gets a seat, the near-poor wait
        seats = sum(p.income == "basic_livelihood" for p in approved)
    elif plan.key == "s3":  # the README's selection leaves a fifth waiting
        seats = len(approved) - len(approved) // 5
    elif plan.key == "v1":  # room in the budget for the README's top-up
        seats = len(approved) + len(approved) // 3
    else:
        seats = len(approved) + 2
    return max(seats, 1)


# Registries.


def training_period(plan: RoundPlan, today: date) -> tuple[date, date]:
    opened = today - timedelta(days=plan.opened_days_ago)
    return opened + timedelta(days=20), opened + timedelta(days=140)


def registry_files(citizens: list[Citizen], today: date) -> dict[str, list[str]]:
    """The synthetic registries, as the CSV lines an operator would import."""
    plans = {plan.key: plan for plan in ROUNDS}
    year = today.year
    social = [
        f"{c.rrn},{c.part.registry},{c.district},{date(year - 1, 1, 1)},"
        for c in citizens
        if c.part.registry
    ]
    social.append(
        f"{README_CITIZEN_RRN},basic_livelihood,{README_CITIZEN_DISTRICT},{date(year - 1, 1, 1)},"
    )
    card = f"{date(year, 1, 1)},{date(year + 4, 12, 31)}"
    naeilbaeum = [
        f"{c.rrn},{card},HRD{year}{c.number:05d},{start},{end}"
        for c in citizens
        if c.part.duplicate == "naeilbaeum"
        for start, end in [training_period(plans[c.part.round], today)]
    ]
    month = today.replace(day=1)
    naeilbaeum.append(
        f"{README_CITIZEN_RRN},{card},HRD{year}00000,{month},{month + timedelta(days=120)}"
    )
    youth = [
        f"{c.rrn},{start:%Y-%m},{end:%Y-%m}"
        for c in citizens
        if c.part.duplicate == "youth_allowance"
        for start, end in [training_period(plans[c.part.round], today)]
    ]
    return {
        "training_courses": ["course_id,name,institution,starts_on,ends_on,vocational"]
        + [
            f"{cid},{name},{inst},{date(year, 1, 1)},{date(year + 1, 12, 31)},"
            f"{'true' if vocational else 'false'}"
            for cid, name, inst, vocational in COURSES
        ],
        "social_security": ["rrn,status,district,valid_from,valid_to", *social],
        "naeilbaeum": [
            "rrn,card_valid_from,card_valid_to,course_id,training_from,training_to",
            *naeilbaeum,
        ],
        "youth_allowance": ["rrn,paid_from,paid_to", *youth],
        "national_voucher": ["rrn,year"]
        + [f"{c.rrn},{year}" for c in citizens if c.part.duplicate == "national_voucher"],
    }


def registries_import(citizens: list[Citizen], *, actor, out) -> None:
    """Import each synthetic registry through the import pipeline, unless one is active."""
    for kind, lines in registry_files(citizens, timezone.localdate()).items():
        if active_snapshot(kind) is not None:
            continue
        upload = SimpleUploadedFile(f"{kind}.csv", ("\n".join(lines) + "\n").encode())
        job = registry_import_create(kind=kind, uploaded_file=upload, actor=actor, schedule=False)
        job = registry_import_run(job_id=job.pk)
        out(f"Registry {kind}: {job.status}, {job.rows_read} rows")


# Rounds and the people in them.


def round_name(plan: RoundPlan, year: int) -> str:
    return f"{PROGRAMS[plan.program][1]} {year}년 {plan.ordinal}차"


def demo_loaded() -> bool:
    """Whether rounds are there already: a demo loaded before (perhaps an older one, or in
    another year), or rounds of someone's own. Either way the demo leaves them be."""
    return Round.objects.exists()


class Demo:
    """Play the whole cast through the services, one round stage after another."""

    def __init__(self, *, citizens: list[Citizen], staff: dict, password: str, out):
        self.citizens = citizens
        self.staff = staff
        self.password_hash = make_password(password)
        self.out = out
        self.today = timezone.localdate()
        self.rounds: dict[str, Round] = {}

    def play(self) -> None:
        for plan in ROUNDS:
            self.rounds[plan.key] = self._round(plan)
        self._draft_round()
        for citizen in self.citizens:
            self._citizen(citizen)
        # PBKDF2 is slow by design: the demo citizens share one hash rather than each
        # paying for their own.
        User.objects.filter(username__in=[c.username for c in self.citizens]).update(
            password=self.password_hash
        )
        for plan in ROUNDS:
            getattr(self, f"_stage_{plan.stage}")(plan, self.rounds[plan.key])

    # Rounds.

    def _round(self, plan: RoundPlan) -> Round:
        program = Program.objects.get(code=plan.program)
        tz = timezone.get_current_timezone()
        opened = self.today - timedelta(days=plan.opened_days_ago)
        closes = self.today + timedelta(days=WINDOW_DAYS - plan.opened_days_ago)
        amount = PROGRAMS[plan.program][2]
        seats = capacity(plan, self.citizens)
        round_ = Round.objects.create(
            program=program,
            name=round_name(plan, self.today.year),
            year=self.today.year,
            applications_open_at=datetime.combine(opened, time.min, tz),
            # Open until tomorrow while the demo applies; moved back when the round closes.
            applications_close_at=datetime.combine(
                max(closes, self.today + timedelta(days=1)), time.max, tz
            ),
            period_starts_on=date(self.today.year, 1, 1),
            period_ends_on=date(self.today.year, 12, 31),
            capacity=seats,
            amount=amount,
            budget=seats * amount,
            ruleset_version=f"{plan.program.lower()}-2026.1",
            duplicate_policy=DUPLICATE_POLICY,
            voucher_expires_on=(
                max(date(self.today.year, 12, 31), self.today + timedelta(days=60))
                if plan.program == VOUCHER
                else None
            ),
        )
        return rounds.round_open(round_=round_, actor=self.staff["manager"])

    def _draft_round(self) -> None:
        """Next year's first scholarship round, being prepared."""
        year = self.today.year + 1
        tz = timezone.get_current_timezone()
        amount = PROGRAMS[SCHOLARSHIP][2]
        Round.objects.create(
            program=Program.objects.get(code=SCHOLARSHIP),
            name=f"{PROGRAMS[SCHOLARSHIP][1]} {year}년 1차",
            year=year,
            applications_open_at=datetime.combine(date(year, 2, 1), time.min, tz),
            applications_close_at=datetime.combine(date(year, 2, 28), time.max, tz),
            period_starts_on=date(year, 1, 1),
            period_ends_on=date(year, 12, 31),
            capacity=OPEN_ROUND_CAPACITY,
            amount=amount,
            budget=OPEN_ROUND_CAPACITY * amount,
            ruleset_version="scholarship-2026.1",
            duplicate_policy=DUPLICATE_POLICY,
        )

    def _close(self, plan: RoundPlan, round_: Round) -> Round:
        round_ = rounds.round_close(round_=round_, actor=self.staff["manager"])
        closed = self.today - timedelta(days=plan.opened_days_ago - WINDOW_DAYS)
        Round.objects.filter(pk=round_.pk).update(
            applications_close_at=datetime.combine(
                closed, time.max, timezone.get_current_timezone()
            )
        )
        round_.refresh_from_db()
        return round_

    # Citizens.

    def _citizen(self, citizen: Citizen) -> None:
        rng = random.Random(citizen.number)
        part = citizen.part
        user = services.citizen_register(
            username=citizen.username, password=None, email=f"{citizen.username}@example.org"
        )
        legal_name = rng.choice(SURNAMES) + rng.choice(GIVEN)
        account = "".join(str(rng.randrange(10)) for _ in range(12))
        bank = rng.choice(list(BANKS))
        if part.shared_account:  # the round's two sharers in this repetition: one account
            bank, account = (
                "004",
                f"77{ord(part.round[0]):03d}{part.round[1]}{citizen.repetition:06d}",
            )
        applicant = services.applicant_profile_update(
            applicant=user.applicant,
            actor=user,
            data={
                "legal_name": legal_name,
                "rrn": citizen.rrn,
                "phone": f"010-{rng.randrange(1000, 10000)}-{rng.randrange(1000, 10000)}",
                "district": citizen.district,
                "address": f"서울특별시 {rng.randrange(1, 300)}번길 {rng.randrange(1, 50)}",
                "bank_code": bank,
                "account_number": account,
                "account_holder": legal_name,
                "consent_data_checks": True,
            },
        )
        plan = next(p for p in ROUNDS if p.key == part.round)
        round_ = self.rounds[part.round]
        training = None
        if round_.program.requires_training:
            default = VOCATIONAL[citizen.number % len(VOCATIONAL)]
            course = COURSES[part.course if part.course is not None else default]
            starts, ends = training_period(plan, self.today)
            training = {
                "course_id": course[0],
                "course_name": course[1],
                "institution": course[2],
                "starts_on": starts,
                "ends_on": ends,
                "weekly_hours": 15,
            }
        application = services.application_create(
            applicant=applicant,
            actor=user,
            round_=round_,
            income_category=part.income,
            training=training,
        )
        if training and part.certificate and part.path:
            document_services.document_add(
                application=application,
                actor=user,
                kind="enrollment_certificate",
                uploaded=SimpleUploadedFile("certificate.pdf", PDF, "application/pdf"),
            )
        caseworker = self.staff["caseworker"]
        for step in part.path:
            if step == "submit":
                application = services.application_submit(application=application, actor=user)
                # The trigger the submit's task uses, so that the task finds it done.
                application_screen(
                    application_id=application.pk,
                    trigger_key=f"submit:{application.submitted_at.isoformat()}",
                )
                application = Application.objects.get(pk=application.pk)
            elif step == "approve":
                application = services.application_approve(
                    application=application, actor=caseworker
                )
            elif step == "reject":
                application = services.application_reject(
                    application=application, actor=caseworker, reason=REASONS["reject"]
                )
            elif step == "request_documents":
                application = services.application_request_documents(
                    application=application, actor=caseworker, reason=REASONS[step]
                )
            elif step == "withdraw":
                application = services.application_withdraw(
                    application=application, actor=user, reason=REASONS[step]
                )
            elif step == "appeal":
                application = application_appeal_file(
                    applicant=applicant, pk=application.pk, actor=user, reason=REASONS[step]
                )

    # Stages.

    def _stage_open(self, plan: RoundPlan, round_: Round) -> None:
        pass

    def _stage_closed(self, plan: RoundPlan, round_: Round) -> None:
        self._close(plan, round_)

    def _stage_selected(self, plan: RoundPlan, round_: Round) -> Round:
        round_ = self._close(plan, round_)
        if not round_.applications.filter(status=Application.Status.APPROVED).exists():
            return round_
        return round_select(round_=round_, actor=self.staff["manager"]).round

    def _batch(self, round_: Round):
        if not round_.applications.filter(status=Application.Status.SELECTED).exists():
            return None
        finance1 = self.staff["finance1"]
        batch = batch_create(round_=round_, actor=finance1)
        batch = batch_build(batch_id=batch.pk)
        if not batch.payments.filter(status=Payment.Status.PENDING).exists():
            return None
        return batch_submit(batch=batch, actor=finance1)

    def _stage_checker(self, plan: RoundPlan, round_: Round) -> None:
        """Selected, and a batch prepared by finance1 waits for finance2's approval; one payee
        changed bank account after selection, and two selected people share one account."""
        round_ = self._stage_selected(plan, round_)
        selected = round_.applications.filter(status=Application.Status.SELECTED)
        # The last one: the round's sharers of one account come first in the cast.
        mover = selected.select_related("applicant__user").order_by("id").last()
        if mover is not None:
            services.applicant_profile_update(
                applicant=mover.applicant,
                actor=mover.applicant.user,
                data={"bank_code": "088", "account_number": "110234567890"},
            )
        self._batch(round_)

    def _approved_and_sent(self, round_: Round):
        batch = self._batch(round_)
        if batch is None:
            return None, b""
        batch = batch_approve(batch=batch, actor=self.staff["finance2"])
        content = b""
        if batch.pays_by_bank:
            # Made here rather than by the approval's task, which may run on a worker later.
            bank_file_generate(batch_id=batch.pk, fmt=BankFile.Format.CSV)
            _file, chunks = bank_file_for_download(
                batch=batch, fmt=BankFile.Format.CSV, actor=self.staff["finance1"]
            )
            content = b"".join(chunks)
        return batch_disburse(batch=batch, actor=self.staff["finance1"]), content

    def _stage_paid(self, plan: RoundPlan, round_: Round) -> None:
        """Paid by bank: the first two transfers failed; one of the two citizens has given
        another account since, so the next batch of the round reissues that payment."""
        round_ = self._stage_selected(plan, round_)
        batch, content = self._approved_and_sent(round_)
        if batch is None:
            return
        references = [row["reference"] for row in csv.DictReader(io.StringIO(content.decode()))]
        results = ["reference,result,reason"] + [
            f"{ref},failed,계좌 해지" if n < 2 else f"{ref},paid,"
            for n, ref in enumerate(references)
        ]
        bank_results_import(
            batch=batch, actor=self.staff["finance1"], data=("\n".join(results) + "\n").encode()
        )
        failed = batch.payments.filter(status=Payment.Status.FAILED).order_by("id").first()
        if failed is not None:
            applicant = Applicant.objects.select_related("user").get(applications__payments=failed)
            services.applicant_profile_update(
                applicant=applicant,
                actor=applicant.user,
                data={"bank_code": "020", "account_number": "1002987654321"},
            )
        self._drop_out(batch)

    def _drop_out(self, batch) -> None:
        """One paid recipient left the training a month in: the institution's notice opens a
        recovery, and the citizen has repaid part of it."""
        payment = batch.payments.filter(status=Payment.Status.PAID).order_by("-id").first()
        if payment is None:
            return
        application = payment.application
        ended = application_training_end(
            application=application,
            actor=self.staff["caseworker"],
            ended_on=application.training_starts_on + timedelta(days=30),
            reason=REASONS["training_ended"],
            evidence=SimpleUploadedFile("notice.pdf", PDF, "application/pdf"),
        )
        if ended.recovery is not None:
            recovery_repayment_record(
                recovery=ended.recovery,
                actor=self.staff["finance1"],
                amount=ended.recovery.amount // 4,
                paid_on=self.today,
            )

    def _stage_vouchers(self, plan: RoundPlan, round_: Round) -> None:
        """Vouchers issued and used at the demo provider: some spent in full on a completed
        course (the top-up's excellent users), some in part, some refunded in part."""
        round_ = self._stage_selected(plan, round_)
        batch, _ = self._approved_and_sent(round_)
        if batch is None:
            return
        provider = self.staff["provider"]
        accounts = VoucherAccount.objects.filter(round=round_).order_by("id")
        courses = [c[1] for c in COURSES]
        for n, account in enumerate(accounts):
            amount, then = VOUCHER_USES[n % len(VOUCHER_USES)]
            if not amount:
                continue
            entry = voucher_redeem(
                actor=provider,
                voucher_code=account.code,
                amount=amount,
                course=courses[n % len(courses)],
                idempotency_key=f"demo-{account.pk}",
            )
            if then == "complete":
                voucher_course_complete(actor=provider, redemption_id=entry.pk)
            elif then == "refund":
                voucher_refund(actor=provider, redemption_id=entry.pk, amount=50_000)


@transaction.atomic
def demo_play(*, citizens: list[Citizen], staff: dict, password: str, out) -> None:
    """Load the whole demo in one transaction: a failure leaves nothing half made."""
    Demo(citizens=citizens, staff=staff, password=password, out=out).play()

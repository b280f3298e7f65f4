"""Load demo data: staff users, programs with an open round each, and citizens in every state."""

import random
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from benefits import services
from benefits.models import Applicant, Application, Program, Round
from core.banks import BANKS
from core.districts import SEOUL_DISTRICTS
from core.roles import Role, ensure_roles

User = get_user_model()

STAFF = {
    "caseworker": Role.CASEWORKER,
    "manager": Role.PROGRAM_MANAGER,
    "finance1": Role.FINANCE,
    "finance2": Role.FINANCE,
    "provider": Role.PROVIDER,
    "auditor": Role.AUDITOR,
}
PROGRAMS = {
    Program.Code.SCHOLARSHIP: (
        "Seoul citizen lifelong-learning scholarship",
        "서울시민 평생학습 장학금",
        1_000_000,
    ),
    Program.Code.VOUCHER: ("Lifelong-learning voucher", "평생학습 바우처", 350_000),
}
DEFAULT_DUPLICATE_POLICY = {
    "naeilbaeum": "review",
    "youth_allowance": "review",
    "national_voucher": "block",
}
CAPACITY = 3000
# The path each demo application takes; its position decides where it stops.
STATE_PATHS = {
    Application.Status.DRAFT: [],
    Application.Status.SUBMITTED: ["submit"],
    Application.Status.SCREENING: ["submit", "screen_start"],
    Application.Status.UNDER_REVIEW: ["submit", "screen_start", "screen_finish"],
    Application.Status.NEEDS_DOCUMENTS: ["submit", "screen_start", "screen_finish", "docs"],
    Application.Status.APPROVED: ["submit", "screen_start", "screen_finish", "approve"],
    Application.Status.REJECTED: ["submit", "screen_start", "screen_finish", "reject"],
    Application.Status.SELECTED: ["submit", "screen_start", "screen_finish", "approve", "select"],
    Application.Status.WAITLISTED: [
        "submit",
        "screen_start",
        "screen_finish",
        "approve",
        "waitlist",
    ],
    Application.Status.WITHDRAWN: ["submit", "withdraw"],
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


def synthetic_rrn(rng: random.Random) -> str:
    born = date(1960, 1, 1) + timedelta(days=rng.randrange(0, 365 * 45))
    female = rng.random() < 0.5
    gender = (3 if born.year >= 2000 else 1) + (1 if female else 0)
    return f"{born:%y%m%d}{gender}{rng.randrange(0, 10**6):06d}"


class Command(BaseCommand):
    help = "Create demo users, programs, open rounds and applicants (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--applicants", type=int, default=200)

    def handle(self, *args, applicants: int, **options):
        ensure_roles()
        password = settings.BAEUM_DEMO_PASSWORD
        staff = self._staff(password)
        rounds = self._programs_and_rounds(staff["manager"])
        created = self._applicants(applicants, password, rounds, staff)
        self.stdout.write(self.style.SUCCESS(f"Demo data ready ({created} new applicants)."))
        self.stdout.write(
            f"Logins (password '{password}'): admin (superuser), "
            + ", ".join(f"{name} ({role})" for name, role in STAFF.items())
            + f", citizen001…citizen{applicants:03d} (citizens)"
        )

    def _staff(self, password: str) -> dict:
        users = {}
        for username, role in STAFF.items():
            user, created = User.objects.get_or_create(
                username=username, defaults={"is_staff": True}
            )
            if created:
                user.set_password(password)
                user.save()
            user.groups.add(Group.objects.get(name=role))
            users[username] = user
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "admin@example.org", password)
        return users

    @transaction.atomic
    def _programs_and_rounds(self, manager) -> list[Round]:
        today = timezone.localdate()
        tz = timezone.get_current_timezone()
        rounds = []
        for code, (name, name_ko, amount) in PROGRAMS.items():
            program, _ = Program.objects.get_or_create(
                code=code, defaults={"name": name, "name_ko": name_ko}
            )
            round_ = program.rounds.filter(year=today.year).first()
            if round_ is None:
                round_ = Round.objects.create(
                    program=program,
                    name=f"{name_ko} {today.year}년 {today.month}월 모집",
                    year=today.year,
                    applications_open_at=datetime.combine(today, time.min, tz),
                    applications_close_at=datetime.combine(
                        today + timedelta(days=30), time.max, tz
                    ),
                    period_starts_on=date(today.year, 1, 1),
                    period_ends_on=date(today.year, 12, 31),
                    capacity=CAPACITY,
                    amount=amount,
                    budget=CAPACITY * amount,
                    ruleset_version=f"{code.lower()}-{today.year}.1",
                    duplicate_policy=DEFAULT_DUPLICATE_POLICY,
                )
            if round_.status == Round.Status.DRAFT:
                round_ = services.round_open(round_=round_, actor=manager)
            rounds.append(round_)
        return rounds

    def _applicants(self, count: int, password: str, rounds: list[Round], staff: dict) -> int:
        citizen_group = Group.objects.get(name=Role.CITIZEN)
        districts = list(SEOUL_DISTRICTS)
        banks = list(BANKS)
        states = list(STATE_PATHS)
        created = 0
        for i in range(1, count + 1):
            username = f"citizen{i:03d}"
            if User.objects.filter(username=username).exists():
                continue
            rng = random.Random(i)
            with transaction.atomic():
                user = User.objects.create_user(
                    username=username, password=password, email=f"{username}@example.org"
                )
                user.groups.add(citizen_group)
                applicant = Applicant.objects.create(user=user, email=user.email)
                legal_name = rng.choice(SURNAMES) + rng.choice(GIVEN)
                applicant = services.applicant_profile_update(
                    applicant=applicant,
                    actor=user,
                    data={
                        "legal_name": legal_name,
                        "rrn": synthetic_rrn(rng),
                        "phone": f"010-{rng.randrange(1000, 10000)}-{rng.randrange(1000, 10000)}",
                        "district": districts[i % len(districts)],
                        "address": f"서울특별시 {rng.randrange(1, 300)}번길 {rng.randrange(1, 50)}",
                        "bank_code": rng.choice(banks),
                        "account_number": "".join(str(rng.randrange(10)) for _ in range(12)),
                        "account_holder": legal_name,
                        "consent_data_checks": True,
                    },
                )
                self._application(applicant, user, rounds[i % 2], states[i % len(states)], staff)
            created += 1
        return created

    def _application(self, applicant, user, round_, state, staff) -> None:
        today = timezone.localdate()
        training = None
        if round_.program.requires_training:
            training = {
                "course_id": f"AIG2026{applicant.pk:07d}",
                "course_name": "빅데이터 분석 실무",
                "institution": "서울직업전문학교",
                "starts_on": today + timedelta(days=14),
                "ends_on": today + timedelta(days=120),
                "weekly_hours": 15,
            }
        income = ["basic_livelihood", "near_poor", "none"][applicant.pk % 3]
        application = services.application_create(
            applicant=applicant,
            actor=user,
            round_=round_,
            income_category=income,
            training=training,
        )
        caseworker, manager = staff["caseworker"], staff["manager"]
        steps = {
            "submit": lambda a: services.application_submit(application=a, actor=user),
            "screen_start": lambda a: services.application_screening_start(application=a),
            "screen_finish": lambda a: services.application_screening_finish(application=a),
            "docs": lambda a: services.application_request_documents(
                application=a, actor=caseworker, reason="소득 증빙 서류를 올려 주세요."
            ),
            "approve": lambda a: services.application_approve(application=a, actor=caseworker),
            "reject": lambda a: services.application_reject(
                application=a, actor=caseworker, reason="훈련 과정이 직업훈련 과정이 아닙니다."
            ),
            "select": lambda a: services.application_place(
                application=a, actor=manager, selected=True
            ),
            "waitlist": lambda a: services.application_place(
                application=a, actor=manager, selected=False
            ),
            "withdraw": lambda a: services.application_withdraw(
                application=a, actor=user, reason="개인 사정"
            ),
        }
        for step in STATE_PATHS[state]:
            application = steps[step](application)

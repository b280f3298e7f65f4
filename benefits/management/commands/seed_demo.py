"""Load demo data: staff users, programs with an open round each, and citizens in every state."""

import random
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from benefits import services
from benefits.models import Applicant, Application, Program, Round
from core.banks import BANKS
from core.crypto import account_fingerprint
from core.districts import SEOUL_DISTRICTS
from core.roles import Role, ensure_roles
from eligibility.imports import active_snapshot, registry_import_create, registry_import_run
from eligibility.screening import application_screen

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
    Application.Status.UNDER_REVIEW: ["submit", "screen"],
    Application.Status.NEEDS_DOCUMENTS: ["submit", "screen", "docs"],
    Application.Status.APPROVED: ["submit", "screen", "approve"],
    Application.Status.REJECTED: ["submit", "screen", "reject"],
    Application.Status.SELECTED: ["submit", "screen", "approve", "select"],
    Application.Status.WAITLISTED: ["submit", "screen", "approve", "waitlist"],
    Application.Status.WITHDRAWN: ["submit", "withdraw"],
}
# The approved catalogue of the demo (course id, name, institution, vocational).
COURSES = [
    ("AIG20260001", "빅데이터 분석 실무", "서울직업전문학교", True),
    ("AIG20260002", "전기기능사 취득 과정", "한국폴리텍대학 서울정수캠퍼스", True),
    ("AIG20260003", "바리스타 자격 과정", "마포평생학습관", True),
    ("AIG20260004", "요양보호사 양성 과정", "서울요양보호사교육원", True),
    ("AIG20260005", "시니어 스마트폰 활용", "종로노인복지관", False),
    ("AIG20260006", "웹 개발자 부트캠프", "서울디지털재단 아카데미", True),
]
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


def _screen(application: Application) -> Application:
    # The same trigger as the task scheduled by the submit, so that one is a no-op.
    trigger = f"submit:{application.submitted_at.isoformat()}"
    application_screen(application_id=application.pk, trigger_key=trigger)
    return Application.objects.get(pk=application.pk)


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
        self._provider(staff["provider"])
        self._registries(applicants, staff["manager"])
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
    def _provider(self, user) -> None:
        """A registered lifelong-learning institution that the demo `provider` acts for."""
        from payments.models import Provider, ProviderUser

        provider, _ = Provider.objects.get_or_create(
            business_registration_number="1348672683",
            defaults={
                "name": "서울시민대학 평생교육원",
                "bank_code": "020",
                "account_number": "1002123456789",
                "account_holder": "서울시민대학",
                "account_fingerprint": account_fingerprint("020", "1002123456789"),
            },
        )
        ProviderUser.objects.get_or_create(user=user, defaults={"provider": provider})

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

    def _registries(self, count: int, actor) -> None:
        """Import synthetic registries through the import pipeline, once per kind."""
        today = timezone.localdate()
        start, end = today + timedelta(days=14), today + timedelta(days=120)
        people = [synthetic_rrn(random.Random(i)) for i in range(1, count + 1)]
        files = {
            "training_courses": ["course_id,name,institution,starts_on,ends_on,vocational"]
            + [
                f"{cid},{name},{inst},{date(today.year, 1, 1)},{date(today.year + 1, 12, 31)},"
                f"{'true' if vocational else 'false'}"
                for cid, name, inst, vocational in COURSES
            ],
            # Two of every three citizens are on the social-security register.
            "social_security": ["rrn,status,district,valid_from,valid_to"]
            + [
                f"{rrn},{'basic_livelihood' if i % 2 else 'near_poor'},"
                f"{list(SEOUL_DISTRICTS)[(i + 1) % 25]},{date(today.year - 1, 1, 1)},"
                for i, rrn in enumerate(people)
                if i % 3 != 2
            ],
            "naeilbaeum": ["rrn,card_valid_from,card_valid_to,course_id,training_from,training_to"]
            + [
                f"{rrn},{date(today.year, 1, 1)},{date(today.year + 4, 12, 31)},AIG2026X{i:04d},"
                f"{start},{end}"
                for i, rrn in enumerate(people)
                if i % 11 == 4
            ],
            "youth_allowance": ["rrn,paid_from,paid_to"]
            + [f"{rrn},{start:%Y-%m},{end:%Y-%m}" for i, rrn in enumerate(people) if i % 13 == 6],
            "national_voucher": ["rrn,year"]
            + [f"{rrn},{today.year}" for i, rrn in enumerate(people) if i % 17 == 8],
        }
        for kind, lines in files.items():
            if active_snapshot(kind) is not None:
                continue
            upload = SimpleUploadedFile(f"{kind}.csv", ("\n".join(lines) + "\n").encode())
            job = registry_import_create(
                kind=kind, uploaded_file=upload, actor=actor, schedule=False
            )
            job = registry_import_run(job_id=job.pk)
            self.stdout.write(f"Registry {kind}: {job.status}, {job.rows_read} rows")

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
            course_id, name, institution, _vocational = COURSES[applicant.pk % len(COURSES)]
            training = {
                "course_id": course_id,
                "course_name": name,
                "institution": institution,
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
            "screen": lambda a: (
                application_screen(
                    application_id=a.pk, trigger_key=f"submit:{a.submitted_at.isoformat()}"
                )
                and Application.objects.get(pk=a.pk)
            ),
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

"""factory-boy factories; personal data is synthetic and valid."""

import functools
from datetime import date, datetime, time, timedelta

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.utils import timezone

from benefits.models import Applicant, Application, Program, Round
from core.crypto import account_fingerprint, rrn_hmac
from core.roles import Role
from core.rrn import rrn_birth_date

User = get_user_model()
PASSWORD = "correct-horse-battery"


@functools.cache
def _password_hash() -> str:
    return make_password(PASSWORD)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    # Hashed once for the whole run: a PBKDF2 hash per user made the suite minutes slower.
    password = factory.LazyFunction(_password_hash)

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        if create and extracted:
            self.groups.add(Group.objects.get(name=extracted))
        if create:
            self.save()


class ProgramFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Program
        django_get_or_create = ("code",)

    code = Program.Code.SCHOLARSHIP
    name = factory.LazyAttribute(lambda p: p.code.title())
    name_ko = factory.LazyAttribute(lambda p: p.code)


def _window_start(_):
    return datetime.combine(
        timezone.localdate() - timedelta(days=1), time.min, timezone.get_current_timezone()
    )


class RoundFactory(factory.django.DjangoModelFactory):
    """An open round accepting applications now (status set on the row, as data)."""

    class Meta:
        model = Round

    program = factory.SubFactory(ProgramFactory)
    name = factory.Sequence(lambda n: f"Round {n}")
    year = factory.LazyFunction(lambda: timezone.localdate().year)
    status = Round.Status.OPEN
    applications_open_at = factory.LazyAttribute(_window_start)
    applications_close_at = factory.LazyAttribute(
        lambda r: r.applications_open_at + timedelta(days=30)
    )
    period_starts_on = factory.LazyAttribute(lambda r: date(r.year, 1, 1))
    period_ends_on = factory.LazyAttribute(lambda r: date(r.year, 12, 31))
    capacity = 10
    amount = 1_000_000
    budget = factory.LazyAttribute(lambda r: r.capacity * r.amount)
    ruleset_version = "scholarship-test"


def rrn_for(n: int) -> str:
    born = date(1970, 1, 1) + timedelta(days=(n * 37) % 12000)
    gender = 3 if born.year >= 2000 else 1
    return f"{born:%y%m%d}{gender}{n % 1_000_000:06d}"


class ApplicantFactory(factory.django.DjangoModelFactory):
    """A citizen with a complete profile who consented to the checks."""

    class Meta:
        model = Applicant

    user = factory.SubFactory(UserFactory, role=Role.CITIZEN)
    legal_name = "김민준"
    rrn = factory.Sequence(rrn_for)
    rrn_hmac = factory.LazyAttribute(lambda a: rrn_hmac(a.rrn))
    birth_date = factory.LazyAttribute(lambda a: rrn_birth_date(a.rrn))
    phone = "010-1234-5678"
    email = factory.LazyAttribute(lambda a: a.user.email)
    district = "11440"
    address = "서울특별시 마포구 월드컵북로 1"
    bank_code = "004"
    account_number = factory.Sequence(lambda n: f"{123456789012 + n}")
    account_fingerprint = factory.LazyAttribute(
        lambda a: account_fingerprint(a.bank_code, a.account_number)
    )
    account_holder = "김민준"
    consent_data_checks = True
    consent_at = factory.LazyFunction(timezone.now)


class ApplicationFactory(factory.django.DjangoModelFactory):
    """A draft scholarship application with its training filled in."""

    class Meta:
        model = Application

    applicant = factory.SubFactory(ApplicantFactory)
    round = factory.SubFactory(RoundFactory)
    income_category = Application.IncomeCategory.BASIC_LIVELIHOOD
    course_id = "AIG20260001"
    course_name = "빅데이터 분석 실무"
    institution = "서울직업전문학교"
    training_starts_on = factory.LazyFunction(lambda: timezone.localdate() + timedelta(days=10))
    training_ends_on = factory.LazyFunction(lambda: timezone.localdate() + timedelta(days=100))
    weekly_hours = 15


def approved_applications(round_, n: int = 1, **fields) -> list[Application]:
    """n applications of a round that a caseworker has approved (status set as data)."""
    return [ApplicationFactory(round=round_, status="approved", **fields) for _ in range(n)]


def screened_by_task(application: Application) -> Application:
    """A submitted application screened as its task would have screened it after the commit
    (a test's transaction never commits): its run stored, and moved on by the verdict."""
    from benefits.screening_record import application_screen

    application.refresh_from_db()
    trigger = f"submit:{application.submitted_at.isoformat()}"
    application_screen(application_id=application.pk, trigger_key=trigger)
    application.refresh_from_db()
    return application

"""Stages up to the decisions: staff and round, registries, citizens, intake, screening, review."""

import random
import secrets
from datetime import date, datetime, time, timedelta
from itertools import islice

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.core.files import File
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.utils import timezone
from stdnum.kr import brn

from benefits import document_services, rounds, services
from benefits.models import Applicant, Application, Document, Notification, Program, Round
from benefits.simulation import Simulation, SimulationError, population
from benefits.simulation.waiting import wait_until
from core.crypto import account_fingerprint
from core.models import AuditEvent
from core.roles import Role, ensure_roles
from core.rrn import rrn_birth_date
from eligibility import rules
from eligibility.imports import registry_import_create
from eligibility.models import RegistryImportJob, ScreeningRun
from eligibility.screening_tasks import round_rescreen_request

User = get_user_model()
Status = Application.Status

STAFF = {
    "manager": Role.PROGRAM_MANAGER,
    "caseworker": Role.CASEWORKER,
    "finance1": Role.FINANCE,
    "finance2": Role.FINANCE,
}
PROGRAMS = {
    Program.Code.SCHOLARSHIP: (
        "Seoul citizen lifelong-learning scholarship",
        "서울시민 평생학습 장학금",
        1_000_000,
    ),
    Program.Code.VOUCHER: ("Lifelong-learning voucher", "평생학습 바우처", 350_000),
}
DUPLICATE_POLICY = {
    rules.NAEILBAEUM: rules.REVIEW,
    rules.YOUTH_ALLOWANCE: rules.REVIEW,
    rules.NATIONAL_VOUCHER: rules.BLOCK,
}
# Seats for this share of the applicants: fewer than the approvals, so some wait.
CAPACITY_SHARE = 0.7
CHUNK = 1000
BULK_CHUNK = 2000
# A one-page PDF, about the smallest the document check takes (it parses uploads whole).
PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>endobj\n"
    b"trailer<</Root 1 0 R>>\nstartxref\n0\n%%EOF\n"
)

# Review: what the caseworker does with a screening result.
DUPLICATE_CODES = frozenset(
    rules.duplicate_code(r)
    for r in (
        rules.NAEILBAEUM,
        rules.YOUTH_ALLOWANCE,
        rules.NATIONAL_VOUCHER,
        rules.INTERNAL_APPLICATION,
        rules.SHARED_ACCOUNT,
    )
)
DOCUMENT_CODES = frozenset({"enrollment_certificate_missing", "priority_not_confirmed"})
# Of the applications the rules find nothing against, a caseworker still turns down a few.
REJECT_AFTER_READING = 0.03
REASONS = {
    "ineligible": "자격 요건을 충족하지 않습니다. / The eligibility rules are not met: {codes}",
    "duplicate": "다른 지원과 중복됩니다. / Duplicates another benefit: {codes}",
    "reading": "제출 내용으로 참여를 확인할 수 없습니다. / The file does not show the training.",
    Program.Code.SCHOLARSHIP: (
        "수강(재학) 증명서를 올려 주세요. / Please upload the enrollment certificate."
    ),
    Program.Code.VOUCHER: "소득 증빙 서류를 올려 주세요. / Please upload a proof of income.",
}
DOCUMENT_KINDS = {
    Program.Code.SCHOLARSHIP: Document.Kind.ENROLLMENT_CERTIFICATE,
    Program.Code.VOUCHER: Document.Kind.INCOME_PROOF,
}
PROFILE_FIELDS = sorted(
    (
        "legal_name",
        "rrn",
        "phone",
        "district",
        "address",
        "bank_code",
        "account_number",
        "account_holder",
        "consent_data_checks",
    )
)


def _chunks(items, size: int):
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _staff_user(sim: Simulation, name: str, role: str):
    user = User(username=sim.username(name), is_staff=role != Role.PROVIDER)
    user.set_unusable_password()  # nobody signs in as a simulated user
    user.save()
    user.groups.add(Group.objects.get(name=role))
    return user


def _provider(sim: Simulation, user):
    from payments.models import Provider, ProviderUser

    rng = random.Random(sim.salt)
    while True:
        number = f"{rng.randrange(101, 1000):03d}86{rng.randrange(1, 10000):04d}{rng.randrange(10)}"
        if (
            brn.is_valid(number)
            and not Provider.objects.filter(business_registration_number=number).exists()
        ):
            break
    account = f"{sim.salt % 10**6:06d}77000001"
    provider = Provider.objects.create(
        name=f"모의 평생교육원 {sim.prefix}",
        business_registration_number=number,
        bank_code="020",
        account_number=account,
        account_holder="모의 평생교육원",
        account_fingerprint=account_fingerprint("020", account),
    )
    ProviderUser.objects.create(user=user, provider=provider)
    return provider


def setup(sim: Simulation) -> int:
    """Staff users of the run, a provider for vouchers, and the round, opened by the manager.

    Staff and providers are configured in the admin (no service makes them); the round is
    created as a draft and opened through round_open.
    """
    ensure_roles()
    name, name_ko, amount = PROGRAMS[sim.program]
    today = timezone.localdate()
    tz = timezone.get_current_timezone()
    capacity = max(1, round(sim.applicants * CAPACITY_SHARE))
    with transaction.atomic():
        ids = {name: _staff_user(sim, name, role).pk for name, role in STAFF.items()}
        if not sim.scholarship:
            provider_user = _staff_user(sim, "provider", Role.PROVIDER)
            ids["provider"] = provider_user.pk
            sim.provider = _provider(sim, provider_user)
        program, _ = Program.objects.get_or_create(
            code=sim.program, defaults={"name": name, "name_ko": name_ko}
        )
        round_ = Round.objects.create(
            program=program,
            name=f"{name_ko} 모의 회차 {sim.prefix}",
            year=today.year,
            applications_open_at=timezone.now() - timedelta(minutes=1),
            applications_close_at=datetime.combine(today + timedelta(days=30), time.min, tz),
            period_starts_on=date(today.year, 1, 1),
            period_ends_on=date(today.year, 12, 31),
            capacity=capacity,
            amount=amount,
            budget=capacity * amount,
            ruleset_version=rules.DEFAULT_RULESETS[sim.program],
            duplicate_policy=DUPLICATE_POLICY,
        )
    # Fresh users: no permission cached from before their groups were given.
    sim.staff = {name: User.objects.get(pk=pk) for name, pk in ids.items()}
    sim.round_ = rounds.round_open(round_=round_, actor=sim.staff["manager"])
    return 1


# Registries.


def _draw_population(sim: Simulation) -> population.Population:
    """The run's people, none of whom is already an applicant of this database."""
    today = timezone.localdate()
    for _ in range(5):
        people = population.Population(
            program=sim.program, count=sim.applicants, seed=sim.seed, salt=sim.salt, today=today
        )
        taken = False
        for chunk in _chunks(people, 5000):
            if Applicant.objects.filter(rrn_hmac__in=[p.rrn_hmac for p in chunk]).exists():
                taken = True
                break
        if not taken:
            return people
        sim.salt = (sim.salt * 7 + 1) % 10**9  # another run drew these serials: draw again
    raise SimulationError("could not draw people who are not applicants already")


def registries(sim: Simulation) -> int:
    """Write the five registry CSVs and import them through the registry import service."""
    sim.population = _draw_population(sim)
    round_ = sim.round_
    files = population.registry_files(
        directory=sim.workdir,
        population=sim.population,
        year=round_.year,
        period=(round_.period_starts_on, round_.period_ends_on),
        carry_over=sim.carry_over_registries,
    )
    jobs = []
    for kind, (path, rows) in files.items():
        if not rows:
            continue  # a file without rows is refused: the registry stays as it is
        with path.open("rb") as upload:
            job = registry_import_create(
                kind=kind, uploaded_file=File(upload, name=path.name), actor=sim.staff["manager"]
            )
        jobs.append(job.pk)
    total = sum(rows for _path, rows in files.values())
    queryset = RegistryImportJob.objects.filter(pk__in=jobs)

    def done() -> int:
        states = list(queryset.values_list("status", "rows_read"))
        read = sum(rows for _status, rows in states)
        finished = all(s == RegistryImportJob.Status.SUCCEEDED for s, _ in states)
        return total if finished else min(read, total - 1)

    def failed() -> str | None:
        job = queryset.filter(status=RegistryImportJob.Status.FAILED).first()
        if job is None:
            return None
        codes = sorted({e.get("code") for e in job.errors})
        return f"the {job.kind} import failed ({', '.join(codes)})"

    wait_until(sim, "registry imports", total=total, done=done, failed=failed)
    return total


# Citizens.


def profile_data(person: population.Person) -> dict:
    """What the citizen puts in the profile form (as the API's serializer leaves it)."""
    return {
        "legal_name": person.legal_name,
        "rrn": person.rrn,
        "phone": person.phone,
        "district": person.district,
        "address": person.address,
        "bank_code": person.bank_code,
        "account_number": person.account_number,
        "account_holder": person.legal_name,
        "consent_data_checks": True,
    }


def register_through_services(sim: Simulation, person: population.Person) -> Applicant:
    """Register one citizen and fill the profile, as the API does."""
    username = sim.username(f"c{person.index:07d}")
    user = services.citizen_register(
        username=username, password=secrets.token_urlsafe(), email=f"{username}@example.org"
    )
    return services.applicant_profile_update(
        applicant=user.applicant, actor=user, data=profile_data(person)
    )


@transaction.atomic
def register_in_bulk(sim: Simulation, people: list[population.Person]) -> list[Applicant]:
    """Write, for many citizens at once, the rows that citizen_register and then
    applicant_profile_update write for one: the user in the citizen group, the complete
    profile, and the two audit events.

    One difference: the password is unusable, where registering hashes one (a hash per
    citizen would be most of the stage). tests/benefits/test_simulate_round.py compares
    the rows both ways.
    """
    now = timezone.now()
    citizen = Group.objects.get(name=Role.CITIZEN)
    users = User.objects.bulk_create(
        [
            User(
                username=sim.username(f"c{p.index:07d}"),
                email=f"{sim.username(f'c{p.index:07d}')}@example.org",
                password=make_password(None),
            )
            for p in people
        ]
    )
    User.groups.through.objects.bulk_create(
        [User.groups.through(user_id=u.pk, group_id=citizen.pk) for u in users]
    )
    applicants = Applicant.objects.bulk_create(
        [
            Applicant(
                user=user,
                email=user.email,
                legal_name=p.legal_name,
                rrn=p.rrn,
                rrn_hmac=p.rrn_hmac,
                birth_date=rrn_birth_date(p.rrn),
                phone=p.phone,
                district=p.district,
                address=p.address,
                bank_code=p.bank_code,
                account_number=p.account_number,
                account_fingerprint=account_fingerprint(p.bank_code, p.account_number),
                account_holder=p.legal_name,
                consent_data_checks=True,
                consent_at=now,
            )
            for p, user in zip(people, users, strict=True)
        ]
    )
    label = Applicant._meta.label_lower
    AuditEvent.objects.bulk_create(
        [
            AuditEvent(
                actor_id=a.user_id,
                action=action,
                object_type=label,
                object_id=str(a.pk),
                data=data,
            )
            for a in applicants
            for action, data in (
                ("citizen.registered", {}),
                ("profile.updated", {"fields": PROFILE_FIELDS}),
            )
        ]
    )
    return applicants


def citizens(sim: Simulation) -> int:
    """Register the citizens: a few through the services one by one, the rest in bulk."""
    tracker = sim.track("citizens", len(sim.population))
    sample = sim.population[: sim.service_sample]
    for person in sample:
        person.applicant_id = register_through_services(sim, person).pk
        tracker.advance()
    sim.population.remember(sample)
    for chunk in _chunks(islice(sim.population, len(sample), None), BULK_CHUNK):
        for person, applicant in zip(chunk, register_in_bulk(sim, chunk), strict=True):
            person.applicant_id = applicant.pk
        sim.population.remember(chunk)
        tracker.advance(len(chunk))
    return len(sim.population)


# Intake and screening.


def _document(program: str, kind: str | None = None) -> SimpleUploadedFile:
    return SimpleUploadedFile(f"{kind or DOCUMENT_KINDS[program]}.pdf", PDF, "application/pdf")


def intake(sim: Simulation) -> int:
    """Each citizen creates an application, uploads the certificate if they have it, and
    submits: benefits.services, as the API calls them."""
    round_ = Round.objects.select_related("program").get(pk=sim.round_.pk)
    period = (round_.period_starts_on, round_.period_ends_on)
    tracker = sim.track("intake", len(sim.population))
    for chunk in _chunks(sim.population, CHUNK):
        applicants = Applicant.objects.select_related("user").in_bulk(
            [p.applicant_id for p in chunk]
        )
        for person in chunk:
            applicant = applicants[person.applicant_id]
            user = applicant.user
            application = services.application_create(
                applicant=applicant,
                actor=user,
                round_=round_,
                income_category=person.income_category,
                training=population.training(person, period),
            )
            if person.certificate:
                document_services.document_add(
                    application=application,
                    actor=user,
                    kind=Document.Kind.ENROLLMENT_CERTIFICATE,
                    uploaded=_document(sim.program, Document.Kind.ENROLLMENT_CERTIFICATE),
                )
            services.application_submit_own(applicant=applicant, pk=application.pk, actor=user)
            tracker.advance()
    return len(sim.population)


def _wait_for_screening(sim: Simulation, description: str, ids: list[int] | None = None) -> int:
    """Wait for what each submit set off: the screening, then the "submitted" message
    (one chain of tasks), for every application of the round (or of `ids`)."""
    applications = Application.objects.filter(round=sim.round_)
    if ids is not None:
        applications = applications.filter(pk__in=ids)
    total = applications.count()
    waiting = applications.filter(status__in=[Status.SUBMITTED, Status.SCREENING])
    unsent = Notification.objects.filter(
        application__in=applications,
        kind=Notification.Kind.SUBMITTED,
        status=Notification.Status.PENDING,
        attempts=0,  # a message whose sending failed waits for the sweep, not for us
    )
    return wait_until(
        sim,
        description,
        total=total,
        done=lambda: max(total - waiting.count() - unsent.count(), 0),
    )


def screening(sim: Simulation) -> int:
    """Wait for the screening each submit set off (eager: done already; else the worker's)."""
    return _wait_for_screening(sim, "screening on submit")


def rescreen(sim: Simulation) -> int:
    """Re-screen the round under review as a new registry snapshot would (round_rescreen)."""
    under_review = Application.objects.filter(round=sim.round_, status=Status.UNDER_REVIEW)
    total = under_review.count()
    job_key = sim.prefix
    with transaction.atomic():  # through the outbox, as a snapshot's activation does
        round_rescreen_request(round_id=sim.round_.pk, job_key=job_key)
    runs = ScreeningRun.objects.filter(
        application__round=sim.round_, trigger_key=f"rescreen:{job_key}"
    )
    return wait_until(sim, "round re-screen", total=total, done=runs.count)


# Review.


def decide(program: str, results: list[dict], rng: random.Random, *, second_look: bool):
    """The caseworker's decision on a screening result: (service, reason)."""
    failed = sorted(r["code"] for r in results if r["outcome"] == rules.FAIL)
    review = {r["code"] for r in results if r["outcome"] == rules.REVIEW}
    if failed:
        return services.application_reject, REASONS["ineligible"].format(codes=", ".join(failed))
    duplicates = sorted(review & DUPLICATE_CODES)
    if duplicates:
        return services.application_reject, REASONS["duplicate"].format(codes=", ".join(duplicates))
    if review & DOCUMENT_CODES and not second_look:
        return services.application_request_documents, REASONS[program]
    if not second_look and rng.random() < REJECT_AFTER_READING:
        return services.application_reject, REASONS["reading"]
    return services.application_approve, ""


def _review(sim: Simulation, ids: list[int] | None, *, second_look: bool) -> dict[str, int]:
    rng = random.Random(f"{sim.seed}:review:{int(second_look)}")
    current = ScreeningRun.objects.filter(
        application__round=sim.round_,
        application__status=Status.UNDER_REVIEW,
        is_current=True,
    )
    if ids is not None:
        current = current.filter(application_id__in=ids)
    verdicts = list(current.order_by("application_id").values_list("application_id", "rules"))
    tracker = sim.track("second review" if second_look else "review", len(verdicts))
    caseworker = sim.staff["caseworker"]
    counts = {"approved": 0, "rejected": 0, "documents_requested": 0}
    names = {
        services.application_approve: "approved",
        services.application_reject: "rejected",
        services.application_request_documents: "documents_requested",
    }
    for chunk in _chunks(verdicts, CHUNK):
        applications = Application.objects.in_bulk([pk for pk, _ in chunk])
        for pk, results in chunk:
            service, reason = decide(sim.program, results, rng, second_look=second_look)
            named = {}
            if service is services.application_request_documents:
                named["documents"] = [DOCUMENT_KINDS[sim.program]]
            service(application=applications[pk], actor=caseworker, reason=reason, **named)
            counts[names[service]] += 1
            tracker.advance()
    return counts


def review(sim: Simulation) -> int:
    """A caseworker decides every application under review on its screening result."""
    counts = _review(sim, None, second_look=False)
    sim.notes["review"] = counts
    return sum(counts.values())


def resubmissions(sim: Simulation) -> int:
    """Citizens asked for documents upload them and resubmit; screened again, then decided."""
    waiting = list(
        Application.objects.filter(round=sim.round_, status=Status.NEEDS_DOCUMENTS)
        .select_related("applicant__user")
        .order_by("pk")
    )
    tracker = sim.track("documents and resubmit", len(waiting))
    for application in waiting:
        user = application.applicant.user
        document_services.document_add(
            application=application,
            actor=user,
            kind=DOCUMENT_KINDS[sim.program],
            uploaded=_document(sim.program),
        )
        services.application_submit_own(
            applicant=application.applicant, pk=application.pk, actor=user
        )
        tracker.advance()
    ids = [a.pk for a in waiting]
    if ids:
        _wait_for_screening(sim, "screening resubmitted", ids)
    sim.notes["second review"] = _review(sim, ids, second_look=True)
    return len(waiting)

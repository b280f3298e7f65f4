"""The scene the access matrix (test_access_matrix.py) calls its endpoints on: one object
of each kind a row names, built once, and the body each call sends."""

import re
from datetime import timedelta
from types import SimpleNamespace

from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from benefits import after_decision, document_services, services
from benefits.models import Application, ApplicationFlag, Program, Round
from benefits.training_end import application_training_end
from core.roles import Role
from eligibility import rules
from eligibility.models import RegistryImportJob, RegistryKind, ScreeningRun
from payments import recoveries, vouchers
from payments import services as payments
from payments.models import VoucherAccount
from payments.tasks import bank_files_generate_task
from tests.conftest import client_for
from tests.documents import pdf
from tests.factories import (
    PASSWORD,
    ApplicantFactory,
    ApplicationFactory,
    ProgramFactory,
    RoundFactory,
    UserFactory,
    screened_by_task,
)
from tests.payments.test_recoveries import pay
from tests.payments.test_vouchers import make_provider

PLACEHOLDER = re.compile(r"\{[^}]*\}")


def endpoint_of(method: str, path: str) -> tuple[str, str]:
    """The endpoint a row calls: its method and its path with every id as `{}`."""
    return method.upper(), PLACEHOLDER.sub("{}", path.split("?", 1)[0])


# The scene: one object of each kind the rows call, built once.


def _with_certificate(application: Application) -> Application:
    document_services.document_add(
        application=application,
        actor=application.applicant.user,
        kind="enrollment_certificate",
        uploaded=SimpleUploadedFile("certificate.pdf", pdf(), "application/pdf"),
    )
    return application


def _under_review(**fields) -> Application:
    application = _with_certificate(ApplicationFactory(**fields))
    services.application_submit(application=application, actor=application.applicant.user)
    return screened_by_task(application)


def _batch(maker, *, program: Program | None = None, amount: int = 1_000_000):
    """A built draft batch paying one selected recipient of a round of its own."""
    round_ = RoundFactory(
        program=program or ProgramFactory(),
        status=Round.Status.SELECTED,
        capacity=1,
        amount=amount,
    )
    ApplicationFactory(round=round_, status=Application.Status.SELECTED)
    batch = payments.batch_create(round_=round_, actor=maker)
    return payments.batch_build(batch_id=batch.pk)


def build_scene() -> SimpleNamespace:
    def staff(role):
        return client_for(UserFactory(role=role, is_staff=True))

    a, b = ApplicantFactory(), ApplicantFactory()
    a.user.set_password(PASSWORD)  # with this test's hasher (the factory's is hashed once)
    a.user.save(update_fields=["password"])
    fin_user, chk_user = UserFactory(role=Role.FINANCE), UserFactory(role=Role.FINANCE)
    provider = make_provider()
    manager = UserFactory(role=Role.PROGRAM_MANAGER)
    clients = {
        "anon": APIClient(),
        "a": client_for(a.user),
        "b": client_for(b.user),
        "cw": staff(Role.CASEWORKER),
        "pm": client_for(manager),
        "fin": client_for(fin_user),
        "chk": client_for(chk_user),
        "prv": provider,
        "aud": staff(Role.AUDITOR),
    }
    # Another caseworker rejected A's applications: the caseworker above decides the appeal.
    rejecter = UserFactory(role=Role.CASEWORKER)

    open_round = RoundFactory()
    draft = _with_certificate(ApplicationFactory(applicant=a))
    rejected = services.application_reject(
        application=_under_review(applicant=a), actor=rejecter, reason="수강 확인 불가"
    )
    appealed = services.application_reject(
        application=_under_review(), actor=rejecter, reason="수강 확인 불가"
    )
    after_decision.application_appeal_file(
        applicant=appealed.applicant, pk=appealed.pk, actor=appealed.applicant.user, reason="재검토"
    )
    under_review = _under_review(applicant=ApplicantFactory())
    document = under_review.documents.get()
    twin = ApplicationFactory()
    ScreeningRun.objects.filter(application=under_review).update(is_current=False)
    ScreeningRun.objects.create(
        application=under_review,
        trigger_key="matrix",
        ruleset_version="matrix",
        outcome=ScreeningRun.Outcome.NEEDS_REVIEW,
        duplicates=[
            {
                "registry": rules.INTERNAL_APPLICATION,
                "action": "review",
                "evidence": {"applications": [twin.pk]},
            }
        ],
        duplicate_found=True,
    )
    flagged = ApplicationFactory(status=Application.Status.APPROVED)
    ApplicationFlag.objects.create(
        application=flagged,
        kind=ApplicationFlag.Kind.ELIGIBILITY_CHANGED,
        summary="registry_changed",
        raised_at=timezone.now(),
    )

    batch = _batch(fin_user)
    pending = payments.batch_submit(batch=_batch(fin_user), actor=fin_user)
    approved = payments.batch_approve(
        batch=payments.batch_submit(batch=_batch(fin_user), actor=fin_user), actor=chk_user
    )
    bank_files_generate_task(approved.pk)  # what the approval's commit sends
    unbatched = RoundFactory(status=Round.Status.SELECTED, capacity=1)
    ApplicationFactory(round=unbatched, status=Application.Status.SELECTED)

    # A's voucher, paid through a voucher round's batch, and a redemption by the provider.
    voucher_program = ProgramFactory(code=Program.Code.VOUCHER)
    voucher_round = RoundFactory(
        program=voucher_program,
        status=Round.Status.SELECTED,
        capacity=1,
        amount=350_000,
        top_up_amount=50_000,
        top_up_share=10,
    )
    ApplicationFactory(applicant=a, round=voucher_round, status=Application.Status.SELECTED)
    voucher_batch = payments.batch_create(round_=voucher_round, actor=fin_user)
    voucher_batch = payments.batch_build(batch_id=voucher_batch.pk)
    voucher_batch = payments.batch_submit(batch=voucher_batch, actor=fin_user)
    voucher_batch = payments.batch_approve(batch=voucher_batch, actor=chk_user)
    payments.batch_disburse(batch=voucher_batch, actor=fin_user)
    voucher = VoucherAccount.objects.get(round=voucher_round)
    redemption = vouchers.voucher_redeem(
        actor=provider.user, voucher_code=voucher.code, amount=50_000, course="바리스타 과정"
    )

    # A paid scholarship round: A's recovery, another recipient's with a waiver that fin
    # asked for, and a paid recipient whose training end is not recorded yet.
    paid_round = RoundFactory(status=Round.Status.SELECTED, capacity=3)
    in_training = {
        "training_starts_on": timezone.localdate() - timedelta(days=100),
        "training_ends_on": timezone.localdate() + timedelta(days=100),
    }
    dropped_out, waived, still_training = (
        ApplicationFactory(round=paid_round, status=Application.Status.SELECTED, **in_training)
        for _ in range(3)
    )
    Application.objects.filter(pk=dropped_out.pk).update(applicant=a)
    pay(paid_round)
    ended = {"ended_on": timezone.localdate() - timedelta(days=50), "reason": "수강 포기"}
    recovery = application_training_end(application=dropped_out, actor=rejecter, **ended)
    waiver = application_training_end(application=waived, actor=rejecter, **ended)
    recoveries.recovery_waiver_request(
        recovery=waiver.recovery, actor=fin_user, reason="상환 능력 없음"
    )

    job = RegistryImportJob.objects.create(
        kind=RegistryKind.SOCIAL_SECURITY,
        status=RegistryImportJob.Status.SUCCEEDED,
        created_by=manager,
    )
    ids = {
        "round": open_round.pk,
        "draft_round": RoundFactory(status=Round.Status.DRAFT).pk,
        "closed_round": RoundFactory(status=Round.Status.CLOSED).pk,
        "voucher_round": voucher_round.pk,
        "draft": draft.pk,
        "rejected": rejected.pk,
        "appealed": appealed.pk,
        "under_review": under_review.pk,
        "document": document.pk,
        "match": rules.match_id(rules.INTERNAL_APPLICATION, {"application": twin.pk}),
        "flagged": flagged.pk,
        "kind": RegistryKind.SOCIAL_SECURITY,
        "import": job.pk,
        "batch": batch.pk,
        "payment": batch.payments.get().pk,
        "pending_batch": pending.pk,
        "approved_batch": approved.pk,
        "redemption": redemption.pk,
        "recovery": recovery.recovery.pk,
        "waiver": waiver.recovery.pk,
        "paid": still_training.pk,
    }
    return SimpleNamespace(
        clients=clients,
        ids=ids,
        a=a,
        open_round=open_round,
        unbatched=unbatched,
        voucher=voucher,
    )


# What each call sends: a valid body, so that an allowed role gets past validation to the
# object (a citizen B's 404 is then about the object, not about her body).


def _file(name: str, content: bytes, content_type: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type)


def request_body(scene, method: str, path: str):
    """(data, format) for the row's call; None for a call without a body."""
    reason = {"reason": "접근 권한 점검"}
    bodies = {
        "/api/v1/auth/token/": {"username": scene.a.user.username, "password": PASSWORD},
        "/api/v1/auth/register/": {
            "username": "matrix-newcomer",
            "password": "a-long-enough-password-9",
            "email": "newcomer@example.org",
        },
        "/api/v1/rounds/{}/money/": {"budget": 100_000_000, **reason},
        "/api/v1/me/profile/": {"phone": "010-9876-5432"},
        "/api/v1/applications/{}/": {"income_category": "near_poor"},
        "/api/v1/applications/{}/withdraw/": reason,
        "/api/v1/applications/{}/appeal/": reason,
        "/api/v1/review/applications/{}/approve/": reason,
        "/api/v1/review/applications/{}/reject/": reason,
        "/api/v1/review/applications/{}/request-documents/": reason,
        "/api/v1/review/applications/{}/reveal-rrn/": reason,
        "/api/v1/review/applications/{}/matches/{}/resolve/": {
            "resolution": "not_the_same_person",
            **reason,
        },
        "/api/v1/review/applications/{}/appeal-decision/": {"outcome": "overturned", **reason},
        "/api/v1/review/applications/{}/clear-flag/": {"flag": "eligibility_changed", **reason},
        "/api/v1/review/applications/{}/revoke/": reason,
        "/api/v1/disbursements/": {"round": scene.unbatched.pk},
        "/api/v1/disbursements/{}/payments/{}/hold/": reason,
        "/api/v1/disbursements/{}/cancel/": reason,
        "/api/v1/vouchers/redemptions/": {
            "voucher_code": scene.voucher.code,
            "amount": 10_000,
            "course": "제과제빵 과정",
        },
        "/api/v1/vouchers/redemptions/{}/refund/": {"amount": 10_000},
        "/api/v1/review/applications/{}/training-ended/": {
            "ended_on": str(timezone.localdate() - timedelta(days=10)),
            **reason,
        },
        "/api/v1/recoveries/{}/repayments/": {
            "amount": 10_000,
            "paid_on": str(timezone.localdate()),
        },
        "/api/v1/recoveries/{}/waive/": reason,
    }
    _, endpoint = endpoint_of(method, path)
    if (method, endpoint) == ("PUT", "/api/v1/me/profile/"):
        return {"phone": "010-9876-5432"}, "json"  # a PUT without the rest: 400, each field
    if (method, endpoint) == ("POST", "/api/v1/applications/"):
        return {
            "round": scene.open_round.pk,
            "income_category": "none",
            "training": {
                "course_id": "AIG20260001",
                "course_name": "빅데이터 분석 실무",
                "institution": "서울직업전문학교",
                "starts_on": str(timezone.localdate() + timedelta(days=10)),
                "ends_on": str(timezone.localdate() + timedelta(days=100)),
                "weekly_hours": 15,
            },
        }, "json"
    if endpoint == "/api/v1/applications/{}/documents/":
        upload = _file("income.pdf", pdf(), "application/pdf")
        return {"kind": "income_proof", "file": upload}, "multipart"
    if endpoint == "/api/v1/registries/{}/imports/":
        upload = _file("registry.csv", b"rrn,status,district\n", "text/csv")
        return {"file": upload}, "multipart"
    if endpoint == "/api/v1/disbursements/{}/results/":
        return {"file": _file("results.csv", b"reference,status\n", "text/csv")}, "multipart"
    if method == "GET" or endpoint not in bodies:
        return None
    return bodies[endpoint], "json"

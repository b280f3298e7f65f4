"""simulate_round plays a whole round through the services, and the round it leaves adds up."""

import io
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Count, Sum

from benefits.models import Applicant, Application, Notification, Program, Round
from benefits.reports import round_report
from benefits.simulation import Simulation, SimulationError, intake, population
from benefits.simulation.waiting import wait_until
from core.models import AuditEvent
from core.roles import ensure_roles
from eligibility.models import RECORD_MODELS, RegistrySnapshot, ScreeningRun
from payments.models import DisbursementBatch, Payment, VoucherAccount, VoucherEntry
from payments.selectors import round_budget_ledger
from tests.factories import ProgramFactory

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]
Status = Application.Status


def simulate(*args: str) -> str:
    out = io.StringIO()
    call_command("simulate_round", *args, stdout=out)
    return out.getvalue()


def simulated_rounds(program: str = Program.Code.SCHOLARSHIP) -> list[Round]:
    return list(
        Round.objects.filter(program__code=program, name__contains="모의 회차").order_by("pk")
    )


def assert_round_holds(round_: Round) -> None:
    applications = Application.objects.filter(round=round_)
    assert applications.exists()
    # Screened exactly once per submission (a resubmission is a submission of its own).
    submissions = Counter(
        int(pk)
        for pk in AuditEvent.objects.filter(
            action="application.submitted",
            object_type="benefits.application",
            object_id__in=[str(pk) for pk in applications.values_list("pk", flat=True)],
        ).values_list("object_id", flat=True)
    )
    screened = Counter(
        ScreeningRun.objects.filter(
            application__round=round_, trigger_key__startswith="submit:"
        ).values_list("application_id", flat=True)
    )
    assert screened == submissions
    assert set(submissions) == set(applications.values_list("pk", flat=True))
    # Everyone was decided; the selection stayed within the seats.
    assert not applications.filter(
        status__in=[Status.SUBMITTED, Status.SCREENING, Status.UNDER_REVIEW, Status.APPROVED]
    ).exists()
    selected = applications.filter(status=Status.SELECTED)
    assert 0 < selected.count() <= round_.capacity
    # Each selected application has exactly one paid payment, and nobody else has one.
    paid = Payment.objects.filter(
        round=round_, status=Payment.Status.PAID, application__isnull=False
    )
    per_application = Counter(paid.values_list("application_id", flat=True))
    assert set(per_application) == set(selected.values_list("pk", flat=True))
    assert set(per_application.values()) == {1}
    assert not Payment.objects.filter(
        round=round_, status__in=[Payment.Status.PENDING, Payment.Status.SENT]
    ).exists()
    # Maker-checker on every batch, all of them closed.
    for batch in DisbursementBatch.objects.filter(round=round_):
        assert batch.approved_by_id and batch.approved_by_id != batch.prepared_by_id
        assert batch.status == DisbursementBatch.Status.CLOSED
    # The ledger and the report agree with the rows.
    paid_total = paid.aggregate(total=Sum("amount"))["total"]
    assert round_budget_ledger(round_).paid == paid_total == selected.count() * round_.amount
    report = round_report(round_=round_)
    by_status = dict(applications.values_list("status").annotate(n=Count("id")))
    assert {k: v for k, v in report["applications"]["by_status"].items() if v} == by_status
    assert report["applications"]["total"] == applications.count()
    assert report["amounts"]["paid"] == paid_total
    assert sum(d["applications"] for d in report["districts"]) == applications.count()
    assert sum(d["paid_amount"] for d in report["districts"]) == paid_total
    assert sum(d["selected"] for d in report["districts"]) == selected.count()


def test_a_scholarship_round_adds_up_and_runs_twice_on_one_database():
    first = simulate("--applicants", "40", "--fail-rate", "0.2", "--keep", "--seed", "7")
    second = simulate("--applicants", "40", "--fail-rate", "0.2", "--keep", "--seed", "7")

    rounds = simulated_rounds()
    assert len(rounds) == 2
    for round_ in rounds:
        assert_round_holds(round_)
        # Some transfers failed, and each came back paid from the second batch.
        failed = Payment.objects.filter(round=round_, status=Payment.Status.REISSUED)
        assert failed.exists()
        for payment in failed:
            retry = payment.reissued_by
            assert retry.status == Payment.Status.PAID
            assert retry.batch_id != payment.batch_id
            assert retry.account_fingerprint != payment.account_fingerprint
        # Screening flagged some duplicates against the generated registries.
        assert ScreeningRun.objects.filter(application__round=round_, duplicate_found=True).exists()
        assert Application.objects.filter(round=round_, status=Status.REJECTED).exists()
        assert Application.objects.filter(round=round_, status=Status.WAITLISTED).exists()
    # The same seed plays the same story.
    reports = [round_report(round_=r) for r in rounds]
    assert reports[0]["applications"] == reports[1]["applications"]
    assert reports[0]["duplicates"] == reports[1]["duplicates"]
    for out in (first, second):
        assert "Time per stage" in out and "reissue" in out
    # Nothing personal reaches the output.
    for applicant in Applicant.objects.filter(applications__round__in=rounds):
        for secret in (applicant.rrn, applicant.rrn[:6] + "-" + applicant.rrn[6:]):
            assert secret not in first + second
        assert applicant.account_number not in first + second


SENT: list[int] = []


class RecordingBackend:
    def send(self, notification):
        SENT.append(notification.pk)


def test_every_message_of_a_round_is_sent_exactly_once(settings):
    # Submitted, approved, rejected, documents requested, selected, waitlisted, paid,
    # payment failed: each told once, whichever path (one by one or a flush) sent it.
    SENT.clear()
    settings.BAEUM_NOTIFICATION_BACKEND = "tests.benefits.test_simulate_round.RecordingBackend"
    simulate("--applicants", "40", "--fail-rate", "0.2", "--keep", "--seed", "7")
    (round_,) = simulated_rounds()
    messages = Notification.objects.filter(application__round=round_)
    assert set(messages.values_list("status", flat=True)) == {Notification.Status.SENT}
    assert Counter(SENT) == Counter(messages.values_list("pk", flat=True))
    kinds = set(messages.values_list("kind", flat=True))
    assert {"submitted", "approved", "rejected", "selected", "waitlisted", "paid"} <= kinds
    # Each application is told of each event once.
    per_event = Counter(messages.values_list("application_id", "kind"))
    assert max(per_event.values()) <= 2  # a resubmission is a second submission


def test_a_voucher_round_credits_redeems_and_settles():
    simulate("--program", "VOUCHER", "--applicants", "30", "--keep")

    (round_,) = simulated_rounds(Program.Code.VOUCHER)
    assert_round_holds(round_)
    selected = Application.objects.filter(round=round_, status=Status.SELECTED)
    accounts = VoucherAccount.objects.filter(round=round_)
    assert set(accounts.values_list("application_id", flat=True)) == set(
        selected.values_list("pk", flat=True)
    )
    redeemed = VoucherEntry.objects.filter(
        account__round=round_, kind__in=[VoucherEntry.Kind.REDEMPTION, VoucherEntry.Kind.REFUND]
    )
    assert redeemed.filter(kind=VoucherEntry.Kind.REDEMPTION).exists()
    settled = Payment.objects.filter(
        batch__kind=DisbursementBatch.Kind.SETTLEMENT, batch__round=round_
    )
    assert settled.get().status == Payment.Status.PAID
    assert settled.get().amount == -redeemed.aggregate(total=Sum("amount"))["total"]
    assert not redeemed.filter(settlement__isnull=True).exists()


def _row_counts() -> dict[str, int]:
    registries = {*RECORD_MODELS.values(), RegistrySnapshot}
    return {
        model._meta.label: model.objects.count()
        for model in apps.get_models()
        if model not in registries
    }


def _stored_files() -> list[Path]:
    root = Path(settings.STORAGES["default"]["OPTIONS"]["location"])
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_a_run_without_keep_leaves_only_the_registries_it_imported():
    ensure_roles()
    ProgramFactory(code=Program.Code.SCHOLARSHIP)
    before, files = _row_counts(), _stored_files()

    out = simulate("--applicants", "20", "--fail-rate", "0.1")

    assert "Removed the run's" in out
    assert _row_counts() == before
    assert _stored_files() == files
    assert RegistrySnapshot.objects.filter(status=RegistrySnapshot.Status.ACTIVE).count() == 5


def test_registries_carry_over_the_other_rounds_rows():
    simulate("--applicants", "15")
    first = {
        kind: set(model.objects.filter(snapshot__status="active").values_list("pk", flat=True))
        for kind, model in RECORD_MODELS.items()
    }
    people = RECORD_MODELS["social_security"].objects.filter(snapshot__status="active")
    before = set(people.values_list("rrn_hmac", flat=True))

    simulate("--applicants", "15")

    after = set(people.values_list("rrn_hmac", flat=True))
    assert before and before < after
    assert all(first.values())

    simulate("--applicants", "15", "--fresh-registries")

    assert not before & set(people.values_list("rrn_hmac", flat=True))


def test_bulk_registration_writes_what_the_services_write():
    ensure_roles()
    sim = Simulation(program=Program.Code.SCHOLARSHIP, applicants=2)
    one, other = population.people(
        program=sim.program, count=2, seed=1, salt=sim.salt, today=date.today()
    )
    other.district, other.bank_code = one.district, one.bank_code

    by_service = intake.register_through_services(sim, one)
    (in_bulk,) = intake.register_in_bulk(sim, [other])

    def row(applicant: Applicant, person) -> dict:
        applicant = Applicant.objects.select_related("user").get(pk=applicant.pk)
        user = applicant.user
        values = {
            f.name: getattr(applicant, f.name)
            for f in Applicant._meta.concrete_fields
            if f.name not in ("id", "user", "created_at", "updated_at", "consent_at")
        }
        # What differs because the people differ.
        for name, own in (
            ("legal_name", person.legal_name),
            ("account_holder", person.legal_name),
            ("rrn", person.rrn),
            ("rrn_hmac", person.rrn_hmac),
            ("phone", person.phone),
            ("address", person.address),
            ("account_number", person.account_number),
            ("email", user.email),
        ):
            assert values.pop(name) == own
        values.pop("birth_date")
        values.pop("account_fingerprint")
        events = list(
            AuditEvent.objects.filter(object_type="benefits.applicant", object_id=str(applicant.pk))
            .order_by("pk")
            .values_list("actor_id", "action", "data")
        )
        return {
            **values,
            "consented": applicant.consent_at is not None,
            "groups": list(user.groups.values_list("name", flat=True)),
            "user": (user.is_active, user.is_staff, user.is_superuser),
            "email_user": user.email.startswith(user.username),
            "events": [(actor == user.pk, action, data) for actor, action, data in events],
        }

    assert row(in_bulk, other) == row(by_service, one)


def test_a_wait_gives_up_when_nothing_moves():
    sim = Simulation(program=Program.Code.SCHOLARSHIP, applicants=1, timeout=0.2)
    sim.poll_interval = 0.05

    with pytest.raises(SimulationError, match="no progress"):
        wait_until(sim, "screening", total=3, done=lambda: 1)
    with pytest.raises(SimulationError, match="import failed"):
        wait_until(sim, "imports", total=3, done=lambda: 1, failed=lambda: "the import failed")
    assert wait_until(sim, "nothing to wait for", total=3, done=lambda: 3) == 3


@pytest.mark.parametrize(
    "args", [("--applicants", "0"), ("--applicants", "5", "--fail-rate", "1.5")]
)
def test_bad_options_are_refused(args):
    with pytest.raises(CommandError):
        simulate(*args)
    assert not simulated_rounds()


# A real Redis broker and Celery worker (CI's third run): the command waits for the
# worker's screening, batch build, bank files and registry imports by reading the database.


@pytest.fixture
def worker(tmp_path):
    if settings.CELERY_TASK_ALWAYS_EAGER or connection.vendor != "postgresql":
        pytest.skip("needs CELERY_BROKER_URL and DATABASE_URL (PostgreSQL)")
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        # The worker reads the uploads the command stores (tests store them under tmp_path)
        # and decrypts with the same keys.
        "BAEUM_DATA_DIR": str(tmp_path),
        "BAEUM_ENCRYPTION_KEYS": settings.BAEUM_ENCRYPTION_KEYS,
        "BAEUM_HMAC_KEY": settings.BAEUM_HMAC_KEY,
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "--loglevel=WARNING",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield process
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.mark.worker
def test_a_round_played_against_a_real_worker_adds_up(worker):
    try:
        simulate("--applicants", "15", "--fail-rate", "0.2", "--keep", "--timeout", "120")
    except CommandError:
        worker.terminate()
        pytest.fail(worker.communicate(timeout=20)[0])

    (round_,) = simulated_rounds()
    assert_round_holds(round_)
    assert Payment.objects.filter(round=round_, status=Payment.Status.REISSUED).exists()
    # The worker's flushes send every message of the round, each at its first try (the
    # last ones a flush delay after the run's last commit).
    messages = Notification.objects.filter(application__round=round_)
    deadline = time.monotonic() + 30
    while messages.filter(status=Notification.Status.PENDING).exists():
        assert time.monotonic() < deadline, list(
            messages.filter(status=Notification.Status.PENDING).values_list("kind", "created_at")
        )
        time.sleep(0.2)
    assert set(messages.values_list("status", "attempts")) == {(Notification.Status.SENT, 1)}


def test_a_replacement_account_is_never_another_citizens_first_account():
    # A salt like this one once made citizen 7's new account the first account of person 7.
    salt = 912_345
    people = population.people(
        program=Program.Code.SCHOLARSHIP, count=20, seed=3, salt=salt, today=date.today()
    )
    first = {p.account_number for p in people}
    assert not first & {population.replacement_account(pk, salt) for pk in range(40)}


def test_a_population_read_in_slices_is_the_people_drawn_whole():
    """A city-wide round reads its people a slice at a time rather than holding them: each
    person, their shared account and the applicant they became must not depend on how."""
    today = date.today()
    whole = population.people(
        program=Program.Code.SCHOLARSHIP, count=900, seed=2, salt=41, today=today, start=100
    )
    lazy = population.Population(
        program=Program.Code.SCHOLARSHIP, count=900, seed=2, salt=41, today=today, start=100
    )
    copied = [i for i in range(1, 900) if whole[i].account_number == whole[i - 1].account_number]
    assert copied, "this draw gives someone the previous person's account"
    for first in [0, *copied, *(i - 1 for i in copied), 899]:
        assert lazy[first : first + 7] == whole[first : first + 7]
    assert lazy[-1] == whole[-1]

    people = lazy[10:20]
    for n, person in enumerate(people):
        person.applicant_id = 5000 + n
    lazy.remember(people)
    assert [p.applicant_id for p in lazy[8:22]] == [None, None, *range(5000, 5010), None, None]


def test_a_small_population_still_holds_each_other_benefit():
    people = population.people(
        program=Program.Code.SCHOLARSHIP, count=4, seed=1, salt=5, today=date.today()
    )
    for holds in population.OTHER_BENEFITS:
        assert any(getattr(p, holds) for p in people), holds


def test_people_a_million_serials_apart_never_share_an_rrn():
    """A round of a million and more wraps the RRN's six-digit serial: the people whose
    serials meet must still differ (a registry refuses two rows of one RRN). Under seed 1
    and salt 0, persons 85,740 and 1,085,740 were once drawn the same birth date."""
    draw = {"program": Program.Code.SCHOLARSHIP, "count": 1, "seed": 1, "salt": 0}
    (one,) = population.people(**draw, today=date.today(), start=85_740)
    (other,) = population.people(**draw, today=date.today(), start=1_085_740)
    assert one.rrn[-6:] == other.rrn[-6:]
    assert one.rrn != other.rrn

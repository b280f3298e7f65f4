"""seed_demo loads a year of both programs through the services, once."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db.models import Count
from rest_framework.test import APIClient

from benefits import demo
from benefits.models import Application, Round
from eligibility.models import RegistryKind, RegistrySnapshot
from payments.audit import batch_audit_summary
from payments.models import DisbursementBatch, Payment, Recovery, VoucherEntry
from tests.factories import RoundFactory, UserFactory

# Committed for real, as `make run` does: the submit's screening task and the batch's
# build task run after the commit, and the demo must come out the same.
pytestmark = pytest.mark.django_db(transaction=True)

# With eager tasks (the embedded mode) a submitted application is screened at once, so
# `submitted` and `screening` pass in an instant; every state that lasts is in the demo.
LASTING_STATES = set(Application.Status.values) - {"submitted", "screening"}


def rounds() -> dict[str, Round]:
    year = Round.objects.order_by("year").first().year
    return {plan.key: Round.objects.get(name=demo.round_name(plan, year)) for plan in demo.ROUNDS}


def test_seed_demo_tells_a_whole_year_and_a_second_run_keeps_it(capsys):
    call_command("seed_demo", "--applicants", "40")
    counts = (
        get_user_model().objects.count(),
        Application.objects.count(),
        Round.objects.count(),
        Payment.objects.count(),
    )
    call_command("seed_demo", "--applicants", "40")
    assert (
        get_user_model().objects.count(),
        Application.objects.count(),
        Round.objects.count(),
        Payment.objects.count(),
    ) == counts
    out = capsys.readouterr().out
    assert "already loaded" in out and "caseworker2" in out and "finance2" in out

    assert set(Application.objects.values_list("status", flat=True)) == LASTING_STATES
    assert len(set(Application.objects.values_list("applicant__district", flat=True))) == 25
    assert set(RegistrySnapshot.objects.filter(status="active").values_list("kind", flat=True)) == {
        k.value for k in RegistryKind
    }
    screened = Application.objects.exclude(status__in=["draft", "withdrawn"])
    assert not screened.exclude(screening_runs__is_current=True).exists()

    r = rounds()
    assert {key: r[key].status for key in r} == {
        "s1": "disbursing",
        "s2": "disbursing",
        "s3": "closed",
        "s4": "open",
        "v1": "disbursing",
        "v2": "selected",
        "v3": "open",
    }
    assert Round.objects.filter(status="draft").count() == 1

    # In review: duplicates flagged, documents asked for.
    in_review = r["s3"].applications
    assert in_review.filter(screening_runs__is_current=True, screening_runs__duplicate_found=True)
    assert in_review.filter(status="needs_documents").exists()

    # A batch waits for its checker, with findings for the pre-release audit.
    waiting = DisbursementBatch.objects.get(round=r["s2"])
    assert (waiting.status, waiting.prepared_by.username) == ("pending_approval", "finance1")
    flags = batch_audit_summary(waiting)
    assert flags["shared_account"] >= 2 and flags["account_changed"] >= 1, flags
    assert r["s2"].applications.filter(status="waitlisted").exists()

    # A reconciled batch with failed transfers, one of them payable again.
    paid = DisbursementBatch.objects.get(round=r["s1"])
    assert paid.status == "reconciled"
    by_state = dict(paid.payments.values_list("status").annotate(n=Count("id")))
    assert by_state["failed"] == 2 and by_state["paid"] > 0
    moved = [
        p.application.applicant.account_fingerprint != p.account_fingerprint
        for p in paid.payments.filter(status="failed").select_related("application__applicant")
    ]
    assert sorted(moved) == [False, True]  # one citizen gave another account: reissue due

    # One paid recipient left the training early: a recovery is open, a quarter repaid.
    recovery = Recovery.objects.get(round=r["s1"])
    assert (recovery.status, recovery.repaid) == ("open", recovery.amount // 4)
    assert 0 < recovery.amount < recovery.paid_amount  # pro rata: a month of the training
    assert recovery.evidence is not None

    # Vouchers issued, redeemed and refunded, waiting for their settlement.
    kinds = set(VoucherEntry.objects.filter(account__round=r["v1"]).values_list("kind", flat=True))
    assert {"credit", "redemption", "refund"} <= kinds
    assert VoucherEntry.objects.filter(kind="redemption", settlement__isnull=True).exists()
    assert r["v2"].applications.filter(status="selected").exists()


def test_demo_logins_work():
    call_command("seed_demo", "--applicants", "2")
    api = APIClient()
    # The README's walk-through signs in as the others (tests/integration/test_readme.py).
    for username in [
        "caseworker2",
        "auditor",
        "admin",
        "citizen002",
    ]:
        response = api.post(
            "/api/v1/auth/token/", {"username": username, "password": "baeum-demo"}, format="json"
        )
        assert response.status_code == 200, username


def test_a_demo_without_citizens_still_has_its_rounds():
    call_command("seed_demo", "--applicants", "0")
    assert Round.objects.filter(status="open").count() == 2
    assert not Application.objects.exists()


def test_a_database_with_rounds_already_keeps_them(capsys):
    """An older demo (or rounds of one's own): seeding again neither fails nor adds to it."""
    RoundFactory()
    UserFactory(username="citizen001")
    rounds_before = Round.objects.count()
    call_command("seed_demo", "--applicants", "5")
    assert Round.objects.count() == rounds_before
    assert "already loaded" in capsys.readouterr().out

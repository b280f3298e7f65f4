"""The round report: every number recomputed from the tables here, all 25 districts, and
a fixed number of queries whatever the round's size."""

import io
from collections import defaultdict
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext

from benefits import reports
from benefits.models import Application, Round
from core.districts import SEOUL_DISTRICTS
from core.roles import Role
from eligibility.models import ScreeningRun
from payments import exports, services
from payments.imports import bank_results_import
from payments.models import Payment, VoucherEntry
from payments.selectors import round_budget_ledger
from payments.tasks import bank_files_generate_task
from payments.vouchers import vouchers_lapse
from tests.conftest import client_for
from tests.factories import ApplicationFactory, ProgramFactory, RoundFactory, UserFactory

SONGPA, NOWON, MAPO, JONGNO = "11710", "11350", "11440", "11110"
AMOUNT = 1_000_000

# Written out here rather than read from benefits.reports: the test says what they mean.
APPROVED = ("approved", "selected", "waitlisted")
REPORT_KEYS = [
    "round",
    "program",
    "as_of",
    "applications",
    "approval_rate",
    "districts",
    "duplicates",
    "amounts",
]
AMOUNT_KEYS = [
    "budget",
    "committed",
    "paid",
    "failed",
    "lapsed",
    "recovered",
    "to_recover",
    "available",
]
REGISTRIES = [
    "naeilbaeum",
    "youth_allowance",
    "national_voucher",
    "internal_application",
    "shared_account",
]


def application(round_, status: str, district: str, **fields) -> Application:
    """An application in a state, its applicant living in a district (status set as data)."""
    return ApplicationFactory(round=round_, status=status, applicant__district=district, **fields)


def screening(app: Application, *registries: str, current: bool = True) -> ScreeningRun:
    """A screening run of the application that matched these registries, stored as
    eligibility.rules.stored_records stores matches."""
    return ScreeningRun.objects.create(
        application=app,
        trigger_key=f"{'submit' if current else 'old'}:{ScreeningRun.objects.count()}",
        is_current=current,
        ruleset_version="scholarship-test",
        outcome="needs_review" if registries else "eligible",
        rules=[],
        duplicates=[{"registry": r, "action": "review"} for r in registries],
        duplicate_found=bool(registries),
    )


def pay(round_, *, failing: int = 1) -> None:
    """Pay a selected bank round through the services: batch, approval by another finance
    user, export, disbursement and the bank's results (the first `failing` fail)."""
    maker, checker = UserFactory(role=Role.FINANCE), UserFactory(role=Role.FINANCE)
    batch = services.batch_create(round_=round_, actor=maker)
    batch = services.batch_build(batch_id=batch.pk)
    batch = services.batch_submit(batch=batch, actor=maker)
    batch = services.batch_approve(batch=batch, actor=checker)
    bank_files_generate_task(batch.pk)  # what the approval's commit sends
    _, chunks = exports.bank_file_for_download(batch=batch, fmt="csv", actor=maker)
    b"".join(chunks)
    batch = services.batch_disburse(batch=batch, actor=maker)
    references = sorted(p.reference for p in batch.payments.all())
    lines = ["reference,result,reason"]
    lines += [f"{ref},failed,account closed" for ref in references[:failing]]
    lines += [f"{ref},paid," for ref in references[failing:]]
    bank_results_import(batch=batch, actor=maker, data=("\n".join(lines) + "\n").encode())


def voucher_round_paid(n: int, *, district: str) -> Round:
    """A voucher round whose n recipients were credited through the services."""
    round_ = RoundFactory(
        program=ProgramFactory(code="VOUCHER"),
        status=Round.Status.SELECTED,
        capacity=n,
        amount=350_000,
    )
    for _ in range(n):
        application(round_, "selected", district)
    maker, checker = UserFactory(role=Role.FINANCE), UserFactory(role=Role.FINANCE)
    batch = services.batch_create(round_=round_, actor=maker)
    batch = services.batch_build(batch_id=batch.pk)
    batch = services.batch_submit(batch=batch, actor=maker)
    batch = services.batch_approve(batch=batch, actor=checker)
    services.batch_disburse(batch=batch, actor=maker)
    return round_


def round_in_every_state(districts=(SONGPA, NOWON, MAPO), per_state: int = 1) -> Round:
    """A paid scholarship round with applications in every state in each district, and
    screening runs, current and retired, that found duplicates.

    Selection is set as data; the money goes through the services (see pay).
    """
    round_ = RoundFactory(
        status=Round.Status.SELECTED, capacity=100, amount=AMOUNT, budget=200 * AMOUNT
    )
    for district in districts:
        for status in Application.Status.values:
            for _ in range(per_state):
                app = application(round_, status, district)
                if status == "under_review":
                    screening(app, "naeilbaeum", current=False)
                    screening(app, "youth_allowance", "shared_account")
                elif status == "rejected":
                    screening(app, *REGISTRIES)
    pay(round_)
    return round_


def expected_report(round_: Round) -> dict:
    """The report recomputed from the tables with plain ORM counts, district by district."""
    apps = Application.objects.filter(round=round_)

    def rate(queryset) -> float | None:
        approved = queryset.filter(status__in=APPROVED).count()
        decided = approved + queryset.filter(status__in=["rejected", "appealed"]).count()
        return round(approved / decided, 4) if decided else None

    districts = []
    for code, district in SEOUL_DISTRICTS.items():
        here = apps.filter(applicant__district=code)
        paid = Payment.objects.filter(
            round=round_, status="paid", application__applicant__district=code
        )
        districts.append(
            {
                "district": code,
                "district_name": district.name_ko,
                "applications": here.count(),
                "approved": here.filter(status__in=APPROVED).count(),
                "selected": here.filter(status="selected").count(),
                "paid": paid.values("application_id").distinct().count(),
                "paid_amount": paid.aggregate(total=Sum("amount"))["total"] or 0,
                "approval_rate": rate(here),
            }
        )

    matched = defaultdict(set)
    for run in ScreeningRun.objects.filter(application__round=round_, is_current=True):
        for match in run.duplicates:
            matched[match["registry"]].add(run.application_id)

    payments = Payment.objects.filter(round=round_, application__isnull=False)

    def total(*states) -> int:
        return payments.filter(status__in=states).aggregate(t=Sum("amount"))["t"] or 0

    awaiting = (
        apps.filter(status="selected")
        .exclude(payments__status__in=["pending", "sent", "paid", "failed"])
        .count()
    )
    committed = awaiting * round_.amount + total("pending", "sent", "paid", "failed")
    lapses = VoucherEntry.objects.filter(account__round=round_, kind="lapse")
    lapsed = -(lapses.aggregate(t=Sum("amount"))["t"] or 0)
    return {
        "round": round_.pk,
        "program": round_.program.code,
        "applications": {
            "total": apps.count(),
            "by_status": {s: apps.filter(status=s).count() for s in Application.Status.values},
        },
        "approval_rate": rate(apps),
        "districts": districts,
        "duplicates": {r: len(matched[r]) for r in REGISTRIES},
        "amounts": {
            "budget": round_.budget,
            "committed": committed,
            "paid": total("paid"),
            "failed": total("failed"),
            "lapsed": lapsed,
            "recovered": 0,
            "to_recover": 0,
            "available": round_.budget - committed + lapsed,
        },
    }


def assert_report_matches_tables(round_: Round) -> dict:
    report = reports.round_report(round_=round_)
    assert list(report) == REPORT_KEYS
    assert list(report["amounts"]) == AMOUNT_KEYS
    as_of = datetime.fromisoformat(report.pop("as_of"))
    assert as_of.utcoffset() == timedelta(hours=9)
    assert report == expected_report(round_)
    return report


@pytest.mark.django_db(transaction=True)
def test_every_number_of_a_round_paid_through_the_api_matches_the_tables(manager):
    """Applications in every state over several districts, selected by the program manager,
    paid and failed through finance's API, then every number recomputed from the tables."""
    round_ = RoundFactory(status=Round.Status.CLOSED, capacity=4, amount=AMOUNT, budget=10 * AMOUNT)
    for district in (SONGPA, SONGPA, SONGPA, NOWON, MAPO, MAPO):
        application(round_, "approved", district)
    response = manager.post(f"/api/v1/rounds/{round_.pk}/select/")
    assert response.status_code == 200, response.json()

    late = application(round_, "approved", NOWON)  # approved after the selection ran
    application(round_, "draft", JONGNO)
    application(round_, "draft", "")  # an unfinished profile: in the total, in no district
    application(round_, "submitted", SONGPA)
    application(round_, "screening", NOWON)
    reviewed = [application(round_, "under_review", NOWON) for _ in range(2)]
    application(round_, "needs_documents", MAPO)
    rejected = [application(round_, "rejected", d) for d in (NOWON, NOWON, SONGPA)]
    application(round_, "appealed", MAPO)
    application(round_, "withdrawn", SONGPA)

    screening(reviewed[0], "naeilbaeum", "youth_allowance")
    screening(reviewed[1], "national_voucher", current=False)  # retired: it counts no more
    screening(reviewed[1])
    screening(rejected[0], *REGISTRIES)  # the last match sits at the last position
    screening(late, "shared_account")
    selected = Application.objects.filter(round=round_, status="selected").first()
    screening(selected, "internal_application")

    # Another round in the same districts, paid and lapsed: none of it is this round's.
    other = voucher_round_paid(2, district=SONGPA)
    screening(Application.objects.filter(round=other).first(), "naeilbaeum")
    vouchers_lapse(today=other.voucher_accounts.first().expires_on + timedelta(days=1))

    finance1 = client_for(UserFactory(role=Role.FINANCE))
    finance2 = client_for(UserFactory(role=Role.FINANCE))
    batch = finance1.post("/api/v1/disbursements/", {"round": round_.pk}, format="json").json()
    assert batch["payments_count"] == 4
    assert finance1.post(f"/api/v1/disbursements/{batch['id']}/submit/").status_code == 200
    assert finance2.post(f"/api/v1/disbursements/{batch['id']}/approve/").status_code == 200
    exported = finance1.get(f"/api/v1/disbursements/{batch['id']}/export/?format=csv")
    assert exported.status_code == 200
    b"".join(exported.streaming_content)
    assert finance1.post(f"/api/v1/disbursements/{batch['id']}/disburse/").status_code == 200
    references = sorted(p.reference for p in Payment.objects.filter(batch_id=batch["id"]))
    lines = ["reference,result,reason", f"{references[0]},failed,account closed"]
    lines += [f"{ref},paid," for ref in references[1:]]
    upload = io.BytesIO(("\n".join(lines) + "\n").encode())
    upload.name = "results.csv"
    response = finance1.post(
        f"/api/v1/disbursements/{batch['id']}/results/", {"file": upload}, format="multipart"
    )
    assert response.status_code == 200, response.json()

    report = assert_report_matches_tables(round_)

    # The story in plain numbers, so that a shared mistake in both counts still shows.
    assert report["applications"]["total"] == 19
    assert all(n >= 1 for n in report["applications"]["by_status"].values())
    assert report["applications"]["by_status"]["selected"] == 4
    assert report["applications"]["by_status"]["waitlisted"] == 2
    assert report["approval_rate"] == round(7 / 11, 4)  # an appealed rejection is still decided
    assert sum(d["paid"] for d in report["districts"]) == 3
    assert sum(d["paid_amount"] for d in report["districts"]) == 3 * AMOUNT
    assert sum(d["applications"] for d in report["districts"]) == 18  # one has no district
    assert report["duplicates"] == {
        "naeilbaeum": 2,
        "youth_allowance": 2,
        "national_voucher": 1,
        "internal_application": 2,
        "shared_account": 2,
    }
    assert report["amounts"]["paid"] == 3 * AMOUNT
    assert report["amounts"]["failed"] == AMOUNT
    assert report["amounts"]["committed"] == 4 * AMOUNT
    assert report["amounts"]["lapsed"] == 0
    assert report["amounts"]["available"] == 6 * AMOUNT


@pytest.mark.django_db
def test_a_round_in_every_state_matches_the_tables_in_every_district():
    round_ = round_in_every_state(per_state=2)
    report = assert_report_matches_tables(round_)
    assert report["applications"]["by_status"] == dict.fromkeys(Application.Status.values, 6)
    assert {d["district"] for d in report["districts"] if d["applications"]} == {
        SONGPA,
        NOWON,
        MAPO,
    }


@pytest.mark.django_db
def test_lapsed_vouchers_are_the_ledgers_returned_amount():
    round_ = voucher_round_paid(3, district=MAPO)
    vouchers_lapse(today=round_.voucher_accounts.first().expires_on + timedelta(days=1))
    report = assert_report_matches_tables(round_)
    ledger = round_budget_ledger(round_)
    assert report["amounts"]["lapsed"] == ledger.returned == 3 * 350_000
    assert report["amounts"]["available"] == ledger.available
    mapo = next(d for d in report["districts"] if d["district"] == MAPO)
    assert (mapo["selected"], mapo["paid"], mapo["paid_amount"]) == (3, 3, 3 * 350_000)


@pytest.mark.django_db
def test_an_empty_round_lists_all_25_districts_and_every_state_at_zero():
    round_ = RoundFactory()
    report = reports.round_report(round_=round_)
    assert report["applications"] == {
        "total": 0,
        "by_status": dict.fromkeys(Application.Status.values, 0),
    }
    # Nothing decided is not "all refused".
    assert report["approval_rate"] is None
    assert [d["district"] for d in report["districts"]] == list(SEOUL_DISTRICTS)
    assert len(report["districts"]) == 25
    assert {d["district_name"] for d in report["districts"]} >= {"송파구", "노원구", "종로구"}
    for row in report["districts"]:
        assert row["applications"] == row["paid"] == row["paid_amount"] == 0
        assert row["approval_rate"] is None
    assert report["duplicates"] == dict.fromkeys(REGISTRIES, 0)
    assert report["amounts"]["budget"] == report["amounts"]["available"] == round_.budget
    assert report["program"] == "SCHOLARSHIP"


def _queries(round_: Round) -> int:
    with CaptureQueriesContext(connection) as captured:
        reports.round_report(round_=round_)
    return len(captured)


@pytest.mark.django_db
def test_the_report_is_a_fixed_number_of_queries_whatever_the_rounds_size(
    django_assert_max_num_queries,
):
    small = round_in_every_state(districts=(JONGNO,))
    large = round_in_every_state(districts=(SONGPA, NOWON, MAPO, JONGNO), per_state=3)
    small = reports.round_for_report(pk=small.pk)
    large = reports.round_for_report(pk=large.pk)
    # The budget ledger is another module's: its own queries are counted as they are.
    with CaptureQueriesContext(connection) as ledger:
        round_budget_ledger(large)
    with django_assert_max_num_queries(reports.OWN_QUERIES + len(ledger)):
        reports.round_report(round_=large)
    assert _queries(small) == _queries(large)


@pytest.mark.django_db
def test_the_district_csv_has_the_header_and_one_line_per_district():
    round_ = round_in_every_state(districts=(SONGPA,))
    report = reports.round_report(round_=round_)
    lines = reports.report_districts_csv(report["districts"]).splitlines()
    assert lines[0] == (
        "district,district_name,applications,approved,selected,paid,paid_amount,approval_rate"
    )
    assert len(lines) == 26
    songpa = next(line for line in lines if line.startswith(SONGPA))
    row = next(d for d in report["districts"] if d["district"] == SONGPA)
    assert songpa == ",".join(str(row[c]) for c in reports.DISTRICT_COLUMNS)
    # No decision, no rate: an empty cell rather than a zero.
    assert lines[1] == "11110,종로구,0,0,0,0,0,"


def test_the_chart_puts_the_highest_recipient_rate_first_and_empty_districts_last():
    rows = [
        {"district": "11350", "district_name": "노원구", "applications": 200, "selected": 57},
        {"district": "11110", "district_name": "종로구", "applications": 0, "selected": 0},
        {"district": "11710", "district_name": "송파구", "applications": 100, "selected": 75},
    ]
    ordered = reports.chart_order(rows)
    assert [r["district_name"] for r in ordered] == ["송파구", "노원구", "종로구"]
    assert [reports.chart_label(r) for r in ordered] == ["송파구 75.0%", "노원구 28.5%", "종로구 —"]

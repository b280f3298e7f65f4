"""Repayments racing on one recovery, on PostgreSQL with real threads: never more recorded
than is owed."""

import pytest
from django.db import connection

from benefits.training_end import application_training_end
from core.exceptions import DomainError
from core.roles import Role
from payments.models import Recovery, Repayment
from payments.recoveries import recovery_repayment_record
from tests.factories import UserFactory
from tests.integration.test_concurrency import run_together
from tests.payments.test_recoveries import ENDED, PRO_RATA, TODAY, paid

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


@pytest.fixture(autouse=True)
def _needs_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("money races are tested on PostgreSQL: set DATABASE_URL")


def test_two_repayments_at_once_never_exceed_what_is_owed():
    caseworker = UserFactory(role=Role.CASEWORKER)
    finance = [UserFactory(role=Role.FINANCE), UserFactory(role=Role.FINANCE)]
    # Each of two finance users records 200,000 KRW of a 333,333 KRW case at the same
    # moment, on a few cases: one repayment each time, the other refused.
    cases = [
        application_training_end(
            application=paid(), actor=caseworker, ended_on=ENDED, reason="수강 포기"
        ).recovery
        for _ in range(4)
    ]

    for recovery in cases:

        def work(i, recovery=recovery):
            try:
                recovery_repayment_record(
                    recovery=recovery, actor=finance[i], amount=200_000, paid_on=TODAY
                )
            except DomainError as refused:
                return refused.code
            return "recorded"

        outcomes = run_together(2, work)

        assert sorted(outcomes) == ["exceeds_outstanding", "recorded"]
        recovery = Recovery.objects.get(pk=recovery.pk)
        recorded = list(
            Repayment.objects.filter(recovery=recovery).values_list("amount", flat=True)
        )
        assert recorded == [200_000]
        assert recovery.repaid == sum(recorded)
        assert recovery.amount - recovery.repaid == PRO_RATA - 200_000

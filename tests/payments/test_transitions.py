"""Every batch and payment transition from every state: allowed as the SPEC says, else refused."""

import pytest
from django.db.models import Q
from django_fsm import TransitionNotAllowed

from core.fsm import bulk_transition, transition_states
from payments.models import DisbursementBatch, Payment
from tests.factories import ApplicationFactory, UserFactory

B = DisbursementBatch.Status
BATCH_TRANSITIONS = {
    "submit": ([B.DRAFT], B.PENDING_APPROVAL),
    "approve": ([B.PENDING_APPROVAL], B.APPROVED),
    "disburse": ([B.APPROVED], B.SENT),
    "reconcile": ([B.SENT], B.RECONCILED),
    "close": ([B.RECONCILED], B.CLOSED),
    "cancel": ([B.DRAFT, B.PENDING_APPROVAL, B.APPROVED], B.CANCELLED),
}
P = Payment.Status
PAYMENT_TRANSITIONS = {
    "send": ([P.PENDING], P.SENT),
    "credit": ([P.PENDING], P.PAID),
    "mark_paid": ([P.SENT], P.PAID),
    "mark_failed": ([P.SENT], P.FAILED),
    "reissue": ([P.FAILED], P.REISSUED),
    "cancel": ([P.PENDING], P.CANCELLED),
}


@pytest.mark.parametrize("state", B.values)
@pytest.mark.parametrize("name", BATCH_TRANSITIONS)
def test_batch_transition_from_each_state(name, state):
    sources, target = BATCH_TRANSITIONS[name]
    batch = DisbursementBatch(status=state, build_status="ready")
    if state in sources:
        getattr(batch, name)()
        assert batch.status == target
    else:
        with pytest.raises(TransitionNotAllowed):
            getattr(batch, name)()
        assert batch.status == state


def test_a_batch_still_building_cannot_be_submitted():
    batch = DisbursementBatch(status=B.DRAFT, build_status="building")
    with pytest.raises(TransitionNotAllowed):
        batch.submit()


@pytest.mark.parametrize("state", P.values)
@pytest.mark.parametrize("name", PAYMENT_TRANSITIONS)
def test_payment_transition_from_each_state(name, state):
    sources, target = PAYMENT_TRANSITIONS[name]
    payment = Payment(status=state)
    if state in sources:
        getattr(payment, name)()
        assert payment.status == target
    else:
        with pytest.raises(TransitionNotAllowed):
            getattr(payment, name)()
        assert payment.status == state


@pytest.mark.parametrize("name", PAYMENT_TRANSITIONS)
def test_bulk_transitions_use_the_same_sources_and_target(name):
    assert transition_states(Payment, name) == (*PAYMENT_TRANSITIONS[name],)


@pytest.mark.django_db
def test_a_bulk_transition_leaves_rows_in_other_states_alone():
    application = ApplicationFactory(status="selected")
    other = ApplicationFactory(status="selected", round=application.round)
    batch = DisbursementBatch.objects.create(round=application.round, prepared_by=UserFactory())
    pending = Payment.objects.create(
        batch=batch, round=batch.round, application=application, amount=1
    )
    sent = Payment.objects.create(
        batch=batch, round=batch.round, application=other, amount=1, status=P.SENT
    )
    assert bulk_transition(Payment.objects.filter(Q(pk=pending.pk) | Q(pk=sent.pk)), "send") == 1
    assert set(Payment.objects.values_list("status", flat=True)) == {P.SENT}
    assert bulk_transition(Payment.objects.all(), "mark_paid") == 2
    assert bulk_transition(Payment.objects.all(), "cancel") == 0
    assert set(Payment.objects.values_list("status", flat=True)) == {P.PAID}

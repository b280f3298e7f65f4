"""Every application and round transition, and its refusal from every other state."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django_fsm import TransitionNotAllowed

from benefits import services
from benefits.models import Application, Round
from core.exceptions import InvalidTransition
from core.models import AuditEvent
from core.roles import Role
from tests.factories import ApplicationFactory, RoundFactory, UserFactory, screened_by_task

S = Application.Status
APPLICATION_TRANSITIONS = {
    "submit": ([S.DRAFT, S.NEEDS_DOCUMENTS], S.SUBMITTED),
    "withdraw": (list(Application.WITHDRAWABLE_STATES), S.WITHDRAWN),
    "start_screening": ([S.SUBMITTED], S.SCREENING),
    "finish_screening": ([S.SCREENING], S.UNDER_REVIEW),
    "request_documents": ([S.UNDER_REVIEW], S.NEEDS_DOCUMENTS),
    "approve": ([S.UNDER_REVIEW], S.APPROVED),
    "reject": ([S.UNDER_REVIEW, S.NEEDS_DOCUMENTS], S.REJECTED),
    "select": ([S.APPROVED], S.SELECTED),
    "waitlist": ([S.APPROVED], S.WAITLISTED),
    "promote": ([S.WAITLISTED], S.SELECTED),
}
R = Round.Status
ROUND_TRANSITIONS = {
    "open": ([R.DRAFT], R.OPEN),
    "close": ([R.OPEN], R.CLOSED),
    # A round already paying stays paying when late approvals are selected.
    "select": (
        [R.CLOSED, R.SELECTED, R.DISBURSING],
        {R.CLOSED: R.SELECTED, R.SELECTED: R.SELECTED, R.DISBURSING: R.DISBURSING},
    ),
    "start_disbursing": ([R.SELECTED], R.DISBURSING),
    "complete": ([R.DISBURSING], R.COMPLETED),
    "cancel": ([R.DRAFT, R.OPEN, R.CLOSED], R.CANCELLED),
}


@pytest.mark.parametrize("state", S.values)
@pytest.mark.parametrize("name", APPLICATION_TRANSITIONS)
def test_application_transition_from_each_state(name, state):
    sources, target = APPLICATION_TRANSITIONS[name]
    application = ApplicationFactory.build(status=state)
    if state in sources:
        getattr(application, name)()
        assert application.status == target
    else:
        with pytest.raises(TransitionNotAllowed):
            getattr(application, name)()
        assert application.status == state


@pytest.mark.parametrize("state", R.values)
@pytest.mark.parametrize("name", ROUND_TRANSITIONS)
def test_round_transition_from_each_state(name, state):
    sources, target = ROUND_TRANSITIONS[name]
    round_ = RoundFactory.build(status=state)
    if state in sources:
        getattr(round_, name)()
        assert round_.status == (target[state] if isinstance(target, dict) else target)
    else:
        with pytest.raises(TransitionNotAllowed):
            getattr(round_, name)()
        assert round_.status == state


def test_status_cannot_be_assigned_directly():
    application = ApplicationFactory.build()
    with pytest.raises(AttributeError):
        application.status = S.APPROVED


@pytest.mark.django_db
def test_services_walk_the_whole_path_and_audit_each_step():
    application = ApplicationFactory()
    citizen = application.applicant.user
    caseworker = UserFactory(role=Role.CASEWORKER)
    manager = UserFactory(role=Role.PROGRAM_MANAGER)

    services.application_submit(application=application, actor=citizen)
    screened_by_task(application)
    services.application_request_documents(
        application=application, actor=caseworker, reason="Upload the enrollment certificate."
    )
    services.application_submit(application=application, actor=citizen)
    screened_by_task(application)
    services.application_approve(application=application, actor=caseworker)
    application = services.application_place(application=application, actor=manager, selected=True)

    assert application.status == S.SELECTED
    events = list(AuditEvent.objects.filter(object_type="benefits.application").order_by("id"))
    moves = [(e.from_state, e.to_state) for e in events if e.to_state]
    assert moves == [
        ("draft", "submitted"),
        ("submitted", "screening"),
        ("screening", "under_review"),
        ("under_review", "needs_documents"),
        ("needs_documents", "submitted"),
        ("submitted", "screening"),
        ("screening", "under_review"),
        ("under_review", "approved"),
        ("approved", "selected"),
    ]
    by_action = {e.action: e for e in events}
    assert by_action["application.documents_requested"].actor == caseworker
    assert by_action["application.documents_requested"].reason == (
        "Upload the enrollment certificate."
    )
    assert by_action["application.selected"].actor == manager


@pytest.mark.django_db
def test_service_refuses_wrong_state_and_changes_nothing():
    application = ApplicationFactory()
    caseworker = UserFactory(role=Role.CASEWORKER)
    before = AuditEvent.objects.count()
    with pytest.raises(InvalidTransition):
        services.application_approve(application=application, actor=caseworker)
    application.refresh_from_db()
    assert application.status == S.DRAFT
    assert AuditEvent.objects.count() == before


@pytest.mark.django_db
def test_citizen_cannot_use_caseworker_transition():
    application = ApplicationFactory()
    citizen = application.applicant.user
    services.application_submit(application=application, actor=citizen)
    screened_by_task(application)
    with pytest.raises(PermissionDenied):
        services.application_approve(application=application, actor=citizen)
    application.refresh_from_db()
    assert application.status == S.UNDER_REVIEW


@pytest.mark.django_db
def test_reject_and_request_documents_need_a_reason():
    application = ApplicationFactory()
    caseworker = UserFactory(role=Role.CASEWORKER)
    services.application_submit(application=application, actor=application.applicant.user)
    screened_by_task(application)
    for service in (services.application_reject, services.application_request_documents):
        with pytest.raises(ValidationError) as excinfo:
            service(application=application, actor=caseworker, reason="  ")
        assert excinfo.value.error_dict["reason"][0].code == "required"
    application.refresh_from_db()
    assert application.status == S.UNDER_REVIEW

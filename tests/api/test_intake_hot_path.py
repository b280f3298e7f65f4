"""The intake hot path (create with Idempotency-Key, then submit): its query budget and
the shortcuts that keep it small, each held to the behaviour it replaced."""

import pytest
from django.contrib.auth.models import Group, Permission
from rest_framework import serializers as drf_serializers

from api.models import IdempotencyKey
from api.serializers import ApplicationSerializer
from benefits.models import Application, Document, Notification, Program
from core.roles import Role, ensure_roles
from tests.api.test_applications import TRAINING
from tests.api.test_documents import PDF, upload
from tests.factories import ApplicationFactory, ProgramFactory, RoundFactory, UserFactory

pytestmark = pytest.mark.django_db


def create(client, round_, key="k1"):
    body = {"round": round_.pk, "income_category": "near_poor", "training": TRAINING}
    return client.post("/api/v1/applications/", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def submit(client, pk, **extra):
    return client.post(f"/api/v1/applications/{pk}/submit/", **extra)


# Query budgets. Tests run inside a transaction, so the API's own transactions show here as
# savepoints (SAVEPOINT and RELEASE are counted). Served for real (test_intake_served), a
# create is 8 statements (token with user, applicant and roles; key claim; BEGIN; round;
# application; audit event; stored response; COMMIT) and a submit 8 (token; BEGIN;
# application found, scoped and locked; update; audit event; the "submitted" message in
# the notification outbox; the screening in the task outbox; COMMIT).


def test_create_with_an_idempotency_key_has_a_fixed_query_budget(
    citizen, open_round, django_assert_max_num_queries
):
    with django_assert_max_num_queries(10):
        response = create(citizen, open_round)
    assert response.status_code == 201, response.json()


def test_submit_has_a_fixed_query_budget(citizen, open_round, django_assert_max_num_queries):
    created = create(citizen, open_round).json()
    with django_assert_max_num_queries(8):
        response = submit(citizen, created["id"])
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "submitted"


def test_submit_lists_the_documents_uploaded_before(citizen, open_round):
    created = create(citizen, open_round).json()
    application = Application.objects.get(pk=created["id"])
    assert upload(citizen, application, PDF).status_code == 201
    body = submit(citizen, created["id"]).json()
    assert [d["id"] for d in body["documents"]] == [Document.objects.get().pk]
    assert body["documents"][0]["content_type"] == "application/pdf"


def test_submit_starts_screening_and_sends_the_message_once(
    citizen, open_round, django_capture_on_commit_callbacks, settings
):
    settings.BAEUM_NOTIFICATION_BACKEND = "tests.benefits.test_notifications.RecordingBackend"
    created = create(citizen, open_round).json()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert submit(citizen, created["id"]).status_code == 200
    assert len(callbacks) == 1  # one broker message: screening, then the message
    application = Application.objects.get(pk=created["id"])
    assert application.status == Application.Status.UNDER_REVIEW  # screened
    message = Notification.objects.get(application=application, kind="submitted")
    assert message.status == Notification.Status.SENT


def test_a_refused_create_with_a_key_leaves_the_callers_transaction_usable(citizen, open_round):
    # The service takes no savepoint inside the key's transaction; that transaction has
    # its own (inside the test's), so the refusal rolls back to it and the test carries on.
    assert create(citizen, open_round, key="a").status_code == 201
    refused = create(citizen, open_round, key="b")
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["code"] == "already_applied"
    assert Application.objects.count() == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["a"]


def test_a_refused_service_call_outside_the_key_block_keeps_its_savepoint(citizen, open_round):
    from django.core.exceptions import ValidationError

    from benefits import services

    ApplicationFactory(applicant=citizen.applicant, round=open_round)
    with pytest.raises(ValidationError) as refused:
        # The unique index refuses it (on PostgreSQL an error that aborts the transaction).
        services.application_create(
            applicant=citizen.applicant,
            actor=citizen.applicant.user,
            round_=open_round,
            income_category="none",
            training={
                **TRAINING,
                "starts_on": open_round.period_starts_on,
                "ends_on": open_round.period_ends_on,
            },
        )
    assert "already_applied" in str(refused.value.error_dict["round"][0].code)
    assert Application.objects.count() == 1  # rolled back to its savepoint: still usable


def test_submit_of_an_unknown_id_is_not_found(citizen):
    response = submit(citizen, 10**17)
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "not_found"


# Roles are read with the token on every request, never cached across requests.


def test_a_role_taken_away_counts_from_the_next_request(citizen, open_round):
    user = citizen.applicant.user
    citizens = Group.objects.get(name=Role.CITIZEN)
    user.groups.remove(citizens)
    assert create(citizen, open_round).status_code == 403
    user.groups.add(citizens)
    assert create(citizen, open_round).status_code == 201


def test_a_permission_taken_from_a_role_counts_from_the_next_request(citizen, open_round):
    created = create(citizen, open_round).json()
    citizens = Group.objects.get(name=Role.CITIZEN)
    citizens.permissions.remove(Permission.objects.get(codename="apply"))
    refused = submit(citizen, created["id"])
    assert refused.status_code == 403
    ensure_roles()
    assert submit(citizen, created["id"]).status_code == 200


def test_a_staff_role_given_to_a_citizen_counts_from_the_next_request(citizen, open_round):
    assert citizen.get("/api/v1/review/applications/").status_code == 403
    citizen.applicant.user.groups.add(Group.objects.get(name=Role.CASEWORKER))
    assert citizen.get("/api/v1/review/applications/").status_code == 200


def test_an_unknown_token_is_refused(anon):
    anon.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    response = anon.post("/api/v1/applications/", {}, format="json")
    assert response.status_code == 401


def test_an_inactive_user_is_refused(citizen):
    user = citizen.applicant.user
    user.is_active = False
    user.save()
    assert citizen.get("/api/v1/applications/").status_code == 401


def test_a_user_without_a_profile_or_roles_authenticates(open_round):
    from tests.conftest import client_for

    staff = UserFactory(role=Role.PROGRAM_MANAGER)
    client = client_for(staff)
    assert client.post(f"/api/v1/rounds/{open_round.pk}/close/").status_code == 200
    nobody = client_for(UserFactory())
    assert nobody.get("/api/v1/applications/").status_code == 403


# The round field: a JSON integer takes the compiled query, anything else DRF's own path.


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (10**12, "does_not_exist"),
        (0, "does_not_exist"),
        (-3, "does_not_exist"),
        (2**63, "does_not_exist"),
        (10**30, "does_not_exist"),
        ("abc", "incorrect_type"),
        (True, "incorrect_type"),
        (None, "null"),
    ],
)
def test_a_bad_round_is_a_field_error(citizen, value, code):
    body = {"round": value, "income_category": "none", "training": TRAINING}
    response = citizen.post("/api/v1/applications/", body, format="json")
    assert response.status_code == 400
    assert {e["attr"]: e["code"] for e in response.json()["errors"]} == {"round": code}


def test_a_round_id_as_text_still_works(citizen, open_round):
    body = {"round": str(open_round.pk), "income_category": "none", "training": TRAINING}
    assert citizen.post("/api/v1/applications/", body, format="json").status_code == 201


# The application's representation, written out, against DRF's generic one.


def _generic(application) -> dict:
    serializer = ApplicationSerializer(application)
    return dict(drf_serializers.Serializer.to_representation(serializer, application))


def test_the_written_out_representation_equals_the_declared_fields(citizen, open_round):
    with_training = ApplicationFactory(applicant=citizen.applicant, round=open_round)
    voucher_round = RoundFactory(program=ProgramFactory(code=Program.Code.VOUCHER))
    ApplicationFactory(round=voucher_round, course_name="", institution="", course_id="")
    with_documents = ApplicationFactory()
    upload(citizen, with_training, PDF)
    upload(citizen, with_training, PDF, name="second.pdf")
    Document.objects.update(application=with_documents)
    ApplicationFactory(status=Application.Status.SELECTED, decision_reason="ok")
    ApplicationFactory(status=Application.Status.REJECTED, decision_reason="no")
    applications = Application.objects.select_related("round__program")
    assert applications.count() == 5
    for application in applications:
        fast = ApplicationSerializer(application).data
        assert list(fast) == list(ApplicationSerializer().fields)
        assert fast == _generic(application)
    assert len(ApplicationSerializer(applications.get(pk=with_documents.pk)).data["documents"]) == 2


def test_the_responses_of_create_and_submit_match_a_fresh_read(citizen, open_round):
    created = create(citizen, open_round).json()
    submitted = submit(citizen, created["id"]).json()
    fresh = citizen.get(f"/api/v1/applications/{created['id']}/").json()
    assert submitted == fresh
    # What the citizen still has to upload is shown while they can act on it.
    changed = {"status", "submitted_at", "updated_at", "missing_documents"}
    assert {k: v for k, v in created.items() if k not in changed} == {
        k: v for k, v in fresh.items() if k not in changed
    }
    assert (created["status"], created["submitted_at"]) == ("draft", None)

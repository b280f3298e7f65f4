"""core.prepared: a queryset compiled once gives what the ORM gives, for any parameter values."""

import pytest
from django.contrib.auth.models import Group
from rest_framework.authtoken.models import Token

from benefits.models import Applicant, Application, Round
from core.prepared import PreparedQuery
from core.roles import Role
from tests.factories import ApplicantFactory, ApplicationFactory, RoundFactory, UserFactory

pytestmark = pytest.mark.django_db

TOKEN_WITH_USER = PreparedQuery(
    lambda key: Token.objects.select_related("user", "user__applicant").filter(key=key), key=str
)
ROUND = PreparedQuery(lambda pk: Round.objects.select_related("program").filter(pk=pk), pk=int)
GROUP_NAMES = PreparedQuery(
    lambda user_id: Group.objects.filter(user__id=user_id).values_list("name"), user_id=int
)


def test_instances_and_related_objects_are_those_of_the_orm(django_assert_num_queries):
    applicant = ApplicantFactory()
    token = Token.objects.create(user=applicant.user)
    created = Token.objects.get(pk=token.pk).created
    loaded = TOKEN_WITH_USER.first(key=token.key)
    assert loaded == token and loaded.user == applicant.user
    with django_assert_num_queries(0):
        assert loaded.user.applicant == applicant
        assert loaded.user.applicant.rrn == applicant.rrn  # decrypted by its converter
        assert loaded.created == created  # an aware datetime on either database
    assert not loaded._state.adding and loaded._state.db == "default"


def test_a_missing_reverse_one_to_one_is_cached_as_missing(django_assert_num_queries):
    user = UserFactory()
    token = Token.objects.create(user=user)
    loaded = TOKEN_WITH_USER.first(key=token.key)
    with django_assert_num_queries(0), pytest.raises(Applicant.DoesNotExist):
        loaded.user.applicant  # noqa: B018


def test_each_call_takes_its_own_values():
    first, second = RoundFactory(), RoundFactory()
    assert ROUND.first(pk=first.pk) == first
    assert ROUND.first(pk=second.pk) == second
    assert ROUND.first(pk=second.pk).program == second.program
    assert ROUND.first(pk=10**12) is None


def test_rows_are_those_of_values_list():
    user = UserFactory(role=Role.CASEWORKER)
    user.groups.add(Group.objects.get(name=Role.AUDITOR))
    expected = sorted(Group.objects.filter(user=user).values_list("name"))
    assert sorted(tuple(r) for r in GROUP_NAMES.rows(user_id=user.pk)) == expected
    assert GROUP_NAMES.rows(user_id=UserFactory().pk) == []


def test_annotations_and_row_locks():
    from django.db import transaction
    from django.db.models import Exists, OuterRef

    from benefits.models import Document

    locked = PreparedQuery(
        lambda pk: (
            Application.objects.select_for_update()
            .annotate(has_documents=Exists(Document.objects.filter(application=OuterRef("pk"))))
            .filter(pk=pk)
        ),
        pk=int,
    )
    application = ApplicationFactory()
    with transaction.atomic():
        loaded = locked.first(pk=application.pk)
    assert loaded == application and loaded.has_documents is False
    assert loaded.status == "draft"


def test_a_parameter_that_does_not_reach_the_sql_is_refused():
    dropped = PreparedQuery(lambda pk: Round.objects.all(), pk=int)
    with pytest.raises(ValueError, match="does not reach the SQL"):
        dropped.first(pk=1)


def test_parameters_are_checked():
    with pytest.raises(TypeError):
        PreparedQuery(lambda when: Round.objects.filter(applications_open_at=when), when=object)
    with pytest.raises(TypeError):
        ROUND.first(id=1)

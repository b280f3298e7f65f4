import pytest
from django.contrib.auth.models import Group, Permission

from core.roles import Role, ensure_roles, user_has_role, user_roles
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_every_role_is_a_group_after_migrate():
    assert set(Group.objects.values_list("name", flat=True)) >= set(Role.ALL)


@pytest.mark.parametrize(
    ("role", "allowed", "refused"),
    [
        (Role.CITIZEN, ["benefits.apply"], ["benefits.review_application"]),
        (
            Role.CASEWORKER,
            ["benefits.review_application"],
            ["benefits.apply", "benefits.manage_round"],
        ),
        (Role.PROGRAM_MANAGER, ["benefits.manage_round"], ["benefits.review_application"]),
        (
            Role.AUDITOR,
            ["benefits.view_application", "core.view_auditevent"],
            ["benefits.change_round", "benefits.review_application"],
        ),
    ],
)
def test_role_permissions(role, allowed, refused):
    user = UserFactory(role=role)
    assert user_has_role(user, role)
    for perm in allowed:
        assert user.has_perm(perm), perm
    for perm in refused:
        assert not user.has_perm(perm), perm


def test_roles_and_group_permissions_cost_one_query(django_assert_num_queries):
    user = UserFactory(role=Role.CASEWORKER)
    with django_assert_num_queries(1):
        assert user_roles(user) == {Role.CASEWORKER}
        assert user.has_perm("benefits.review_application")


def test_a_permission_ticked_on_one_user_grants_nothing():
    user = UserFactory(role=Role.CITIZEN)
    user.user_permissions.add(Permission.objects.get(codename="review_application"))
    assert not user.has_perm("benefits.review_application")


def test_ensure_roles_restores_a_tampered_group():
    group = Group.objects.get(name=Role.CITIZEN)
    group.permissions.add(Permission.objects.get(codename="review_application"))
    ensure_roles()
    assert list(group.permissions.values_list("codename", flat=True)) == ["apply"]

"""The roles of SPEC "Users and roles" as Django groups, and the permissions each holds."""

from django.contrib.auth.models import Group, Permission
from django.db.models import Q


class Role:
    CITIZEN = "citizen"
    CASEWORKER = "caseworker"
    PROGRAM_MANAGER = "program_manager"
    FINANCE = "finance"
    PROVIDER = "provider"
    AUDITOR = "auditor"

    ALL = (CITIZEN, CASEWORKER, PROGRAM_MANAGER, FINANCE, PROVIDER, AUDITOR)
    STAFF = (CASEWORKER, PROGRAM_MANAGER, FINANCE, AUDITOR)


VIEW_ALL = "view_*"

# "app_label.codename"; VIEW_ALL grants every view permission of the project's apps.
ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    Role.CITIZEN: ("benefits.apply",),
    Role.CASEWORKER: (
        "benefits.review_application",
        "benefits.view_unmasked_rrn",
        "benefits.view_application",
        "benefits.view_applicant",
        "benefits.view_document",
        "benefits.view_round",
        "benefits.view_program",
    ),
    Role.PROGRAM_MANAGER: (
        "benefits.manage_round",
        "benefits.add_round",
        "benefits.change_round",
        "benefits.change_program",
        "benefits.view_application",
        "benefits.view_round",
        "benefits.view_program",
    ),
    Role.FINANCE: (
        "benefits.view_round",
        "benefits.view_program",
        "benefits.view_application",
        "payments.prepare_batch",
        "payments.approve_batch",
        "payments.view_disbursementbatch",
        "payments.view_payment",
        "payments.view_bankfile",
        "payments.view_bankresultimport",
    ),
    Role.PROVIDER: (),
    Role.AUDITOR: (VIEW_ALL,),
}
PROJECT_APPS = ("core", "benefits", "eligibility", "payments", "api")


def _permissions(names: tuple[str, ...]):
    query = Q(pk__in=[])
    for name in names:
        if name == VIEW_ALL:
            query |= Q(content_type__app_label__in=PROJECT_APPS, codename__startswith="view_")
            continue
        app_label, codename = name.split(".", 1)
        query |= Q(content_type__app_label=app_label, codename=codename)
    return Permission.objects.filter(query)


def ensure_roles() -> None:
    """Create the role groups and set their permissions to exactly the table above."""
    for role, names in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(_permissions(names))


def user_roles(user) -> frozenset[str]:
    """Return the user's roles, memoized on the user object for the request.

    The same query fills the group-permission cache that Django's ModelBackend reads,
    so a later has_perm() (the FSM transition permissions) needs no query of its own.
    """
    cached = getattr(user, "_baeum_roles", None)
    if cached is None:
        rows = list(
            user.groups.values_list(
                "name", "permissions__content_type__app_label", "permissions__codename"
            )
        )
        cached = frozenset(name for name, _, _ in rows)
        user._baeum_roles = cached
        if not hasattr(user, "_group_perm_cache"):
            user._group_perm_cache = {f"{app}.{code}" for _, app, code in rows if code}
    return cached


def user_has_role(user, *roles: str) -> bool:
    """Tell whether the user is in one of the roles."""
    if not user or not user.is_authenticated:
        return False
    held = user_roles(user)
    return any(role in held for role in roles)

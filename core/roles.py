"""The roles of SPEC "Users and roles" as Django groups, and the permissions each holds."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db.models import Aggregate, OuterRef, Q, Subquery, TextField, Value
from django.db.models.functions import Concat

from core.prepared import PreparedQuery


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
        "payments.view_recovery",
        "payments.view_repayment",
    ),
    Role.PROGRAM_MANAGER: (
        "benefits.manage_round",
        "benefits.add_round",
        "benefits.change_round",
        "benefits.change_program",
        "benefits.view_application",
        "benefits.view_round",
        "benefits.view_program",
        "payments.view_recovery",
        "payments.view_repayment",
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
        "payments.manage_recovery",
        "payments.view_recovery",
        "payments.view_repayment",
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


# Compiled once: the ORM spends more time building this join than the database running it.
_ROLES_AND_PERMISSIONS = PreparedQuery(
    lambda user_id: Group.objects.filter(user__id=user_id).values_list(
        "name", "permissions__content_type__app_label", "permissions__codename"
    ),
    user_id=int,
)


def user_roles(user) -> frozenset[str]:
    """Return the user's roles, memoized on the user object for the request.

    The same query fills the group-permission cache that Django's ModelBackend reads,
    so a later has_perm() (the FSM transition permissions) needs no query of its own.
    Nothing is kept across requests: a role change counts from the next request on.
    The API's token authentication loads them with the user (user_roles_subquery).
    """
    cached = getattr(user, "_baeum_roles", None)
    if cached is None:
        rows = _ROLES_AND_PERMISSIONS.rows(user_id=user.pk) if user.pk is not None else []
        cached = _remember(
            user,
            {name for name, _, _ in rows},
            {f"{app}.{code}" for _, app, code in rows if code},
        )
    return cached


def _remember(user, roles: set[str], permissions: set[str]) -> frozenset[str]:
    """Memoize the roles on the user, and fill the group-permission cache that Django's
    ModelBackend reads unless it is filled already."""
    user._baeum_roles = frozenset(roles)
    if not hasattr(user, "_group_perm_cache"):
        user._group_perm_cache = permissions
    return user._baeum_roles


# The packed text of user_roles_subquery(): one record per (role, permission) pair,
# "role<US>app_label.codename", or "role<US>." for a role without permissions.
_UNIT = "\x1f"
_RECORD = "\x1e"


class _JoinedText(Aggregate):
    """Text values joined by a separator: STRING_AGG on PostgreSQL, GROUP_CONCAT on SQLite."""

    function = "STRING_AGG"
    output_field = TextField()

    def __init__(self, expression, separator: str):
        super().__init__(expression, Value(separator))

    def as_sqlite(self, compiler, connection, **extra_context):
        return super().as_sql(compiler, connection, function="GROUP_CONCAT", **extra_context)


def user_roles_subquery(user_id_ref: str) -> Subquery:
    """The roles and permissions of the user whose id is the outer column `user_id_ref`.

    Annotate the query that loads the user with it and pass the value to
    remember_user_roles(): the same rows as user_roles() reads, in the same query.
    """
    memberships = get_user_model().groups.through.objects.filter(user_id=OuterRef(user_id_ref))
    packed = (
        memberships.values("user_id")
        .annotate(
            packed=_JoinedText(
                Concat(
                    "group__name",
                    Value(_UNIT),
                    "group__permissions__content_type__app_label",
                    Value("."),
                    "group__permissions__codename",
                    output_field=TextField(),
                ),
                _RECORD,
            )
        )
        .values("packed")
    )
    return Subquery(packed, output_field=TextField())


def remember_user_roles(user, packed: str | None) -> frozenset[str]:
    """Memoize on the user, as user_roles() does, what user_roles_subquery() read."""
    roles, permissions = set(), set()
    for record in packed.split(_RECORD) if packed else ():
        role, _, permission = record.partition(_UNIT)
        roles.add(role)
        if permission != ".":
            permissions.add(permission)
    return _remember(user, roles, permissions)


def user_has_role(user, *roles: str) -> bool:
    """Tell whether the user is in one of the roles."""
    if not user or not user.is_authenticated:
        return False
    held = user_roles(user)
    return any(role in held for role in roles)

"""Who may enter the staff pages, which menus each role sees, and the view guard.

Every view names the roles that may read it and, for the views that change something,
the roles that may act; the object itself is then checked by the service it calls (FSM
permissions, maker–checker). The auditor reads everything and changes nothing.
"""

from dataclasses import dataclass
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from core.roles import Role, user_roles

CASEWORKER = Role.CASEWORKER
MANAGER = Role.PROGRAM_MANAGER
FINANCE = Role.FINANCE
AUDITOR = Role.AUDITOR
STAFF = Role.STAFF

# Who reads, and who acts, on each part of the workbench.
REVIEW_READ = (CASEWORKER, AUDITOR)
REVIEW_WRITE = (CASEWORKER,)
FINANCE_READ = (FINANCE, AUDITOR)
FINANCE_WRITE = (FINANCE,)
ROUNDS_READ = (MANAGER, AUDITOR)
ROUNDS_WRITE = (MANAGER,)
REPORTS_READ = STAFF
# Recoveries (환수): finance records repayments and waivers; managers and auditors read.
RECOVERY_READ = (FINANCE, MANAGER, AUDITOR)
RECOVERY_WRITE = (FINANCE,)

ROLE_NAMES = {
    CASEWORKER: _("Caseworker"),
    MANAGER: _("Program manager"),
    FINANCE: _("Finance"),
    AUDITOR: _("Auditor"),
}


@dataclass(frozen=True)
class Menu:
    key: str
    title: str
    url_name: str
    roles: tuple[str, ...]


MENUS = (
    Menu("queue", _("Review queue"), "staff:queue", REVIEW_READ),
    Menu("batches", _("Disbursements"), "staff:batch_list", FINANCE_READ),
    Menu("recoveries", _("Recoveries"), "staff:recovery_list", RECOVERY_READ),
    Menu("rounds", _("Rounds"), "staff:round_list", ROUNDS_READ),
    Menu("registries", _("Registries"), "staff:registry_list", ROUNDS_READ),
    Menu("reports", _("Reports"), "staff:report_list", REPORTS_READ),
)


def staff_roles(user) -> frozenset[str]:
    """The staff roles of a user; a superuser holds them all, as in the API."""
    if not user.is_authenticated:
        return frozenset()
    if user.is_superuser:
        return frozenset(STAFF)
    return frozenset(user_roles(user) & set(STAFF))


def menus_for(user) -> list[dict]:
    roles = staff_roles(user)
    return [
        {"key": m.key, "title": m.title, "url": reverse(m.url_name)}
        for m in MENUS
        if roles.intersection(m.roles)
    ]


def forbidden(request):
    return render(request, "staff/403.html", status=403)


def staff_view(*roles: str):
    """Let in the users holding one of `roles`; others get the login page or a 403.

    The view finds `request.staff_roles` set.
    """

    def decorator(view):
        @wraps(view)
        def guarded(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            held = staff_roles(request.user)
            if not held.intersection(roles):
                return forbidden(request)
            request.staff_roles = held
            return view(request, *args, **kwargs)

        guarded.staff_roles = roles
        return guarded

    return decorator


def can(request, *roles: str) -> bool:
    """Tell whether the signed-in staff member holds one of the roles."""
    return bool(getattr(request, "staff_roles", frozenset()).intersection(roles))

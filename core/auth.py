"""Authentication: rights from roles, who the client is, login lockouts, API token lifetimes."""

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.db import transaction
from django.http import JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from rest_framework.authtoken.models import Token
from rest_framework.throttling import BaseThrottle

from core.roles import Role


class RoleBackend(ModelBackend):
    """Django's ModelBackend without per-user permissions.

    Baeum grants rights through the roles of core.roles, so that who may do what is
    visible in one table; a permission ticked on a single user would be invisible there.
    It also spares every FSM permission check a query.
    """

    def get_user_permissions(self, user_obj, obj=None):
        return set()


# Who the client is.


def client_ip(request) -> str | None:
    """The client's address, by the one rule every part of Baeum uses.

    DRF's throttles identify the client through NUM_PROXIES (BAEUM_TRUSTED_PROXIES): the
    socket's REMOTE_ADDR when no proxy of ours stands in front, otherwise the address our
    proxy added as the N-th X-Forwarded-For hop from the right; what the client wrote
    into that header itself, further left, is never believed. Login lockouts (Axes)
    count attempts by this same address.
    """
    return BaseThrottle().get_ident(request)


# Login lockouts (django-axes, configured in settings: AXES_*).


def login_username(request, credentials) -> str | None:
    """The username an attempt counts against, case-folded as accounts are unique
    (writing it in capitals is no new series of tries)."""
    username = (credentials or {}).get("username")
    if username is None:
        username = request.POST.get("username")
    return username.casefold() if isinstance(username, str) else None


def lockout_minutes() -> int:
    return max(1, int(settings.AXES_COOLOFF_TIME.total_seconds() // 60))


def lockout_message() -> str:
    return _(
        "Too many failed sign-ins with this username from this address. "
        "Try again in %(minutes)d minutes."
    ) % {"minutes": lockout_minutes()}


def login_locked_out(request) -> bool:
    """Tell whether the authenticate() just called on this request was refused by Axes.

    Django's authenticate() answers None both for a wrong password and for a lockout;
    Axes marks the request it was given in the second case.
    """
    return bool(getattr(request, "axes_locked_out", False))


def lockout_response(request, response, credentials):
    """What a locked-out sign-in gets: 429, as JSON under /api/, else a page saying when
    to try again (the admin and the staff workbench)."""
    if request.path.startswith("/api/"):
        return JsonResponse(
            {
                "type": "client_error",
                "errors": [{"code": "locked_out", "detail": lockout_message(), "attr": None}],
            },
            status=429,
        )
    return render(
        request,
        "staff/locked_out.html",
        {"message": lockout_message(), "minutes": lockout_minutes()},
        status=429,
    )


# API tokens.


def token_lifetime(user, roles: frozenset[str]) -> timedelta:
    """How long a token of this user lives: weeks for a citizen, a working day for anyone
    with more rights (staff, providers, administrators)."""
    if user.is_staff or user.is_superuser or roles - {Role.CITIZEN}:
        return timedelta(hours=settings.BAEUM_STAFF_TOKEN_HOURS)
    return timedelta(days=settings.BAEUM_CITIZEN_TOKEN_DAYS)


def token_expired(token: Token, roles: frozenset[str], *, now: datetime) -> bool:
    return token.created + token_lifetime(token.user, roles) <= now


@transaction.atomic
def auth_token_issue(*, user) -> Token:
    """Issue a new API token for the user; the one issued before stops working."""
    # The user's row lock makes two logins at once take turns: each replaces the token
    # of the one before instead of both inserting (one token per user).
    type(user).objects.select_for_update().filter(pk=user.pk).first()
    Token.objects.filter(user=user).delete()
    return Token.objects.create(user=user)


def auth_token_revoke(*, user) -> int:
    """Revoke the user's API token; return how many were deleted (0 or 1)."""
    deleted, _ = Token.objects.filter(user=user).delete()
    return deleted


class RevokeTokenOnPasswordChange:
    """A password validator that accepts every password and, once a password has been
    changed, revokes the user's API token.

    Django calls password_changed() on each configured validator after a new password
    is saved (set_password() then save(): the admin, `changepassword`, any form), and
    not when only the hash is upgraded. Sessions end by themselves then: their hash
    of the password no longer matches.
    """

    def validate(self, password, user=None):
        return None

    def password_changed(self, password, user=None):
        if user is not None and user.pk is not None:
            auth_token_revoke(user=user)

    def get_help_text(self):
        return _("Changing your password signs you out of the API on every device.")

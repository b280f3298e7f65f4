"""Token authentication: the user, the applicant profile and the roles in one query."""

from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from core.auth import token_expired
from core.prepared import PreparedQuery
from core.roles import remember_user_roles, user_roles_subquery

# Compiled once (core.prepared): every API request runs it, and building it costs the
# ORM more than the database takes to run it.
_TOKEN_WITH_USER = PreparedQuery(
    lambda key: (
        Token.objects.select_related("user", "user__applicant")
        .annotate(packed_roles=user_roles_subquery("user_id"))
        .filter(key=key)
    ),
    key=str,
)


class TokenAuthentication(authentication.TokenAuthentication):
    def authenticate_credentials(self, key):
        token = _TOKEN_WITH_USER.first(key=key)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        roles = remember_user_roles(token.user, token.packed_roles)
        # The lifetime depends on the roles just read: no query of its own.
        if token_expired(token, roles, now=timezone.now()):
            raise exceptions.AuthenticationFailed("The token has expired: log in again.")
        return token.user, token

"""Authentication backend: permissions come from roles (groups) only."""

from django.contrib.auth.backends import ModelBackend


class RoleBackend(ModelBackend):
    """Django's ModelBackend without per-user permissions.

    Baeum grants rights through the roles of core.roles, so that who may do what is
    visible in one table; a permission ticked on a single user would be invisible there.
    It also spares every FSM permission check a query.
    """

    def get_user_permissions(self, user_obj, obj=None):
        return set()

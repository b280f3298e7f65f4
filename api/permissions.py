"""Role checks for the API; object-level scoping is done by each view's queryset."""

from rest_framework.permissions import BasePermission

from core.roles import Role, user_has_role


class HasRole(BasePermission):
    roles: tuple[str, ...] = ()
    message = "Your role does not allow this action."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            return False
        if user.is_superuser and Role.CITIZEN not in self.roles:
            return True
        return user_has_role(user, *self.roles)


def role_permission(*roles: str) -> type[HasRole]:
    return type(f"Is{''.join(r.title() for r in roles)}", (HasRole,), {"roles": roles})


IsCitizen = role_permission(Role.CITIZEN)
IsProgramManager = role_permission(Role.PROGRAM_MANAGER)
IsCaseworker = role_permission(Role.CASEWORKER)
IsStaff = role_permission(*Role.STAFF)

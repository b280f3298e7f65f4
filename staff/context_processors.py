"""The menus of the signed-in staff member, for the base template of the staff pages."""

from staff.access import menus_for
from staff.middleware import STAFF_PREFIX


def staff_menus(request) -> dict:
    if not request.path_info.startswith(STAFF_PREFIX) or not request.user.is_authenticated:
        return {}
    return {"staff_menus": menus_for(request.user)}

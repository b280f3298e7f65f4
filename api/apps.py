from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_roles(sender, **kwargs):
    from core.roles import ensure_roles

    ensure_roles()


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "API"

    def ready(self):
        # The API app is installed last, so every app's permissions exist by its
        # post_migrate; the role groups are (re)built from core.roles each migrate.
        post_migrate.connect(_ensure_roles, sender=self, dispatch_uid="baeum-ensure-roles")
        # The schema states the bounds of the filters (drf-spectacular finds it registered).
        from api import schema  # noqa: F401

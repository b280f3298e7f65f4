"""Load the demo: staff users, a provider, registries, and both programs through a year of
rounds (benefits.demo). Safe to run again: what is there already is kept."""

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction

from benefits import demo
from benefits.models import Program
from core.crypto import account_fingerprint
from core.roles import Role, ensure_roles

User = get_user_model()

STAFF = {
    "caseworker": Role.CASEWORKER,
    "caseworker2": Role.CASEWORKER,
    "manager": Role.PROGRAM_MANAGER,
    "finance1": Role.FINANCE,
    "finance2": Role.FINANCE,
    "provider": Role.PROVIDER,
    "auditor": Role.AUDITOR,
}


class Command(BaseCommand):
    help = "Load the demo: staff, registries, and rounds in every stage (kept when already there)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--applicants", type=int, default=200, help="demo citizens (default 200)"
        )

    def handle(self, *args, applicants: int, **options):
        ensure_roles()
        password = settings.BAEUM_DEMO_PASSWORD
        staff = self._staff(password)
        self._programs()
        self._provider(staff["provider"])
        citizens = demo.cast(max(applicants, 0))
        demo.registries_import(citizens, actor=staff["manager"], out=self.stdout.write)
        if demo.demo_loaded():
            self.stdout.write("Demo data already loaded: kept as it is (`make reset` starts over).")
        else:
            # Each message is logged by the console backend; hundreds would bury the logins.
            quiet = logging.getLogger("baeum.notifications")
            level = quiet.level
            quiet.setLevel(logging.WARNING)
            try:
                demo.demo_play(
                    citizens=citizens, staff=staff, password=password, out=self.stdout.write
                )
            finally:
                quiet.setLevel(level)
            self.stdout.write(
                self.style.SUCCESS(
                    f"Demo data ready: {len(citizens)} citizens in {len(demo.ROUNDS)} rounds."
                )
            )
        self.stdout.write(
            f"Logins (password '{password}'): admin (superuser), "
            + ", ".join(f"{name} ({role})" for name, role in STAFF.items())
            + (f", citizen001…citizen{applicants:03d} (citizens)" if applicants > 0 else "")
        )

    def _staff(self, password: str) -> dict:
        users = {}
        for username, role in STAFF.items():
            user, created = User.objects.get_or_create(
                username=username, defaults={"is_staff": True}
            )
            if created:
                user.set_password(password)
                user.save()
            user.groups.add(Group.objects.get(name=role))
            users[username] = user
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "admin@example.org", password)
        return users

    @transaction.atomic
    def _programs(self) -> None:
        for code, (name, name_ko, _amount) in demo.PROGRAMS.items():
            Program.objects.get_or_create(code=code, defaults={"name": name, "name_ko": name_ko})

    @transaction.atomic
    def _provider(self, user) -> None:
        """A registered lifelong-learning institution that the demo `provider` acts for."""
        from payments.models import Provider, ProviderUser

        provider, _ = Provider.objects.get_or_create(
            business_registration_number="1348672683",
            defaults={
                "name": "서울시민대학 평생교육원",
                "bank_code": "020",
                "account_number": "1002123456789",
                "account_holder": "서울시민대학",
                "account_fingerprint": account_fingerprint("020", "1002123456789"),
            },
        )
        ProviderUser.objects.get_or_create(user=user, defaults={"provider": provider})

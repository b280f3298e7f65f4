"""Send again the task-outbox work still waiting: what beat does every minute, by hand."""

from django.core.management.base import BaseCommand

from core.outbox import outbox_sweep


class Command(BaseCommand):
    help = "Dispatch the task-outbox entries that are due (never sent, lost, or whose run stopped)."

    def handle(self, *args, **options):
        totals = outbox_sweep()
        self.stdout.write(f"{totals['sent']} sent, {totals['unsent']} left for the next sweep")

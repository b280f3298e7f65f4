"""Remove what a run made, so that runs without --keep leave the database as they found it.

Nothing in Baeum deletes a round, a payment or an audit event, and no service does: this
is the one place that does, for the synthetic rows of one run, named by its prefix. The
registry snapshots the run imported stay: they are the registries' current state.
"""

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import CharField, Q
from django.db.models.functions import Cast

from benefits.models import Applicant, Application, Document, Notification, Round
from core.models import AuditEvent
from core.outbox import outbox_entries_about
from eligibility.models import RegistryImportChunk, RegistryImportJob, ScreeningRun
from payments.models import (
    BankFile,
    BankResultImport,
    DisbursementBatch,
    Payment,
    Provider,
    ProviderUser,
    VoucherAccount,
    VoucherEntry,
)

User = get_user_model()


def _audited(queryset) -> Q:
    """Audit events about the objects of a queryset (their ids are stored as text)."""
    ids = queryset.order_by().annotate(text_id=Cast("pk", CharField())).values("text_id")
    return Q(object_type=queryset.model._meta.label_lower, object_id__in=ids)


def run_delete(*, prefix: str) -> dict[str, int]:
    """Delete the round, users, provider and every row of the run named `prefix`."""
    users = User.objects.filter(username__startswith=f"{prefix}-")
    rounds = Round.objects.filter(name__endswith=f" {prefix}")
    stored = [
        *BankFile.objects.filter(batch__round__in=rounds),
        *Document.objects.filter(application__round__in=rounds),
    ]
    with transaction.atomic():
        counts = _delete_rows(rounds, users)
    # The files go once their rows are gone for good.
    for row in stored:
        row.file.delete(save=False)
    return counts


def _delete_rows(rounds, users) -> dict[str, int]:
    # Subqueries, not lists of ids: a round of a million is no list to bind.
    applications = Application.objects.filter(round__in=rounds)
    applicants = Applicant.objects.filter(user__in=users)
    batches = DisbursementBatch.objects.filter(round__in=rounds)
    jobs = RegistryImportJob.objects.filter(created_by__in=users)
    result_imports = BankResultImport.objects.filter(batch__in=batches)
    providers = list(
        ProviderUser.objects.filter(user__in=users).values_list("provider_id", flat=True)
    )
    counts = {}

    def delete(name: str, queryset) -> None:
        counts[name] = queryset.delete()[0]

    # First the trail, while the objects it names are there to name.
    delete(
        "audit events",
        AuditEvent.objects.filter(
            Q(actor__in=users)
            | _audited(applications)
            | _audited(applicants)
            | _audited(batches)
            | _audited(jobs)
            | _audited(rounds)
        ),
    )
    # The task outbox's record of the work the run asked for (its first argument the id).
    counts["task outbox"] = sum(
        outbox_entries_about(task, objects).delete()[0]
        for task, objects in (
            ("eligibility.screening_tasks.application_screen_task", applications),
            ("eligibility.screening_tasks.round_rescreen_task", rounds),
            ("eligibility.screening_tasks.round_rescreen_chunk_task", rounds),
            ("eligibility.tasks.registry_import_run_task", jobs),
            ("eligibility.tasks.registry_import_chunk_task", jobs),
            ("eligibility.tasks.registry_import_finish_task", jobs),
            ("payments.tasks.batch_build_task", batches),
            ("payments.tasks.bank_files_generate_task", batches),
            ("payments.tasks.bank_results_run_task", result_imports),
            ("payments.tasks.bank_results_chunk_task", result_imports),
        )
    )
    # The chunks the imports were loaded in: their bookkeeping, not the registries'.
    delete(
        "registry import chunks",
        RegistryImportChunk.objects.filter(snapshot__in=jobs.values("snapshot")),
    )
    delete("voucher entries", VoucherEntry.objects.filter(account__round__in=rounds))
    delete("voucher accounts", VoucherAccount.objects.filter(round__in=rounds))
    Payment.objects.filter(round__in=rounds).update(reissue_of=None)
    delete("payments", Payment.objects.filter(round__in=rounds))
    delete("bank result imports", result_imports)
    delete("bank files", BankFile.objects.filter(batch__in=batches))
    delete("batches", batches)
    delete("notifications", Notification.objects.filter(user__in=users))
    delete("screening runs", ScreeningRun.objects.filter(application__in=applications))
    delete("documents", Document.objects.filter(application__in=applications))
    delete("applications", applications)
    delete("applicants", applicants)
    delete("registry import jobs", jobs)
    delete("provider users", ProviderUser.objects.filter(user__in=users))
    delete("providers", Provider.objects.filter(pk__in=providers))
    delete("users", users)
    delete("rounds", rounds)
    return counts

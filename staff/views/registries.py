"""Registry imports: upload a snapshot, follow its job, read the lines it rejected."""

from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from eligibility.imports import registry_import_create
from eligibility.models import RegistryImportJob, RegistryKind
from staff import selectors as staff_selectors
from staff.access import ROUNDS_READ, ROUNDS_WRITE, can, forbidden, staff_view
from staff.feedback import form_errors, run_service
from staff.forms import RegistryImportForm
from staff.labels import IMPORT_STATUS, label
from staff.views.common import paginate

FINISHED = (RegistryImportJob.Status.SUCCEEDED, RegistryImportJob.Status.FAILED)


@staff_view(*ROUNDS_READ)
def registry_list(request):
    if request.method == "POST":
        return _upload(request)
    page = paginate(request, staff_selectors.registry_jobs())
    active = staff_selectors.active_snapshots()
    return render(
        request,
        "staff/registries/registry_list.html",
        {
            "menu": "registries",
            "page": page,
            "snapshots": [(kind, active.get(kind)) for kind in RegistryKind.values],
            "form": RegistryImportForm() if can(request, *ROUNDS_WRITE) else None,
        },
    )


def _upload(request):
    if not can(request, *ROUNDS_WRITE):
        return forbidden(request)
    form = RegistryImportForm(request.POST, request.FILES)
    if not form.is_valid():
        form_errors(request, form)
        return redirect("staff:registry_list")
    ok, job = run_service(
        request,
        lambda: registry_import_create(
            kind=form.cleaned_data["kind"],
            uploaded_file=form.cleaned_data["file"],
            actor=request.user,
        ),
    )
    if not ok:
        return redirect("staff:registry_list")
    return redirect("staff:registry_import", job.pk)


@staff_view(*ROUNDS_READ)
def import_detail(request, pk: int):
    job = get_object_or_404(RegistryImportJob.objects.select_related("created_by"), pk=pk)
    return render(
        request,
        "staff/registries/import.html",
        {"menu": "registries", "job": job, "finished": job.status in FINISHED},
    )


@never_cache
@require_GET
@staff_view(*ROUNDS_READ)
def import_progress(request, pk: int):
    """What the import page polls while the job runs."""
    job = get_object_or_404(RegistryImportJob, pk=pk)
    return JsonResponse(
        {
            "status": job.status,
            "status_label": label(IMPORT_STATUS, job.status),
            "rows_read": job.rows_read,
            "rows_rejected": job.rows_rejected,
            "finished": job.status in FINISHED,
        }
    )

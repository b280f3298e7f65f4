"""Import a registry CSV from a path, through the same service as the API upload."""

from pathlib import Path

from django.core.files import File
from django.core.management.base import BaseCommand, CommandError

from eligibility.imports import registry_import_create, registry_import_run
from eligibility.models import RegistryImportJob, RegistryKind


class Command(BaseCommand):
    help = "Import a registry CSV file and activate it if every row is valid."

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=RegistryKind.values)
        parser.add_argument("path", type=Path)

    def handle(self, *args, kind: str, path: Path, **options):
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        with path.open("rb") as stream:
            job = registry_import_create(
                kind=kind, uploaded_file=File(stream, name=path.name), actor=None, schedule=False
            )
        job = registry_import_run(job_id=job.pk)
        self.stdout.write(
            f"Import #{job.pk} ({job.kind}): {job.status}, {job.rows_read} rows read, "
            f"{job.rows_rejected} rejected, snapshot {job.snapshot_id}"
        )
        for error in job.errors:
            field = f" {error['field']}" if error["field"] else ""
            self.stdout.write(f"  line {error['line']}{field}: {error['code']}: {error['message']}")
        if job.status != RegistryImportJob.Status.SUCCEEDED:
            raise CommandError(f"Import #{job.pk} failed; the active snapshot is unchanged.")

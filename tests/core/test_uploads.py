"""Large uploads are encrypted as they arrive; views read them as they were sent."""

import pytest
from django.core.files.base import ContentFile
from django.urls import resolve

from benefits.document_services import document_chunks
from benefits.models import Document
from core.crypto import FILE_MAGIC
from core.uploads import SealedTemporaryFileUploadHandler, SealedUploadedFile
from eligibility.models import RegistryImportJob
from tests.api.test_documents import PDF, upload
from tests.factories import ApplicationFactory, rrn_for

pytestmark = pytest.mark.django_db
HEADER = "rrn,status,district,valid_from,valid_to\n"


def registry_file(rows: int) -> bytes:
    return (
        HEADER + "".join(f"{rrn_for(n)},near_poor,11440,2025-01-01,\n" for n in range(rows))
    ).encode()


def test_the_handler_never_writes_plaintext_and_reads_it_back():
    content = registry_file(5_000)
    handler = SealedTemporaryFileUploadHandler()
    handler.new_file("file", "social.csv", "text/csv", len(content))
    for start in range(0, len(content), 65_536):
        handler.receive_data_chunk(content[start : start + 65_536], start)
    upload = handler.file_complete(len(content))

    handler._sealed.seek(0)
    at_rest = handler._sealed.read()
    assert at_rest.startswith(FILE_MAGIC)
    assert rrn_for(1).encode() not in at_rest
    assert isinstance(upload, SealedUploadedFile)
    assert (upload.name, upload.size) == ("social.csv", len(content))
    assert b"".join(upload.chunks(10_000)) == content
    upload.seek(0)
    assert upload.read(8) == content[:8]
    upload.seek(0)
    assert upload.read() == content


def test_a_large_registry_upload_arrives_sealed_and_imports(manager, settings, monkeypatch):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1_000
    seen = []
    from eligibility import imports

    resolve("/api/v1/registries/imports/1/")  # the URL converters, before the views' module

    real_create = imports.registry_import_create

    def create(**kwargs):
        seen.append(type(kwargs["uploaded_file"]))
        return real_create(**kwargs)

    monkeypatch.setattr("api.registries.registry_import_create", create)
    content = registry_file(2_000)
    body = {"file": ContentFile(content, name="social.csv")}

    first = manager.post(
        "/api/v1/registries/social_security/imports/",
        body,
        format="multipart",
        HTTP_IDEMPOTENCY_KEY="upload-1",
    )
    assert first.status_code == 202, first.content
    assert seen == [SealedUploadedFile]
    job = RegistryImportJob.objects.get(pk=first.json()["id"])
    with open(job.file.path, "rb") as stored:
        assert stored.read(len(FILE_MAGIC)) == FILE_MAGIC

    # The same key and file replay the first answer: the fingerprint reads the plaintext.
    again = manager.post(
        "/api/v1/registries/social_security/imports/",
        {"file": ContentFile(content, name="social.csv")},
        format="multipart",
        HTTP_IDEMPOTENCY_KEY="upload-1",
    )
    assert (again.status_code, again.json()["id"]) == (202, job.pk)

    job = imports.registry_import_run(job_id=job.pk)
    assert (job.status, job.rows_read) == ("succeeded", 2_000)


def test_a_document_larger_than_memory_uploads_and_reads_back(citizen, open_round, settings):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 10
    application = ApplicationFactory(applicant=citizen.applicant, round=open_round)
    content = PDF + b"%" + b"x" * 5_000 + b"\n"

    response = upload(citizen, application, content)

    assert response.status_code == 201, response.content
    document = Document.objects.get()
    assert document.size == len(content)
    assert b"".join(document_chunks(document)) == content

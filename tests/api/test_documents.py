"""Document uploads: PDF, PNG or JPEG by content, at most 10 MB, stored encrypted outside the
web root; read back by reviewers only, each read audited."""

import hashlib
import io
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from benefits import document_services, services
from benefits.models import Document
from core.models import AuditEvent
from core.roles import Role
from tests.documents import JPEG, PDF, PNG, image, pdf_of_size
from tests.factories import ApplicationFactory

pytestmark = pytest.mark.django_db

ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 120


def upload(client, application, content: bytes, name="proof.pdf", kind="income_proof"):
    return client.post(
        f"/api/v1/applications/{application.pk}/documents/",
        {"kind": kind, "file": SimpleUploadedFile(name, content)},
        format="multipart",
    )


def errors(response) -> dict:
    return {e["attr"]: e["code"] for e in response.json()["errors"]}


@pytest.fixture
def draft(citizen):
    return ApplicationFactory(applicant=citizen.applicant)


@pytest.mark.parametrize(
    ("content", "name", "mime"),
    [
        (PDF, "proof.pdf", "application/pdf"),
        (PNG, "scan.png", "image/png"),
        (JPEG, "p.jpeg", "image/jpeg"),
    ],
)
def test_upload_accepted_by_content(citizen, draft, content, name, mime):
    response = upload(citizen, draft, content, name=name)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["content_type"] == mime and body["size"] == len(content)
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    document = Document.objects.get()
    stored = Path(document.file.path)
    # Encrypted at rest: nothing of the content is readable on the disk.
    assert content[:16] not in stored.read_bytes()
    assert b"".join(document_services.document_chunks(document)) == content
    assert name not in stored.name  # the citizen's file name never reaches the disk
    assert not str(stored).startswith(str(settings.STATIC_ROOT))
    detail = citizen.get(f"/api/v1/applications/{draft.pk}/").json()
    assert [d["id"] for d in detail["documents"]] == [document.pk]


def test_a_png_named_pdf_is_stored_as_what_it_is(citizen, draft):
    response = upload(citizen, draft, PNG, name="looks-like.pdf")
    assert response.status_code == 201
    assert response.json()["content_type"] == "image/png"


def test_executable_renamed_pdf_is_refused(citizen, draft):
    response = upload(citizen, draft, ELF, name="invoice.pdf")
    assert response.status_code == 400
    assert errors(response) == {"file": "unsupported_file_type"}
    assert not Document.objects.exists()


def test_eleven_megabyte_file_is_refused(citizen, draft):
    big = PDF + b"0" * (11 * 1024 * 1024)
    response = upload(citizen, draft, big)
    assert response.status_code == 400
    assert errors(response) == {"file": "file_too_large"}
    assert not Document.objects.exists()


def test_exactly_ten_megabytes_is_accepted(citizen, draft):
    assert upload(citizen, draft, pdf_of_size(10 * 1024 * 1024)).status_code == 201


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"kind": "income_proof"}, {"file": "required"}),
        ({"file": io.BytesIO(PDF)}, {"kind": "required"}),
        ({"kind": "selfie", "file": io.BytesIO(PDF)}, {"kind": "invalid_choice"}),
    ],
)
def test_missing_or_wrong_fields(citizen, draft, data, expected):
    if "file" in data:
        data["file"] = SimpleUploadedFile("a.pdf", data["file"].getvalue())
    response = citizen.post(f"/api/v1/applications/{draft.pk}/documents/", data, format="multipart")
    assert response.status_code == 400
    assert errors(response) == expected


def test_empty_file_is_refused(citizen, draft):
    response = upload(citizen, draft, b"")
    assert response.status_code == 400
    assert errors(response) == {"file": "empty"}


def test_upload_after_submit_is_refused(citizen, draft):
    services.application_submit(application=draft, actor=citizen.applicant.user)
    response = upload(citizen, draft, PDF)
    assert response.status_code == 409
    assert errors(response) == {"status": "not_editable"}
    assert not Document.objects.exists()


def test_json_upload_is_unsupported_media_type(citizen, draft):
    response = citizen.post(
        f"/api/v1/applications/{draft.pk}/documents/", {"kind": "other"}, format="json"
    )
    assert response.status_code == 415


# Reading a document back: the reviewers only, each read audited.


@pytest.fixture
def submitted_with_proof(citizen, draft):
    assert upload(citizen, draft, PDF, name='소득 "증명".pdf').status_code == 201
    services.application_submit(application=draft, actor=citizen.applicant.user)
    return draft, Document.objects.get()


def document_url(application, document) -> str:
    return f"/api/v1/review/applications/{application.pk}/documents/{document.pk}/"


def test_a_caseworker_reads_the_document_as_uploaded_and_the_read_is_audited(
    submitted_with_proof, caseworker
):
    application, document = submitted_with_proof

    response = caseworker.get(document_url(application, document), HTTP_ACCEPT="application/pdf")

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PDF
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Length"] == str(len(PDF))
    assert response["Content-Disposition"] == (
        "attachment; filename*=utf-8''%EC%86%8C%EB%93%9D%20%22%EC%A6%9D%EB%AA%85%22.pdf"
    )
    assert response["Cache-Control"] == "no-store"
    assert response["X-Content-SHA256"] == hashlib.sha256(PDF).hexdigest()
    event = AuditEvent.objects.get(action="document.viewed")
    assert event.actor == caseworker.user
    assert (event.object_id, event.data) == (
        str(application.pk),
        {"document": document.pk, "kind": "income_proof"},
    )


def test_only_reviewers_read_documents_and_only_through_their_application(
    submitted_with_proof, citizen, caseworker, manager, staff
):
    application, document = submitted_with_proof
    other = ApplicationFactory(status="submitted", submitted_at=application.submitted_at)

    # The citizen who uploaded it and staff of other roles: 403.
    for client in (citizen, manager, staff(Role.FINANCE)):
        assert client.get(document_url(application, document)).status_code == 403
    # A document asked for through another application, or one that does not exist: 404.
    for url in (
        document_url(other, document),
        f"/api/v1/review/applications/{application.pk}/documents/999999/",
    ):
        response = caseworker.get(url, HTTP_ACCEPT="application/pdf")
        assert response.status_code == 404
        assert response["Content-Type"] == "application/json"
    assert staff(Role.AUDITOR).get(document_url(application, document)).status_code == 200
    assert AuditEvent.objects.filter(action="document.viewed").count() == 1


def test_a_document_stored_before_encryption_reads_as_is_and_rotation_encrypts_it(
    submitted_with_proof, caseworker, django_capture_on_commit_callbacks
):
    application, document = submitted_with_proof
    # As an earlier version stored it: the upload itself, in plaintext.
    plain = document.file.storage.save("applications/legacy.pdf", io.BytesIO(PDF))
    Document.objects.filter(pk=document.pk).update(file=plain)

    response = caseworker.get(document_url(application, document))
    assert b"".join(response.streaming_content) == PDF

    with django_capture_on_commit_callbacks(execute=True):
        call_command("rotate_encryption_keys", stdout=io.StringIO())

    document.refresh_from_db()
    with document.file.open("rb") as f:
        assert PDF[:16] not in f.read()
    assert not document.file.storage.exists(plain)
    response = caseworker.get(document_url(application, document))
    assert b"".join(response.streaming_content) == PDF


@pytest.mark.parametrize("damage", ["flip a byte", "cut short", "lose the file"])
def test_a_document_that_does_not_read_whole_is_not_served_at_all(
    submitted_with_proof, caseworker, damage
):
    application, document = submitted_with_proof
    path = Path(document.file.path)
    blob = path.read_bytes()
    if damage == "flip a byte":
        path.write_bytes(blob[:-5] + bytes([blob[-5] ^ 1]) + blob[-4:])
    elif damage == "cut short":
        path.write_bytes(blob[:-3])
    else:
        path.unlink()

    caseworker.raise_request_exception = False  # a 500: answered, and logged as an error
    response = caseworker.get(document_url(application, document))

    # Not a 200 that breaks off: an error before anything of the file is sent.
    assert response.status_code == 500
    assert response.json()["errors"][0]["code"] == "stored_file_unreadable"
    assert not AuditEvent.objects.filter(action="document.viewed").exists()


# Content parsed whole, in a bounded child process.


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims a size its data does not have (a decompression bomb's
    header: the claim alone would cost gigabytes to decode)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("content", "name"),
    [
        (b"%PDF-1.7\n" + ELF, "invoice.pdf"),  # an executable behind a PDF header
        (PDF.replace(b"/Kids[3 0 R]/Count 1", b"/Kids[]/Count 0"), "empty.pdf"),  # no page
        (PDF[: len(PDF) // 2], "cut.pdf"),
        (PNG[:-20], "cut.png"),
        (PNG[:40] + bytes([PNG[40] ^ 0xFF]) + PNG[41:], "flipped.png"),  # a bad checksum
        (JPEG[:-200], "cut.jpeg"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" + b"\x00" * 120, "header-only.jpeg"),
        (png_claiming(100_000, 100_000), "bomb.png"),
    ],
)
def test_a_file_that_only_begins_like_a_document_is_refused(citizen, draft, content, name):
    response = upload(citizen, draft, content, name=name)
    assert response.status_code == 400
    assert errors(response) == {"file": "unreadable_file"}
    assert not Document.objects.exists()
    assert not list(Path(settings.STORAGES["default"]["OPTIONS"]["location"]).rglob("*.bin"))


def test_the_check_is_held_to_its_time(citizen, draft, settings):
    settings.BAEUM_DOCUMENT_CHECK_SECONDS = 0.01  # less than the reader needs to start
    response = upload(citizen, draft, PDF)
    assert errors(response) == {"file": "unreadable_file"}
    assert "took too long" in response.json()["errors"][0]["detail"]


def test_the_check_is_held_to_its_memory(citizen, draft, settings):
    settings.BAEUM_DOCUMENT_CHECK_MEMORY_MB = 8  # too little for the reader to start
    response = upload(citizen, draft, PDF)
    assert errors(response) == {"file": "unreadable_file"}
    assert not Document.objects.exists()


def test_an_application_holds_a_limited_number_of_documents(citizen, draft, settings):
    settings.BAEUM_MAX_DOCUMENTS_PER_APPLICATION = 2
    assert [upload(citizen, draft, PNG).status_code for _ in range(2)] == [201, 201]
    response = upload(citizen, draft, PNG)
    assert response.status_code == 409
    assert errors(response) == {"documents": "too_many_documents"}
    assert Document.objects.count() == 2
    assert "at most 2 documents" in response.json()["errors"][0]["detail"]


def test_the_same_file_again_is_not_parsed_again(citizen, draft, monkeypatch):
    from benefits import documents

    launched = []
    real = documents._parse_in_child

    def counted(content, mime):
        launched.append(mime)
        return real(content, mime)

    monkeypatch.setattr(documents, "_parse_in_child", counted)
    monkeypatch.setattr(documents, "_VERDICTS", type(documents._VERDICTS)())
    first = image("PNG", size=(33, 21))
    assert [upload(citizen, draft, first).status_code for _ in range(3)] == [201] * 3
    assert upload(citizen, draft, image("PNG", size=(34, 21))).status_code == 201
    assert launched == ["image/png", "image/png"]

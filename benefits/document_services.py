"""Writes and audited reads of an application's documents: stored sealed, checked by
their content first (benefits.documents), read whole before the first byte goes out."""

import tempfile
from collections.abc import Iterator

from django.conf import settings
from django.core.files import File
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.http import Http404

from benefits.documents import document_content_type
from benefits.models import Application, Document
from benefits.transitions import application_locked
from core.audit import audit_record
from core.crypto import encrypt_file
from core.exceptions import Conflict, InvalidTransition
from core.files import stored_file_chunks


def document_add(*, application: Application, actor, kind: str, uploaded: UploadedFile) -> Document:
    """Store an uploaded PDF, PNG or JPEG, checked by its content, with the application."""
    # Parsed before the transaction: the check may take seconds, and holds no lock.
    mime = document_content_type(uploaded=uploaded)
    with transaction.atomic():
        return document_store(
            application=application, actor=actor, kind=kind, uploaded=uploaded, mime=mime
        )


def document_store(
    *, application, actor, kind, uploaded, mime, states=Application.DOCUMENT_STATES
) -> Document:
    """Store an upload already checked (document_content_type gave `mime`) with the
    application, in the caller's transaction, while it is in one of `states`."""
    application = application_locked(application)
    if application.status not in states:
        raise InvalidTransition(
            f"Documents can only be added while the application is a draft, waiting for "
            f"documents or under appeal; it is '{application.status}'.",
            code="not_editable",
        )
    cap = settings.BAEUM_MAX_DOCUMENTS_PER_APPLICATION
    # Counted under the application's lock: two uploads at once cannot both take the last place.
    if application.documents.count() >= cap:
        raise Conflict(
            f"An application holds at most {cap} documents.",
            code="too_many_documents",
            field="documents",
        )
    uploaded.seek(0)
    original_name = (uploaded.name or "document").rsplit("/", 1)[-1][:255]
    document = Document(
        application=application,
        kind=kind,
        original_name=original_name,
        content_type=mime,
        size=uploaded.size,
        uploaded_by=actor,
    )
    with tempfile.TemporaryFile() as sealed:
        document.sha256 = encrypt_file(uploaded, sealed, purpose=Document.FILE_PURPOSE)
        sealed.seek(0)
        # The stored name tells nothing of the content: the type is on the row.
        document.file.save("upload.bin", File(sealed), save=False)
    try:
        document.save()
    except Exception:
        document.file.delete(save=False)
        raise
    audit_record(
        actor=actor,
        obj=application,
        action="document.uploaded",
        data={"document": document.pk, "kind": kind},
    )
    return document


def document_chunks(document: Document) -> Iterator[bytes]:
    """The content of a stored document, checked whole before the first byte is handed out;
    documents stored before they were encrypted are read as they are."""
    return stored_file_chunks(document.file, purpose=Document.FILE_PURPOSE, plaintext_allowed=True)


@transaction.atomic
def document_open(
    *, application: Application, document_id: int, actor
) -> tuple[Document, Iterator[bytes]]:
    """One document of the application and its content, for a reviewer to read; who read it
    is audited, once the file has read whole."""
    # The documents came with the application (application_get_for_reviewer).
    document = next((d for d in application.documents.all() if d.pk == document_id), None)
    if document is None:
        raise Http404
    chunks = document_chunks(document)
    audit_record(
        actor=actor,
        obj=application,
        action="document.viewed",
        data={"document": document.pk, "kind": document.kind},
    )
    return document, chunks

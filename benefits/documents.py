"""What an uploaded document must be before it is stored: small enough, a PDF, PNG or JPEG
by its first bytes, and a file that parses as one.

A `%PDF-` header is a claim, not a PDF: the content is parsed whole (pypdf for PDFs,
Pillow for images) in a child process (benefits/document_check.py) with its memory capped
and its time limited, so a file crafted to make a parser loop or swell costs one refused
upload, not a web worker.
"""

import hashlib
import subprocess
import sys
import threading
from collections import OrderedDict
from pathlib import Path

import filetype
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile

ALLOWED_DOCUMENT_TYPES = {"application/pdf", "image/png", "image/jpeg"}
_CHECKER = Path(__file__).with_name("document_check.py")
_NAMES = {"application/pdf": "PDF", "image/png": "PNG", "image/jpeg": "JPEG"}
# What the child said of content it read to the end, by digest: the same file uploaded
# again (a form template, a simulated round's certificate) is not parsed again.
_VERDICTS: OrderedDict[tuple, str] = OrderedDict()
_VERDICTS_KEPT = 1024
_VERDICTS_LOCK = threading.Lock()
_NOT_REMEMBERED = {"it took too long to read", "the reader stopped"}  # the limits, not the file


def _refused(field: str, message: str, code: str) -> ValidationError:
    return ValidationError({field: ValidationError(message, code=code)})


def document_content_type(*, uploaded: UploadedFile, field: str = "file") -> str:
    """Return the upload's MIME type once its size, type and content are checked; raise a
    ValidationError on `field`, the request's field that carried it, otherwise."""
    limit = settings.BAEUM_MAX_DOCUMENT_BYTES
    if uploaded.size > limit:
        raise _refused(
            field, f"The file is larger than {limit // (1024 * 1024)} MB.", "file_too_large"
        )
    uploaded.seek(0)
    content = uploaded.read()
    uploaded.seek(0)
    detected = filetype.guess(content[:8192])
    mime = detected.mime if detected else None
    if mime not in ALLOWED_DOCUMENT_TYPES:
        raise _refused(
            field, "The file must be a PDF, PNG or JPEG document.", "unsupported_file_type"
        )
    verdict = _verdict(content, mime)
    if verdict != "ok":
        raise _refused(
            field,
            f"The file begins as a {_NAMES[mime]} but could not be read as one ({verdict}). "
            f"Save or scan it again and upload the new file.",
            "unreadable_file",
        )
    return mime


def _verdict(content: bytes, mime: str) -> str:
    key = (
        hashlib.sha256(content).digest(),
        mime,
        settings.BAEUM_DOCUMENT_CHECK_SECONDS,
        settings.BAEUM_DOCUMENT_CHECK_MEMORY_MB,
        settings.BAEUM_DOCUMENT_MAX_PIXELS,
    )
    with _VERDICTS_LOCK:
        if (verdict := _VERDICTS.get(key)) is not None:
            _VERDICTS.move_to_end(key)
            return verdict
    verdict = _parse_in_child(content, mime)
    if verdict not in _NOT_REMEMBERED:
        with _VERDICTS_LOCK:
            _VERDICTS[key] = verdict
            while len(_VERDICTS) > _VERDICTS_KEPT:
                _VERDICTS.popitem(last=False)
    return verdict


def _parse_in_child(content: bytes, mime: str) -> str:
    command = [
        sys.executable,
        "-I",  # no environment variables, no user site, not the caller's directory
        str(_CHECKER),
        mime,
        str(settings.BAEUM_DOCUMENT_CHECK_MEMORY_MB),
        str(settings.BAEUM_DOCUMENT_MAX_PIXELS),
    ]
    try:
        finished = subprocess.run(  # noqa: S603 - our own interpreter and script, no shell
            command,
            input=content,
            capture_output=True,
            timeout=settings.BAEUM_DOCUMENT_CHECK_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "it took too long to read"
    verdict = finished.stdout.decode("ascii", "replace").strip()
    if finished.returncode != 0 or not verdict:
        return "the reader stopped"
    return verdict

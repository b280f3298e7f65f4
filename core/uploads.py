"""Uploads too large to keep in memory are sealed as they arrive, never written in plaintext.

Django's TemporaryFileUploadHandler writes such an upload to a named file in the temp
directory as it is received: a registry file of raw RRNs, or a bank book, would sit there
in plaintext for the length of the request, and stay behind if the process is killed.
This handler writes it instead to an unnamed temporary file (gone with its process) in
core.crypto's file format, and hands the view a file that reads back the plaintext: code
that reads uploads (document checks, registry imports, bank results) is unchanged.
"""

import tempfile

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler

from core.crypto import FileSealer
from core.files import SealedReader

PURPOSE = "upload"


class _PlainView:
    """The plaintext of a sealed temporary file, read from the start (seek(0) only)."""

    def __init__(self, sealed):
        self._sealed, self._position = sealed, 0
        self.seek(0)

    def read(self, size: int = -1) -> bytes:
        data = self._reader.read(size)
        self._position += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        if (offset, whence) != (0, 0):
            raise OSError("a sealed upload is read from its start only")
        self._sealed.seek(0)
        self._reader, self._position = SealedReader(self._sealed, purpose=PURPOSE), 0
        return 0

    def tell(self) -> int:
        return self._position

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        self._sealed.close()

    @property
    def closed(self) -> bool:
        return self._sealed.closed


class SealedUploadedFile(UploadedFile):
    """An upload kept encrypted on disk; reading it gives its plaintext."""


class SealedTemporaryFileUploadHandler(FileUploadHandler):
    """Stream a large upload into an unnamed temporary file, encrypted chunk by chunk."""

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        # Unnamed, and closed with the upload: nothing is left if the process dies.
        self._sealed = tempfile.TemporaryFile(dir=settings.FILE_UPLOAD_TEMP_DIR)  # noqa: SIM115
        self._sealer = FileSealer(self._sealed, purpose=PURPOSE)

    def receive_data_chunk(self, raw_data, start):
        self._sealer.write(raw_data)

    def file_complete(self, file_size):
        self._sealer.close()
        return SealedUploadedFile(
            _PlainView(self._sealed),
            name=self.file_name,
            content_type=self.content_type,
            size=file_size,
            charset=self.charset,
            content_type_extra=self.content_type_extra,
        )

    def upload_interrupted(self):
        if hasattr(self, "_sealed"):
            self._sealed.close()

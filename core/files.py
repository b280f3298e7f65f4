"""Files kept encrypted by core.crypto (bank files, documents, registry uploads), read back
whole or not at all, or as a stream that authenticates each chunk before handing it out."""

from collections.abc import Iterator

from core.crypto import (
    FILE_CHUNK_BYTES,
    DecryptionError,
    decrypt_file,
    decrypted_sha256,
    is_encrypted_file,
)
from core.exceptions import DomainError


class StoredFileUnreadable(DomainError):
    """A stored file did not decrypt or could not be read: nothing of it was served."""

    status_code = 500
    default_code = "stored_file_unreadable"


class SealedReader:
    """A read-only stream over a file made by encrypt_file, decrypted chunk by chunk as it is
    read: the plaintext is never whole in memory nor on disk. Raises DecryptionError where
    a chunk fails to authenticate (a cut or tampered file), before any of its bytes."""

    def __init__(self, source, *, purpose: str):
        self._source, self._purpose, self._origin = source, purpose, source.tell()
        self._chunks = decrypt_file(source, purpose=purpose)
        self._rest = memoryview(b"")

    def seek(self, offset: int) -> int:
        """Go to plaintext byte `offset` (from the start), decrypting from the chunk that holds
        it; the chunks before are skipped unread."""
        self._source.seek(self._origin)
        self._chunks = decrypt_file(self._source, purpose=self._purpose, offset=offset)
        self._rest = memoryview(b"")
        return offset

    def read(self, size: int = -1) -> bytes:
        """Return up to size bytes (fewer at a chunk's end), b"" at the end of the file."""
        if size is None or size < 0:
            data = b"".join([bytes(self._rest), *self._chunks])
            self._rest = memoryview(b"")
            return data
        while not self._rest:
            self._rest = memoryview(b"")  # lets the spent chunk go before the next is read
            chunk = next(self._chunks, None)
            if chunk is None:
                return b""
            self._rest = memoryview(chunk)
        piece, self._rest = self._rest[:size], self._rest[size:]
        return bytes(piece)


def stored_file_chunks(stored, *, purpose: str, plaintext_allowed: bool = False) -> Iterator[bytes]:
    """Return an iterator over a stored file's content, once the whole file has decrypted.

    Every chunk is authenticated first, so a file that was tampered with, cut short, lost
    or made under a key no longer configured fails here, before a response has begun,
    rather than halfway through a download that already said 200. `plaintext_allowed`
    serves as they are the files a model stored before it encrypted them.
    """
    try:
        with stored.open("rb") as source:
            if is_encrypted_file(source):
                decrypted_sha256(source, purpose=purpose)
            elif not plaintext_allowed:
                raise DecryptionError("Not an encrypted Baeum file.")
    except (DecryptionError, OSError):
        raise StoredFileUnreadable(
            "The stored file could not be read, so none of it was sent. "
            "Tell the administrator; the file may need to be made again."
        ) from None
    return _chunks(stored, purpose)


def _chunks(stored, purpose: str) -> Iterator[bytes]:
    with stored.open("rb") as source:
        if is_encrypted_file(source):
            yield from decrypt_file(source, purpose=purpose)
        else:
            yield from iter(lambda: source.read(FILE_CHUNK_BYTES), b"")

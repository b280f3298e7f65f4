"""Personal data at rest: AES-256-GCM tokens under a rotatable key ring, and blind indexes."""

import base64
import binascii
import functools
import hashlib
import hmac
import os
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from core.rrn import normalize_rrn

VERSION = "v1"
_NONCE_BYTES = 12
_TAG_BYTES = 16
_KID_RE = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_B64URL_RE = re.compile(r"[A-Za-z0-9_-]+={0,2}")


class DecryptionError(Exception):
    """A token could not be decrypted; the message never carries data or keys."""


@dataclass(frozen=True)
class KeyRing:
    active_kid: str
    keys: dict[str, AESGCM]


def _b64decode(text: str) -> bytes:
    if not _B64URL_RE.fullmatch(text):
        raise ValueError("not base64url")
    text = text.rstrip("=")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@functools.lru_cache(maxsize=8)
def _parse_key_ring(raw: str) -> KeyRing:
    keys: dict[str, AESGCM] = {}
    for position, entry in enumerate(raw.split(","), start=1):
        kid, sep, encoded = entry.strip().partition(":")
        if not sep or not _KID_RE.fullmatch(kid):
            raise ImproperlyConfigured(
                f"BAEUM_ENCRYPTION_KEYS entry {position} must be 'kid:base64urlkey'."
            )
        if kid in keys:
            raise ImproperlyConfigured(f"BAEUM_ENCRYPTION_KEYS lists key id {kid!r} twice.")
        try:
            key = _b64decode(encoded.strip())
        except (ValueError, binascii.Error):
            key = b""
        if len(key) != 32:
            raise ImproperlyConfigured(
                f"BAEUM_ENCRYPTION_KEYS key {kid!r} must be 32 bytes in base64url."
            )
        keys[kid] = AESGCM(key)
    return KeyRing(active_kid=next(iter(keys)), keys=keys)


def _key_ring() -> KeyRing:
    raw = getattr(settings, "BAEUM_ENCRYPTION_KEYS", "")
    if not isinstance(raw, str) or not raw.strip():
        raise ImproperlyConfigured("BAEUM_ENCRYPTION_KEYS is empty.")
    return _parse_key_ring(raw)


@functools.lru_cache(maxsize=8)
def _parse_hmac_key(raw: str) -> bytes:
    try:
        key = _b64decode(raw.strip())
    except (ValueError, binascii.Error):
        raise ImproperlyConfigured("BAEUM_HMAC_KEY must be base64url.") from None
    if len(key) < 32:
        raise ImproperlyConfigured("BAEUM_HMAC_KEY must decode to at least 32 bytes.")
    return key


def _hmac_hex(message: str) -> str:
    raw = getattr(settings, "BAEUM_HMAC_KEY", "")
    if not isinstance(raw, str) or not raw.strip():
        raise ImproperlyConfigured("BAEUM_HMAC_KEY is empty.")
    return hmac.new(_parse_hmac_key(raw), message.encode("utf-8"), hashlib.sha256).hexdigest()


def _aad(purpose: str) -> bytes:
    if not purpose:
        raise ValueError("purpose must be a non-empty string")
    return purpose.encode("utf-8")


def _split(token: str) -> tuple[str, bytes]:
    if not isinstance(token, str):
        raise DecryptionError("Encrypted value is not a text token.")
    parts = token.split(":")
    if len(parts) != 3 or parts[0] != VERSION or not parts[1]:
        raise DecryptionError("Encrypted value is not a v1 token.")
    try:
        blob = _b64decode(parts[2])
    except (ValueError, binascii.Error):
        raise DecryptionError("Encrypted value is not valid base64url.") from None
    if len(blob) < _NONCE_BYTES + _TAG_BYTES:
        raise DecryptionError("Encrypted value is too short.")
    return parts[1], blob


def encrypt(plaintext: str, *, purpose: str) -> str:
    """Encrypt text under the active key, bound to its purpose."""
    ring = _key_ring()
    nonce = os.urandom(_NONCE_BYTES)
    sealed = ring.keys[ring.active_kid].encrypt(nonce, plaintext.encode("utf-8"), _aad(purpose))
    return f"{VERSION}:{ring.active_kid}:{_b64encode(nonce + sealed)}"


def decrypt(token: str, *, purpose: str) -> str:
    """Decrypt a token made by encrypt() for the same purpose, or raise DecryptionError."""
    kid, blob = _split(token)
    aesgcm = _key_ring().keys.get(kid)
    if aesgcm is None:
        raise DecryptionError("Encrypted value uses a key id that is not configured.")
    try:
        plain = aesgcm.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], _aad(purpose))
        return plain.decode("utf-8")
    except (InvalidTag, UnicodeDecodeError):
        raise DecryptionError(
            "Encrypted value failed authentication (tampered, wrong key or wrong purpose)."
        ) from None


def key_id_of(token: str) -> str:
    """Return the id of the key a token was encrypted with."""
    return _split(token)[0]


def active_key_id() -> str:
    """Return the id of the key that encrypts new values."""
    return _key_ring().active_kid


def needs_rotation(token: str) -> bool:
    """Tell whether a token was encrypted under a key other than the active one."""
    return key_id_of(token) != _key_ring().active_kid


def rrn_hmac(rrn: str) -> str:
    """Return the hex HMAC-SHA-256 of the 13-digit RRN, as registries compute it."""
    number = normalize_rrn(rrn)
    if len(number) != 13 or not number.isascii() or not number.isdigit():
        raise ValueError("rrn_hmac needs a 13-digit resident registration number")
    return _hmac_hex(number)


def account_fingerprint(bank_code: str, account_number: str) -> str:
    """Return the hex HMAC that identifies one bank account across applicants."""
    digits = account_number.replace("-", "").replace(" ", "")
    return _hmac_hex(f"account:{bank_code}:{digits}")


# Files: a stream of AES-GCM chunks, each bound to the purpose, its index and whether it is
# the last, so a truncated, reordered or spliced file fails to decrypt.
FILE_MAGIC = b"BAEUMF1\n"
FILE_CHUNK_BYTES = 1 << 20


def _chunk_aad(purpose: str, index: int, last: bool) -> bytes:
    return _aad(purpose) + b"|" + index.to_bytes(8, "big") + (b"|last" if last else b"|more")


class FileSealer:
    """Write a file in encrypt_file's format from plaintext handed over piece by piece
    (an upload as it arrives): each chunk is sealed as soon as more data follows it."""

    def __init__(self, target, *, purpose: str, chunk_bytes: int | None = None):
        ring = _key_ring()
        kid = ring.active_kid.encode("ascii")
        self._aesgcm, self._target, self._purpose = ring.keys[ring.active_kid], target, purpose
        self._size = chunk_bytes or FILE_CHUNK_BYTES
        self._buffer, self._index, self._digest = bytearray(), 0, hashlib.sha256()
        target.write(FILE_MAGIC + len(kid).to_bytes(1, "big") + kid)

    def write(self, data: bytes) -> None:
        self._digest.update(data)
        self._buffer += data
        # A chunk is sealed as "more" only once a byte after it is known: the last chunk
        # of the file, however full, is sealed as "last" by close().
        while len(self._buffer) > self._size:
            self._seal(bytes(self._buffer[: self._size]), last=False)
            del self._buffer[: self._size]

    def close(self) -> str:
        """Seal what is left as the last chunk; return the SHA-256 of the plaintext."""
        self._seal(bytes(self._buffer), last=True)
        self._buffer = bytearray()
        return self._digest.hexdigest()

    def _seal(self, chunk: bytes, *, last: bool) -> None:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aesgcm.encrypt(nonce, chunk, _chunk_aad(self._purpose, self._index, last))
        self._target.write(len(sealed).to_bytes(4, "big") + nonce + sealed)
        self._index += 1


def encrypt_file(source, target, *, purpose: str, chunk_bytes: int | None = None) -> str:
    """Encrypt the binary stream source into target under the active key, chunk by chunk;
    return the SHA-256 of the plaintext. Smaller chunks cost a reader streaming the file
    back less memory (each chunk is decrypted whole)."""
    size = chunk_bytes or FILE_CHUNK_BYTES
    sealer = FileSealer(target, purpose=purpose, chunk_bytes=size)
    for chunk in iter(lambda: source.read(size), b""):
        sealer.write(chunk)
    return sealer.close()


def is_encrypted_file(source) -> bool:
    """Tell whether a seekable stream holds a file made by encrypt_file; it is left where it
    was. PDF, PNG and JPEG files begin otherwise, so a plaintext upload is never mistaken."""
    start = source.tell()
    head = source.read(len(FILE_MAGIC))
    source.seek(start)
    return head == FILE_MAGIC


def file_key_id(source) -> str:
    """Return the id of the key a file made by encrypt_file was encrypted with."""
    if source.read(len(FILE_MAGIC)) != FILE_MAGIC:
        raise DecryptionError("Not an encrypted Baeum file.")
    length = source.read(1)
    kid = source.read(length[0]) if length else b""
    if not kid or len(kid) != length[0]:
        raise DecryptionError("Encrypted file is truncated.")
    return kid.decode("ascii", errors="replace")


def reencrypt_file(source, target, *, purpose: str) -> str:
    """Decrypt a file made by encrypt_file into target under the active key, chunk by chunk,
    without the plaintext touching the disk; return the SHA-256 of the plaintext.

    Raises DecryptionError, having written part of target, if source does not decrypt.
    """
    sealer = FileSealer(target, purpose=purpose)
    for chunk in decrypt_file(source, purpose=purpose):
        sealer.write(chunk)
    return sealer.close()


def decrypted_sha256(source, *, purpose: str) -> str:
    """Decrypt a whole file made by encrypt_file, authenticating every chunk, and return the
    SHA-256 of its plaintext; raise DecryptionError if any of it does not decrypt."""
    digest = hashlib.sha256()
    for chunk in decrypt_file(source, purpose=purpose):
        digest.update(chunk)
    return digest.hexdigest()


def _seek_chunk(source, offset: int) -> tuple[int, int]:
    """Move a seekable source, just past its key id, to the chunk holding plaintext byte
    `offset`; return that chunk's index and where the offset falls in it. Every chunk but
    the last holds as many bytes as the first."""
    start = source.tell()
    size = source.read(4)
    if len(size) != 4:
        raise DecryptionError("Encrypted file is truncated.")
    sealed = int.from_bytes(size, "big")
    plain = max(sealed - _TAG_BYTES, 1)
    index = offset // plain
    source.seek(start + index * (4 + _NONCE_BYTES + sealed))
    return index, offset - index * plain


def decrypt_file(source, *, purpose: str, offset: int = 0):
    """Yield the plaintext chunks of a file made by encrypt_file, or raise DecryptionError.

    With an offset (a seekable source), the chunks from the one holding that plaintext
    byte, the first one cut to begin there; the chunks before are not read.
    """
    kid = file_key_id(source)
    aesgcm = _key_ring().keys.get(kid)
    if aesgcm is None:
        raise DecryptionError("Encrypted file uses a key id that is not configured.")
    index, skip = _seek_chunk(source, offset) if offset else (0, 0)
    while True:
        size = source.read(4)
        if len(size) != 4:
            raise DecryptionError("Encrypted file is truncated.")
        nonce = source.read(_NONCE_BYTES)
        sealed = source.read(int.from_bytes(size, "big"))
        try:
            plain = aesgcm.decrypt(nonce, sealed, _chunk_aad(purpose, index, True))
            last = True
        except InvalidTag:
            try:
                plain = aesgcm.decrypt(nonce, sealed, _chunk_aad(purpose, index, False))
            except InvalidTag:
                raise DecryptionError("Encrypted file failed authentication.") from None
            last = False
        if last and source.read(1):
            raise DecryptionError("Encrypted file has data after its last chunk.")
        del sealed  # not kept alive beside the next chunk while the caller holds this one
        if skip:
            plain, skip = plain[skip:], 0
        yield plain
        del plain
        if last:
            return
        index += 1

"""Files encrypted at rest (bank files): a round trip, and every kind of tampering refused."""

import base64
import hashlib
import io

import pytest

from core import crypto
from core.crypto import DecryptionError, decrypt_file, encrypt_file

PLAIN = ("reference,account_number\n" + "BAEUM-P0000000001,110123456789\n" * 50).encode()


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(crypto, "FILE_CHUNK_BYTES", 64)


def sealed(data: bytes = PLAIN, purpose: str = "bank_file") -> bytes:
    out = io.BytesIO()
    encrypt_file(io.BytesIO(data), out, purpose=purpose)
    return out.getvalue()


def opened(blob: bytes, purpose: str = "bank_file") -> bytes:
    return b"".join(decrypt_file(io.BytesIO(blob), purpose=purpose))


def test_round_trip_over_many_chunks_and_nothing_readable_at_rest():
    blob = sealed()
    assert opened(blob) == PLAIN
    assert b"110123456789" not in blob
    assert opened(sealed(b"")) == b""


def _chunks(blob: bytes) -> tuple[bytes, list[bytes]]:
    head_len = len(crypto.FILE_MAGIC) + 1 + blob[len(crypto.FILE_MAGIC)]
    head, rest, chunks = blob[:head_len], blob[head_len:], []
    while rest:
        size = int.from_bytes(rest[:4], "big")
        chunks.append(rest[: 4 + 12 + size])
        rest = rest[4 + 12 + size :]
    return head, chunks


def test_a_truncated_file_is_refused():
    head, chunks = _chunks(sealed())
    with pytest.raises(DecryptionError):
        opened(head + b"".join(chunks[:-1]))


def test_reordered_chunks_are_refused():
    head, chunks = _chunks(sealed())
    chunks[0], chunks[1] = chunks[1], chunks[0]
    with pytest.raises(DecryptionError):
        opened(head + b"".join(chunks))


def test_data_after_the_last_chunk_is_refused():
    head, chunks = _chunks(sealed())
    with pytest.raises(DecryptionError):
        opened(head + b"".join(chunks) + chunks[0])


def test_a_flipped_byte_or_another_purpose_is_refused():
    blob = bytearray(sealed())
    blob[-5] ^= 1
    with pytest.raises(DecryptionError):
        opened(bytes(blob))
    with pytest.raises(DecryptionError):
        opened(sealed(), purpose="documents")
    with pytest.raises(DecryptionError):
        opened(b"not ours")


@pytest.mark.parametrize("cut", [len(crypto.FILE_MAGIC), len(crypto.FILE_MAGIC) + 1])
def test_a_file_cut_inside_its_header_is_refused(cut):
    with pytest.raises(DecryptionError):
        opened(sealed()[:cut])


def test_reencrypting_moves_a_file_to_the_active_key_and_keeps_its_bytes(settings):
    old = sealed()
    settings.BAEUM_ENCRYPTION_KEYS = (
        "k2:"
        + base64.urlsafe_b64encode(b"\x09" * 32).decode()
        + ","
        + settings.BAEUM_ENCRYPTION_KEYS
    )
    assert crypto.file_key_id(io.BytesIO(old)) != "k2"

    out = io.BytesIO()
    digest = crypto.reencrypt_file(io.BytesIO(old), out, purpose="bank_file")

    assert crypto.file_key_id(io.BytesIO(out.getvalue())) == "k2"
    assert opened(out.getvalue()) == PLAIN
    assert digest == hashlib.sha256(PLAIN).hexdigest()
    # The old key may now go: the new file does not need it.
    settings.BAEUM_ENCRYPTION_KEYS = settings.BAEUM_ENCRYPTION_KEYS.split(",")[0]
    assert opened(out.getvalue()) == PLAIN
    with pytest.raises(DecryptionError):
        opened(old)


def test_reencrypting_a_tampered_file_raises():
    blob = bytearray(sealed())
    blob[-5] ^= 1
    with pytest.raises(DecryptionError):
        crypto.reencrypt_file(io.BytesIO(bytes(blob)), io.BytesIO(), purpose="bank_file")

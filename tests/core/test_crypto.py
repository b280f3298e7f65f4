import base64
import hashlib
import hmac

import pytest
from django.core.exceptions import FieldError, ImproperlyConfigured, ValidationError
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from core.crypto import (
    DecryptionError,
    account_fingerprint,
    decrypt,
    encrypt,
    key_id_of,
    needs_rotation,
    rrn_hmac,
)
from core.fields import EncryptedTextField

KEY_A = bytes(range(32))
KEY_B = bytes(range(32, 64))
HMAC_KEY = b"h" * 32


def b64(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


@pytest.fixture(autouse=True)
def keys(settings):
    settings.BAEUM_ENCRYPTION_KEYS = f"a:{b64(KEY_A)}"
    settings.BAEUM_HMAC_KEY = b64(HMAC_KEY)
    return settings


def test_round_trip():
    token = encrypt("8503151234567", purpose="rrn")
    assert token.startswith("v1:a:")
    assert "8503151234567" not in token
    assert decrypt(token, purpose="rrn") == "8503151234567"


def test_same_plaintext_encrypts_differently_each_time():
    assert encrypt("x", purpose="rrn") != encrypt("x", purpose="rrn")


def test_round_trip_of_empty_and_unicode_text():
    assert decrypt(encrypt("", purpose="p"), purpose="p") == ""
    assert decrypt(encrypt("김민준 🙂", purpose="p"), purpose="p") == "김민준 🙂"


def test_tampered_ciphertext_is_refused():
    token = encrypt("8503151234567", purpose="rrn")
    prefix, blob = token.rsplit(":", 1)
    raw = bytearray(base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4)))
    raw[-1] ^= 1
    tampered = f"{prefix}:{base64.urlsafe_b64encode(bytes(raw)).decode().rstrip('=')}"
    with pytest.raises(DecryptionError) as exc_info:
        decrypt(tampered, purpose="rrn")
    assert "8503151234567" not in str(exc_info.value)
    assert b64(KEY_A) not in str(exc_info.value)


def test_token_copied_to_another_purpose_is_refused():
    token = encrypt("123456789012", purpose="account_number")
    with pytest.raises(DecryptionError):
        decrypt(token, purpose="rrn")


@pytest.mark.parametrize(
    "token",
    [
        "",
        "8503151234567",
        "v1:a",
        "v2:a:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "v1:a:not base64!",
        "v1:a:AAAA",
        "v1::AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        None,
    ],
)
def test_malformed_token_is_refused(token):
    with pytest.raises(DecryptionError):
        decrypt(token, purpose="rrn")


def test_unknown_key_id_is_refused(keys):
    keys.BAEUM_ENCRYPTION_KEYS = f"b:{b64(KEY_B)}"
    token = encrypt("8503151234567", purpose="rrn")
    keys.BAEUM_ENCRYPTION_KEYS = f"a:{b64(KEY_A)}"
    with pytest.raises(DecryptionError, match="key id"):
        decrypt(token, purpose="rrn")


def test_rotation_keeps_old_tokens_readable(keys):
    old = encrypt("8503151234567", purpose="rrn")
    assert not needs_rotation(old)

    keys.BAEUM_ENCRYPTION_KEYS = f"b:{b64(KEY_B)},a:{b64(KEY_A)}"
    new = encrypt("8503151234567", purpose="rrn")

    assert key_id_of(old) == "a"
    assert key_id_of(new) == "b"
    assert decrypt(old, purpose="rrn") == "8503151234567"
    assert decrypt(new, purpose="rrn") == "8503151234567"
    assert needs_rotation(old)
    assert not needs_rotation(new)


def test_same_key_id_with_another_key_fails_authentication(keys):
    token = encrypt("8503151234567", purpose="rrn")
    keys.BAEUM_ENCRYPTION_KEYS = f"a:{b64(KEY_B)}"
    with pytest.raises(DecryptionError):
        decrypt(token, purpose="rrn")


def test_key_without_padding_is_accepted(keys):
    keys.BAEUM_ENCRYPTION_KEYS = f"a:{b64(KEY_A).rstrip('=')}"
    assert decrypt(encrypt("x", purpose="p"), purpose="p") == "x"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        b64(KEY_A),  # no key id
        f"a:{b64(b'short')}",
        f"a:{b64(KEY_A + b'x')}",
        "a:not*base64*at*all*not*base64*at*all*not*base64",
        f"a:{b64(KEY_A)},a:{b64(KEY_B)}",
        f"a:{b64(KEY_A)},",
        f"bad kid:{b64(KEY_A)}",
    ],
)
def test_malformed_key_setting_is_improperly_configured(keys, raw):
    keys.BAEUM_ENCRYPTION_KEYS = raw
    with pytest.raises(ImproperlyConfigured) as exc_info:
        encrypt("x", purpose="p")
    assert b64(KEY_A) not in str(exc_info.value)


@pytest.mark.parametrize("raw", ["", "@@@@", b64(b"too short")])
def test_malformed_hmac_key_is_improperly_configured(keys, raw):
    keys.BAEUM_HMAC_KEY = raw
    with pytest.raises(ImproperlyConfigured):
        rrn_hmac("8503151234567")


def test_rrn_hmac_is_plain_hmac_of_the_compact_rrn():
    expected = hmac.new(HMAC_KEY, b"8503151234567", hashlib.sha256).hexdigest()
    assert rrn_hmac("8503151234567") == expected
    assert rrn_hmac("850315-1234567") == expected
    assert expected == expected.lower() and len(expected) == 64


def test_rrn_hmac_differs_per_key(keys):
    first = rrn_hmac("8503151234567")
    assert rrn_hmac("8503151234567") == first
    keys.BAEUM_HMAC_KEY = b64(b"k" * 32)
    assert rrn_hmac("8503151234567") != first


def test_rrn_hmac_refuses_a_value_that_is_not_13_digits():
    with pytest.raises(ValueError):
        rrn_hmac("85031512345")


def test_account_fingerprint_ignores_hyphens_and_depends_on_bank():
    expected = hmac.new(HMAC_KEY, b"account:004:123456789012", hashlib.sha256).hexdigest()
    assert account_fingerprint("004", "123-456-789012") == expected
    assert account_fingerprint("088", "123456789012") != expected


no_fixture_health_check = hypothesis_settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)


@no_fixture_health_check
@given(plaintext=st.text(), purpose=st.sampled_from(["rrn", "account_number"]))
def test_property_round_trip(plaintext, purpose):
    assert decrypt(encrypt(plaintext, purpose=purpose), purpose=purpose) == plaintext


@no_fixture_health_check
@given(plaintext=st.text(alphabet="0123456789-", min_size=4, max_size=40))
def test_property_token_never_contains_the_plaintext(plaintext):
    assert plaintext not in encrypt(plaintext, purpose="rrn")


def test_encrypted_field_stores_tokens_and_returns_plaintext():
    field = EncryptedTextField(purpose="rrn")
    stored = field.get_prep_value("8503151234567")
    assert stored.startswith("v1:a:")
    assert field.from_db_value(stored, None, None) == "8503151234567"
    assert field.to_python(stored) == "8503151234567"
    assert field.to_python("8503151234567") == "8503151234567"


@pytest.mark.parametrize("value", [None, ""])
def test_encrypted_field_keeps_none_and_empty(value):
    field = EncryptedTextField(purpose="rrn")
    assert field.get_prep_value(value) == value
    assert field.from_db_value(value, None, None) == value
    assert field.to_python(value) == value


def test_encrypted_field_refuses_a_token_of_another_purpose():
    token = EncryptedTextField(purpose="account_number").get_prep_value("123456789012")
    field = EncryptedTextField(purpose="rrn")
    with pytest.raises(DecryptionError):
        field.from_db_value(token, None, None)
    with pytest.raises(ValidationError):
        field.to_python(token)


def test_encrypted_field_keeps_purpose_in_deconstruct():
    _, path, _, kwargs = EncryptedTextField(purpose="rrn", blank=True).deconstruct()
    assert path == "core.fields.EncryptedTextField"
    assert kwargs == {"purpose": "rrn", "blank": True}


def test_encrypted_field_allows_only_isnull_lookups():
    field = EncryptedTextField(purpose="rrn")
    assert field.get_lookup("isnull") is not None
    for name in ("exact", "in", "startswith", "icontains"):
        with pytest.raises(FieldError, match="isnull"):
            field.get_lookup(name)
    with pytest.raises(FieldError):
        field.get_transform("lower")

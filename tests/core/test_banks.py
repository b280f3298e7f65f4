import pytest
from django.core.exceptions import ValidationError

from core.banks import (
    BANK_CHOICES,
    BANKS,
    bank_name,
    mask_account_number,
    normalize_account_number,
)


def test_table_has_the_25_institutions_with_3_digit_codes():
    assert len(BANKS) == 25
    assert all(len(code) == 3 and code.isdigit() for code in BANKS)
    assert BANK_CHOICES[0] == ("002", "KDB산업은행")


@pytest.mark.parametrize(
    ("code", "name"),
    [("004", "KB국민은행"), ("011", "NH농협은행"), ("071", "우체국"), ("092", "토스뱅크")],
)
def test_bank_name(code, name):
    assert bank_name(code) == name


def test_unknown_bank_code_raises():
    with pytest.raises(ValueError, match="999"):
        bank_name("999")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1234567890", "1234567890"),
        ("1234567890123456", "1234567890123456"),
        ("123-456-789012", "123456789012"),
        ("123 456 789012", "123456789012"),
        ("110-123-456789", "110123456789"),
    ],
)
def test_account_number_is_normalized_to_digits(value, expected):
    assert normalize_account_number(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "123456789",  # 9 digits
        "12345678901234567",  # 17 digits
        "12345678901a",
        "123.456.789012",
        "１２３４５６７８９０１２",
        "",
        "----------",
    ],
)
def test_bad_account_number_is_refused(value):
    with pytest.raises(ValidationError) as exc_info:
        normalize_account_number(value)
    assert exc_info.value.code == "invalid_account_number"
    assert "10 to 16 digits" in exc_info.value.messages[0]


def test_mask_account_number_keeps_last_four():
    assert mask_account_number("123456789012") == "****9012"
    assert mask_account_number("123-456-789012") == "****9012"

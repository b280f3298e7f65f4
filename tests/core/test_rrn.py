import datetime

import pytest
from django.core.exceptions import ValidationError
from stdnum.kr import rrn as stdnum_rrn

from core.rrn import mask_rrn, normalize_rrn, rrn_birth_date, validate_rrn

# Born 2021-03-15; issued after October 2020, so its last digit is random.
POST_2020_RRN = "2103154123450"


def error_code(value: str) -> str:
    with pytest.raises(ValidationError) as exc_info:
        validate_rrn(value)
    assert not value.strip() or value.strip() not in str(exc_info.value.messages)
    return exc_info.value.code


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("850315-1234567", "8503151234567"),
        ("8503151234567", "8503151234567"),
        (" 850315-2234567 ", "8503152234567"),
        ("050101-3000000", "0501013000000"),
        ("991231-6123456", "9912316123456"),
        ("000229-4123456", "0002294123456"),
    ],
)
def test_valid_rrn_is_returned_compact(value, expected):
    assert validate_rrn(value) == expected


def test_post_2020_rrn_with_wrong_check_digit_is_accepted():
    assert not stdnum_rrn.is_valid(POST_2020_RRN)
    assert validate_rrn(POST_2020_RRN) == POST_2020_RRN


@pytest.mark.parametrize(
    "value",
    ["85031-51234567", "850315-123456", "850315-12345678", "", "8503151234", "850315_1234567"],
)
def test_wrong_length_or_punctuation_is_invalid_format(value):
    assert error_code(value) == "invalid_format"


@pytest.mark.parametrize(
    "value", ["85O315-1234567", "850315-1abcdef", "850315–1234567", "８５０３１５１２３４５６７"]
)
def test_letters_and_non_ascii_are_invalid_format(value):
    assert error_code(value) == "invalid_format"


def test_non_string_is_invalid_format():
    with pytest.raises(ValidationError) as exc_info:
        validate_rrn(8503151234567)
    assert exc_info.value.code == "invalid_format"


@pytest.mark.parametrize("digit", ["0", "9"])
def test_gender_digit_outside_1_to_8_is_refused(digit):
    assert error_code(f"850315-{digit}234567") == "invalid_gender_digit"


@pytest.mark.parametrize(
    "value",
    [
        "851315-1234567",  # month 13
        "850332-1234567",  # day 32
        "850230-1234567",  # Feb 30
        "850001-1234567",  # month 0
        "010229-3234567",  # 2001 is not a leap year
    ],
)
def test_impossible_birth_date_is_refused(value):
    assert error_code(value) == "invalid_birth_date"


def test_future_birth_date_is_refused():
    assert error_code("991231-3234567") == "invalid_birth_date"  # 2099-12-31


def test_birth_date_uses_the_century_of_the_gender_digit():
    assert rrn_birth_date("850315-1234567") == datetime.date(1985, 3, 15)
    assert rrn_birth_date("850315-6234567") == datetime.date(1985, 3, 15)
    assert rrn_birth_date("0503157234567") == datetime.date(2005, 3, 15)


def test_birth_date_of_invalid_rrn_raises():
    with pytest.raises(ValidationError):
        rrn_birth_date("851315-1234567")


def test_normalize_strips_hyphen_and_spaces_without_validating():
    assert normalize_rrn("850315 - 1234567") == "8503151234567"
    assert normalize_rrn("851399-9") == "8513999"


def test_mask_keeps_birth_date_and_gender_digit():
    assert mask_rrn("8503151234567") == "850315-1******"
    assert mask_rrn("850315-1234567") == "850315-1******"


def test_mask_of_malformed_value_hides_everything():
    assert mask_rrn("12345") == "******-*******"

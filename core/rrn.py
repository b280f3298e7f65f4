"""Resident registration numbers (주민등록번호): validation, birth date and masking."""

import datetime
import re

from django.core.exceptions import ValidationError
from django.utils import timezone
from stdnum import exceptions as stdnum_exceptions
from stdnum.kr import rrn as stdnum_rrn

_FORMAT_RE = re.compile(r"[0-9]{6}-?[0-9]{7}")


def normalize_rrn(value: str) -> str:
    """Return the RRN without hyphens or spaces; nothing is validated."""
    return stdnum_rrn.compact(value).replace(" ", "")


def _parse(value: str) -> tuple[str, datetime.date]:
    if not isinstance(value, str) or not _FORMAT_RE.fullmatch(value.strip()):
        raise ValidationError(
            "Enter the resident registration number as 13 digits, e.g. 900101-1234567.",
            code="invalid_format",
        )
    number = stdnum_rrn.compact(value)
    # 9 and 0 mark people born in the 1800s: nobody alive applies with one.
    if number[6] not in "12345678":
        raise ValidationError(
            "The 7th digit of the resident registration number must be 1 to 8.",
            code="invalid_gender_digit",
        )
    try:
        born = stdnum_rrn.get_birth_date(number)
    except stdnum_exceptions.ValidationError:
        raise ValidationError(
            "The resident registration number does not start with a valid birth date.",
            code="invalid_birth_date",
        ) from None
    return number, born


def validate_rrn(value: str) -> str:
    """Return the 13-digit RRN or raise ValidationError; the check digit is not enforced.

    Numbers issued since October 2020 end in random digits, so the old checksum no
    longer holds and stdnum's validate() would refuse real people.
    """
    number, born = _parse(value)
    if born > timezone.localdate():
        raise ValidationError(
            "The birth date in the resident registration number is in the future.",
            code="invalid_birth_date",
        )
    return number


def rrn_birth_date(rrn: str) -> datetime.date:
    """Return the birth date encoded in the RRN."""
    return _parse(rrn)[1]


def mask_rrn(rrn: str) -> str:
    """Return the RRN with all but the birth date and gender digit hidden."""
    number = normalize_rrn(rrn)
    if len(number) != 13:
        return "******-*******"
    return f"{number[:6]}-{number[6]}******"

"""The registry CSV format: headers, per-kind row parsers and a line reader that streams.

Values are never echoed in error messages: a registry line may hold a raw RRN.
"""

import calendar
import csv
import functools
import re
from datetime import date

from django.core.exceptions import ValidationError

from core.crypto import rrn_hmac
from core.districts import SEOUL_DISTRICTS
from core.rrn import validate_rrn
from eligibility.models import RegistryKind

MAX_LINE_BYTES = 64 * 1024
PERSON_COLUMNS = ("rrn", "rrn_hmac")
COLUMNS = {
    kind: tuple(columns.split())
    for kind, columns in (
        (RegistryKind.SOCIAL_SECURITY, "status district valid_from valid_to"),
        (
            RegistryKind.NAEILBAEUM,
            "card_valid_from card_valid_to course_id training_from training_to",
        ),
        (RegistryKind.YOUTH_ALLOWANCE, "paid_from paid_to"),
        (RegistryKind.NATIONAL_VOUCHER, "year"),
        (RegistryKind.TRAINING_COURSES, "course_id name institution starts_on ends_on vocational"),
    )
}
LINE_PROBLEMS = {
    "invalid_encoding": "The line is not valid UTF-8.",
    "line_too_long": f"The line is longer than {MAX_LINE_BYTES} bytes.",
}
_HMAC_RE = re.compile(r"[0-9a-f]{64}")
_YEAR_RE = re.compile(r"[0-9]{4}")
_BOOLEANS = {"true": True, "1": True, "y": True, "false": False, "0": False, "n": False}
_SS_STATUSES = ("basic_livelihood", "near_poor")


class RowError(Exception):
    """One rejected value; the message never repeats the value itself."""

    def __init__(self, field: str | None, code: str, message: str):
        super().__init__(message)
        self.field, self.code, self.message = field, code, message


def is_person_kind(kind: str) -> bool:
    """Tell whether the registry's rows are people matched by RRN hash."""
    return kind != RegistryKind.TRAINING_COURSES


# Values.


@functools.lru_cache(maxsize=65_536)
def _iso_date(text: str) -> date:
    # date.fromisoformat also takes 20240101 and 2024-W01-1; the files promise YYYY-MM-DD.
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        raise ValueError(text)
    return date.fromisoformat(text)


@functools.lru_cache(maxsize=4_096)
def _month(text: str) -> tuple[date, date]:
    if len(text) != 7 or text[4] != "-" or not (text[:4] + text[5:]).isdigit():
        raise ValueError(text)
    year, month = int(text[:4]), int(text[5:])
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def _date(value: str, field: str, *, required: bool = True) -> date | None:
    if not value:
        if required:
            raise RowError(field, "required", f"{field} is required.")
        return None
    try:
        return _iso_date(value)
    except ValueError:
        raise RowError(field, "invalid_date", f"{field} must be a date as YYYY-MM-DD.") from None


def _ordered(start, end, field: str) -> None:
    if start and end and end < start:
        raise RowError(field, "invalid_range", f"{field} is before the start of the period.")


def _text(value: str, field: str, max_length: int, *, required: bool = True) -> str:
    if required and not value:
        raise RowError(field, "required", f"{field} is required.")
    if len(value) > max_length:
        raise RowError(field, "too_long", f"{field} is longer than {max_length} characters.")
    return value


def person_hash(column: str, value: str) -> str:
    if column == "rrn_hmac":
        if not _HMAC_RE.fullmatch(value):
            raise RowError(column, "invalid_rrn_hmac", "rrn_hmac must be 64 lowercase hex digits.")
        return value
    try:
        return rrn_hmac(validate_rrn(value))
    except ValidationError as exc:
        raise RowError(column, exc.code or "invalid_rrn", exc.messages[0]) from None


def _social_security(v: list[str]) -> tuple:
    if v[0] not in _SS_STATUSES:
        raise RowError("status", "invalid_choice", "status must be basic_livelihood or near_poor.")
    if v[1] not in SEOUL_DISTRICTS:
        raise RowError("district", "invalid_district", "district must be a Seoul 자치구 code.")
    valid_from = _date(v[2], "valid_from")
    valid_to = _date(v[3], "valid_to", required=False)
    _ordered(valid_from, valid_to, "valid_to")
    return v[0], v[1], valid_from, valid_to


def _naeilbaeum(v: list[str]) -> tuple:
    card_from, card_to = _date(v[0], "card_valid_from"), _date(v[1], "card_valid_to")
    _ordered(card_from, card_to, "card_valid_to")
    course_id = _text(v[2], "course_id", 40, required=False)
    training_from = _date(v[3], "training_from", required=False)
    training_to = _date(v[4], "training_to", required=False)
    _ordered(training_from, training_to, "training_to")
    return card_from, card_to, course_id, training_from, training_to


def _youth_allowance(v: list[str]) -> tuple:
    months = []
    for field, value in (("paid_from", v[0]), ("paid_to", v[1])):
        try:
            months.append(_month(value))
        except ValueError:
            raise RowError(field, "invalid_month", f"{field} must be a month as YYYY-MM.") from None
    _ordered(months[0][0], months[1][0], "paid_to")
    return months[0][0], months[1][1]


def _national_voucher(v: list[str]) -> tuple:
    if not _YEAR_RE.fullmatch(v[0]) or not 1900 <= int(v[0]) <= 2100:
        raise RowError("year", "invalid_year", "year must be a year such as 2025.")
    return (int(v[0]),)


def _training_course(v: list[str]) -> tuple:
    starts_on, ends_on = _date(v[3], "starts_on"), _date(v[4], "ends_on")
    _ordered(starts_on, ends_on, "ends_on")
    vocational = _BOOLEANS.get(v[5].lower())
    if vocational is None:
        raise RowError("vocational", "invalid_boolean", "vocational must be true or false.")
    course_id, name = _text(v[0], "course_id", 40), _text(v[1], "name", 200)
    return course_id, name, _text(v[2], "institution", 200), starts_on, ends_on, vocational


PARSERS = {
    RegistryKind.SOCIAL_SECURITY: _social_security,
    RegistryKind.NAEILBAEUM: _naeilbaeum,
    RegistryKind.YOUTH_ALLOWANCE: _youth_allowance,
    RegistryKind.NATIONAL_VOUCHER: _national_voucher,
    RegistryKind.TRAINING_COURSES: _training_course,
}


# Reading.


def read_lines(stream, digest):
    """Yield (line number, text, problem code) without holding more than one line."""
    number = 0
    while raw := stream.readline(MAX_LINE_BYTES):
        number += 1
        digest.update(raw)
        if len(raw) == MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):
                raw = stream.readline(MAX_LINE_BYTES)
                digest.update(raw)
            yield number, "", "line_too_long"
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            yield number, "", "invalid_encoding"
            continue
        yield number, text.rstrip("\r\n"), None


def split_line(text: str) -> list[str]:
    if '"' not in text:
        return [value.strip() for value in text.split(",")]
    try:
        return [value.strip() for value in next(csv.reader((text,)))]
    except csv.Error:
        raise RowError(None, "invalid_row", "The line is not valid CSV.") from None


def _expected_header(kind: str) -> str:
    person = "rrn|rrn_hmac," if is_person_kind(kind) else ""
    return person + ",".join(COLUMNS[kind])


def read_header(kind: str, first: tuple[int, str, str | None] | None) -> str:
    """Return the person column of a good header ('' for courses), or raise RowError."""
    if first is None:
        raise RowError(None, "empty_file", "The file is empty.")
    _, text, problem = first
    if problem:
        raise RowError(None, problem, LINE_PROBLEMS[problem])
    header = split_line(text.removeprefix("\ufeff"))
    person = header.pop(0) if is_person_kind(kind) and header else ""
    if tuple(header) != COLUMNS[kind] or (is_person_kind(kind) and person not in PERSON_COLUMNS):
        raise RowError(
            None, "invalid_header", f"The header must be exactly: {_expected_header(kind)}"
        )
    return person

"""The registry CSV format: headers, per-kind row parsers and a line reader that streams.

Values are never echoed in error messages: a registry line may hold a raw RRN.
"""

import calendar
import csv
import functools
import re
from datetime import date
from itertools import starmap
from operator import itemgetter

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


def _canonical(value) -> str | None:
    # The value as PostgreSQL reads and writes it, which Django's fields also read.
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def parse_line(kind: str, person: str, text: str) -> tuple[str | None, ...]:
    """Check one data line value by value; return its canonical values or raise RowError.

    Canonical values are the text PostgreSQL is given for each column (None for NULL):
    the person's HMAC first (for person registries), then COLUMNS[kind] in order.
    """
    if "\x00" in text:
        raise RowError(None, "invalid_character", "The line contains a NUL byte.")
    values = split_line(text)
    width = len(COLUMNS[kind]) + (1 if person else 0)
    if len(values) != width:
        raise RowError(
            None, "wrong_column_count", f"Expected {width} columns, found {len(values)}."
        )
    if person:
        row = (person_hash(person, values[0]), *PARSERS[kind](values[1:]))
    else:
        row = PARSERS[kind](values)
    return tuple(_canonical(value) for value in row)


# The fast path. Nearly every line of a real file is well formed, and one regular
# expression per registry recognises such a line, capturing its values already in
# canonical form; the dates and periods left to check repeat from line to line, so a
# block of lines is checked at once, each distinct period once. A line it does not
# recognise goes to parse_line, which alone words the errors. So the fast path may only
# accept lines that parse_line accepts, with the same values
# (tests/eligibility/test_import_fastpath.py): it takes no quotes, no space around
# values, only ASCII digits, and no carriage return.

_FAST_DATE = "([0-9]{4}-[0-9]{2}-[0-9]{2})"
_FAST_PERSON = {"rrn_hmac": "([0-9a-f]{64})", "rrn": "([0-9]{6}-?[0-9]{7})"}


def _fast_text(max_length: int, *, required: bool) -> str:
    # Up to max_length characters, none a NUL or line break, none of them whitespace at
    # either end (\s is exactly what str.strip() removes).
    edge, inner = r'[^\s,"\x00]', r'[^,"\r\n\x00]'
    text = f"{edge}(?:{inner}{{0,{max_length - 2}}}{edge})?"
    return f"({text})" if required else f"((?:{text})?)"


@functools.lru_cache(maxsize=65_536)
def _is_date(text: str) -> bool:
    try:
        _iso_date(text)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=4_096)
def _month_bounds(text: str) -> tuple[str, str] | None:
    try:
        first, last = _month(text)
    except ValueError:
        return None
    return first.isoformat(), last.isoformat()


# What the regular expression leaves to check, on the captured text (None for an empty
# optional date). ISO dates and months compare in order as text.


def _ss_period(valid_from: str, valid_to: str | None) -> bool:
    return _is_date(valid_from) and (
        valid_to is None or (valid_to >= valid_from and _is_date(valid_to))
    )


def _nb_periods(card_from: str, card_to: str, training_from, training_to) -> bool:
    return (
        card_to >= card_from
        and _is_date(card_from)
        and _is_date(card_to)
        and (training_from is None or _is_date(training_from))
        and (training_to is None or _is_date(training_to))
        and not (training_from and training_to and training_to < training_from)
    )


def _ya_period(paid_from: str, paid_to: str) -> bool:
    return paid_to >= paid_from and bool(_month_bounds(paid_from) and _month_bounds(paid_to))


def _tc_period(starts_on: str, ends_on: str, vocational: str) -> bool:
    return (
        vocational.lower() in _BOOLEANS
        and ends_on >= starts_on
        and _is_date(starts_on)
        and _is_date(ends_on)
    )


# From the captured values to canonical ones, where they differ.


def _ya_values(values: tuple) -> tuple:
    person, paid_from, paid_to = values
    return person, _month_bounds(paid_from)[0], _month_bounds(paid_to)[1]


def _tc_values(values: tuple) -> tuple:
    return (*values[:5], "t" if _BOOLEANS[values[5].lower()] else "f")


# kind: (the fields' expressions, which captured fields the check takes, the check, the
# conversion to canonical values or None).
_FAST = {
    RegistryKind.SOCIAL_SECURITY: (
        (
            "(" + "|".join(_SS_STATUSES) + ")",
            "(" + "|".join(sorted(SEOUL_DISTRICTS)) + ")",
            _FAST_DATE,
            _FAST_DATE + "?",
        ),
        (2, 3),
        _ss_period,
        None,
    ),
    RegistryKind.NAEILBAEUM: (
        (
            _FAST_DATE,
            _FAST_DATE,
            _fast_text(40, required=False),
            _FAST_DATE + "?",
            _FAST_DATE + "?",
        ),
        (0, 1, 3, 4),
        _nb_periods,
        None,
    ),
    RegistryKind.YOUTH_ALLOWANCE: (
        ("([0-9]{4}-[0-9]{2})", "([0-9]{4}-[0-9]{2})"),
        (0, 1),
        _ya_period,
        _ya_values,
    ),
    RegistryKind.NATIONAL_VOUCHER: (("(19[0-9]{2}|20[0-9]{2}|2100)",), (), None, None),
    RegistryKind.TRAINING_COURSES: (
        (
            _fast_text(40, required=True),
            _fast_text(200, required=True),
            _fast_text(200, required=True),
            _FAST_DATE,
            _FAST_DATE,
            "([A-Za-z01]{1,5})",
        ),
        (3, 4, 5),
        _tc_period,
        _tc_values,
    ),
}


class FastLines:
    """Recognise well-formed lines of one registry, many at a time."""

    def __init__(self, kind: str, person: str):
        fields, checked, self._check, self._convert = _FAST[kind]
        offset = 1 if person else 0  # the captured person comes first
        self._match = re.compile(",".join(((_FAST_PERSON[person],) if person else ()) + fields))
        self._checked = itemgetter(*(offset + i for i in checked)) if checked else None
        self._person = person
        # Mostly a line itself is the CSV of its values, as COPY (FORMAT csv) reads them:
        # its fields are the values, an empty one standing for NULL (or '' for text), and
        # PostgreSQL reads vocational's true, y, 1, false, n or 0 in any case as _BOOLEANS
        # does. Not with months (the values are dates) nor a raw RRN (the value is its HMAC).
        self.verbatim = person != "rrn" and kind != RegistryKind.YOUTH_ALLOWANCE

    def values(self, lines: list[str]) -> list[tuple] | None:
        """Return the canonical values of every line, or None if any needs parse_line."""
        found = list(map(self._match.fullmatch, lines))
        if None in found:
            return None
        rows = list(map(re.Match.groups, found))
        if self._checked and not all(starmap(self._check, set(map(self._checked, rows)))):
            return None
        if self._convert:
            rows = list(map(self._convert, rows))
        if self._person == "rrn":
            try:
                rows = [(person_hash("rrn", row[0]), *row[1:]) for row in rows]
            except RowError:
                return None  # parse_line words the error
        return rows

    def csv(self, lines: list[str], rows: list[tuple]) -> list[str]:
        """Return the CSV of the values of lines that values() accepted."""
        if self.verbatim:
            return lines
        # No value here holds a comma, quote or line break.
        return [",".join(["" if value is None else value for value in row]) for row in rows]


# Reading.

BLOCK_BYTES = 16 * 1024


def _split_lines(start: int, raw: bytes) -> tuple[list[str], dict[int, str]]:
    """Return the text of the lines in raw (no last LF) and the problems by line number."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:  # some line is not UTF-8: decode one by one to find which
        lines, problems = [], {}
        for number, line in enumerate(raw.split(b"\n"), start):
            try:
                lines.append(line.decode("utf-8").rstrip("\r"))
            except UnicodeDecodeError:
                lines.append("")
                problems[number] = "invalid_encoding"
            if len(line) >= MAX_LINE_BYTES:
                lines[-1], problems[number] = "", "line_too_long"
        return lines, problems
    lines, problems = text.split("\n"), {}
    # A line of fewer characters than this cannot reach MAX_LINE_BYTES in UTF-8.
    short = MAX_LINE_BYTES if text.isascii() else MAX_LINE_BYTES // 4
    if max(map(len, lines)) >= short:
        for i, line in enumerate(lines):
            if len(line) >= short and len(line.encode()) >= MAX_LINE_BYTES:
                lines[i], problems[start + i] = "", "line_too_long"
    if "\r" in text:
        lines = [line.rstrip("\r") for line in lines]
    return lines, problems


def read_blocks(stream, *, first_line: int = 1):
    """Yield the stream's lines block by block: (first line number, texts, problems).

    Lines end at LF, whatever quotes they hold (a quoted line break makes two lines,
    neither of them valid CSV), and are numbered from first_line; a text has its CR LF or
    LF removed, and is "" for a line with a problem, which problems gives by line number.
    A line of MAX_LINE_BYTES or more (not counting the LF) is too long, and skipped
    without being held.
    """
    number = first_line
    head = b""  # the start of a line that goes on in the next block
    skipping = False  # inside a line already reported as too long
    while block := stream.read(BLOCK_BYTES):
        if skipping:
            newline = block.find(b"\n")
            if newline < 0:
                continue
            block, skipping = block[newline + 1 :], False
        data = head + block if head else block
        end = data.rfind(b"\n")
        if end >= 0:
            lines, problems = _split_lines(number, data[:end])
            yield number, lines, problems
            number += len(lines)
            data = data[end + 1 :]
        head = data
        if len(head) >= MAX_LINE_BYTES:
            yield number, [""], {number: "line_too_long"}
            number += 1
            head, skipping = b"", True
    if head:
        yield number, *_split_lines(number, head)


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

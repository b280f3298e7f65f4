"""The import's fast paths must accept, store and reject exactly what the detailed checks do."""

import hashlib
import io
import re
import sys
from datetime import date
from itertools import chain

import pytest
from django.core.files.base import ContentFile
from django.db.models import CharField
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.crypto import rrn_hmac
from core.districts import SEOUL_DISTRICTS
from eligibility import import_chunks, imports, registry_csv, registry_load
from eligibility.imports import registry_import_create, registry_import_run
from eligibility.models import (
    RECORD_MODELS,
    NaeilbaeumRecord,
    RegistryKind,
    TrainingCourse,
    YouthAllowanceRecord,
)
from eligibility.registry_csv import FastLines, RowError, parse_line, read_blocks
from tests.factories import rrn_for

HMAC = rrn_hmac(rrn_for(1))
PERSON_COLUMNS = dict.fromkeys(RegistryKind.values, ("rrn_hmac", "rrn"))
PERSON_COLUMNS[RegistryKind.TRAINING_COURSES] = ("",)

# Lines: each field drawn well formed, then up to two of them spoilt the ways files go
# wrong (odd values, padding, other digits, case, quotes, emptiness, NUL).

# Periods start before 2010 and end after, unless an odd value breaks the order.
starts = st.dates(date(1990, 1, 1), date(2009, 12, 31)).map(date.isoformat)
ends = st.dates(date(2010, 1, 1), date(2030, 12, 31)).map(date.isoformat)
odd_dates = st.one_of(
    st.dates(date(1, 1, 1), date(9999, 12, 31)).map(date.isoformat),
    st.sampled_from(["2025-02-29", "2024-02-29", "2025-13-01", "0000-01-01", "2025-02-30"]),
    st.sampled_from(["20250101", "2025-1-01", "2025/01/01", "2025-W01-1", "-"]),
)
odd_months = st.one_of(
    st.builds(lambda y, m: f"{y:04d}-{m:02d}", st.integers(0, 9999), st.integers(0, 13)),
    st.sampled_from(["2025-1", "202501", "2025-001"]),
)
# Free text near the length limits (40 and 200); tabs and backslashes are fine.
texts = st.one_of(
    st.text(st.sampled_from(list("aZ09 가é.N-\\\t")), min_size=1, max_size=6),
    st.builds(lambda c, n: c * n, st.sampled_from(["a", "가", " "]), st.integers(38, 42)),
    st.builds(lambda c, n: c * n, st.sampled_from(["a", "가"]), st.integers(198, 202)),
    st.builds(lambda n: f"x{'가' * n}x", st.integers(36, 40)),
)
BOOLEANS = ["true", "True", "TRUE", "y", "Y", "1", "false", "FALSE", "n", "N", "0"]
FIELDS = {  # (well formed, odd)
    "rrn_hmac": (
        st.binary(min_size=32, max_size=32).map(bytes.hex),
        st.sampled_from([HMAC[:63], HMAC + "0", HMAC[:63] + "g", HMAC.upper()]),
    ),
    "rrn": (
        st.one_of(
            st.integers(1, 99_999).map(rrn_for),
            st.integers(1, 99_999).map(lambda n: f"{rrn_for(n)[:6]}-{rrn_for(n)[6:]}"),
        ),
        st.sampled_from(["991332-1234567", "9001019234567", "1234567890123", "0001011234567"]),
    ),
    "status": (st.sampled_from(["basic_livelihood", "near_poor"]), st.just("poor")),
    "district": (st.sampled_from(sorted(SEOUL_DISTRICTS)), st.sampled_from(["41110", "1144"])),
    "start": (starts, odd_dates),
    "end": (ends, odd_dates),
    "optional_start": (st.one_of(st.just(""), starts), odd_dates),
    "optional_end": (st.one_of(st.just(""), ends), odd_dates),
    "month_start": (starts.map(lambda d: d[:7]), odd_months),
    "month_end": (ends.map(lambda d: d[:7]), odd_months),
    "year": (
        st.integers(1890, 2110).map(str),  # the bounds and past them
        st.one_of(
            st.sampled_from(["1899", "2101", "0999", "2025.0", "+2025", "99999"]),
            st.integers(0, 9999).map(str),
        ),
    ),
    "text": (texts, st.text(st.sampled_from(list(',"\r\x00\x1c\u3000\ufeff a')), max_size=4)),
    "vocational": (st.sampled_from(BOOLEANS), st.sampled_from(["yes", "t", "maybe", "ſ", "falſe"])),
}
KIND_FIELDS = {
    RegistryKind.SOCIAL_SECURITY: ("status", "district", "start", "optional_end"),
    RegistryKind.NAEILBAEUM: ("start", "end", "text", "optional_start", "optional_end"),
    RegistryKind.YOUTH_ALLOWANCE: ("month_start", "month_end"),
    RegistryKind.NATIONAL_VOUCHER: ("year",),
    RegistryKind.TRAINING_COURSES: ("text", "text", "text", "start", "end", "vocational"),
}
SPOILERS = [
    lambda v: f" {v}",
    lambda v: f"{v}\t",
    lambda v: f"\u3000{v}",
    lambda v: f"\ufeff{v}",
    lambda v: v.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")),
    str.upper,
    lambda v: f'"{v}"',
    lambda v: "",
    lambda v: f"{v[:1]}\x00{v[1:]}",
]


@st.composite
def near_valid_lines(draw, kind: str, person: str) -> str:
    names = ((person,) if person else ()) + KIND_FIELDS[kind]
    spoilt = draw(st.sets(st.integers(0, len(names) - 1), max_size=2))
    values = []
    for i, name in enumerate(names):
        valid, odd = FIELDS[name]
        value = draw(valid)
        if i in spoilt:
            value = draw(st.one_of(odd, st.sampled_from(SPOILERS).map(lambda f, v=value: f(v))))
        values.append(value)
    if draw(st.integers(0, 20)) == 0:  # a column too many or too few
        values = values[:-1] if draw(st.booleans()) else [*values, ""]
    return ",".join(values)


def as_postgres_reads(kind: str, csv_line: str) -> tuple:
    """The values COPY (FORMAT csv, FORCE_NOT_NULL text columns) reads from a fast CSV line."""
    model = RECORD_MODELS[kind]
    names = registry_load._db_columns(kind)[2:]
    assert not set(csv_line) & set('"\r\n'), csv_line  # nothing quoted, one line
    fields = csv_line.split(",")
    assert len(fields) == len(names), csv_line
    values = []
    for name, field in zip(names, fields, strict=True):
        if isinstance(model._meta.get_field(name), CharField):
            values.append(field)
        elif name == "vocational":  # PostgreSQL's boolean input, for the spellings allowed
            values.append(
                {"true": "t", "y": "t", "1": "t", "false": "f", "n": "f", "0": "f"}[field.lower()]
            )
        else:
            values.append(field or None)
    return tuple(values)


KIND_PEOPLE = [(kind, person) for kind in RegistryKind.values for person in PERSON_COLUMNS[kind]]


def fast_line(kind: str, person: str, line: str) -> tuple[tuple, str] | None:
    """The fast path's values for one line and their CSV, or None."""
    fast = FastLines(kind, person)
    rows = fast.values([line])
    return None if rows is None else (rows[0], fast.csv([line], rows)[0])


@pytest.mark.parametrize(("kind", "person"), KIND_PEOPLE)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fast_path_accepts_only_what_parse_line_accepts_with_the_same_values(kind, person, data):
    line = data.draw(near_valid_lines(kind, person))
    fast = fast_line(kind, person, line)
    try:
        slow = parse_line(kind, person, line)
    except RowError:
        slow = None

    if fast is not None:
        values, csv_line = fast
        assert slow is not None, line
        assert values == slow
        assert as_postgres_reads(kind, csv_line) == slow


@pytest.mark.parametrize(("kind", "person"), KIND_PEOPLE)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_block_of_lines_is_taken_as_its_lines_one_by_one(kind, person, data):
    lines = data.draw(st.lists(near_valid_lines(kind, person), min_size=1, max_size=8))
    fast = FastLines(kind, person)
    one_by_one = [fast_line(kind, person, line) for line in lines]

    rows = fast.values(lines)

    if None in one_by_one:
        assert rows is None
    else:
        assert list(zip(rows, fast.csv(lines, rows), strict=True)) == one_by_one


WELL_FORMED = {
    RegistryKind.SOCIAL_SECURITY: "{p},near_poor,11440,2025-01-01,\n{p},basic_livelihood,"
    "11110,2024-03-01,2026-02-28",
    RegistryKind.NAEILBAEUM: "{p},2025-01-01,2029-12-31,AIG1,2026-03-02,2026-06-30\n"
    "{p},2025-01-01,2029-12-31,,,",
    RegistryKind.YOUTH_ALLOWANCE: "{p},2024-01,2024-02\n{p},2026-12,2026-12",
    RegistryKind.NATIONAL_VOUCHER: "{p},1900\n{p},2100",
    RegistryKind.TRAINING_COURSES: "AIG1,빅데이터 분석\\실무\t2,기관 \\N,2026-03-02,2026-06-30,Y\n"
    "{long},{name},\\.,2026-03-02,2026-03-02,FALSE",
}


@pytest.mark.parametrize(("kind", "person"), KIND_PEOPLE)
def test_fast_path_takes_well_formed_lines(kind, person):
    value = {"rrn_hmac": HMAC, "rrn": rrn_for(7), "": ""}[person]
    lines = WELL_FORMED[kind].format(p=value, long="C" * 40, name="가" * 200).split("\n")
    assert FastLines(kind, person).values(lines) == [
        parse_line(kind, person, line) for line in lines
    ]


NEARLY_WELL_FORMED = {
    RegistryKind.SOCIAL_SECURITY: [
        "{p},near_poor,11440,2025-01-01,2024-12-31",
        "{p},near_poor,11440,2025-02-29,",
        "{p},near_poor, 11440,2025-01-01,",
        "{p},near_poor,11440,2025-01-01,\x00",
    ],
    RegistryKind.NAEILBAEUM: [
        "{p},2025-01-01,2029-12-31,{long}C,2026-03-02,2026-06-30",
        "{p},2025-01-01,2029-12-31,AIG1 ,2026-03-02,2026-06-30",
        "{p},2025-01-01,2029-12-31,A\x00G1,2026-03-02,2026-06-30",
        "{p},2025-01-01,2029-12-31,AIG1,2026-07-01,2026-06-30",
    ],
    RegistryKind.YOUTH_ALLOWANCE: [
        "{p},2024-02,2024-01",
        "{p},2024-13,2024-12",
        "{p},0000-01,2024-01",
    ],
    RegistryKind.NATIONAL_VOUCHER: ["{p},1899", "{p},2101", "{p},２０２５", "{p}, 2025"],
    RegistryKind.TRAINING_COURSES: [
        "{long}C,n,i,2026-03-02,2026-06-30,Y",
        "C1,{name}가,i,2026-03-02,2026-06-30,Y",
        "C1,\u3000n,i,2026-03-02,2026-06-30,Y",
        "C1,n,i,2026-03-02,2026-06-30,yes",
        "C1,n,i,2026-03-02,2026-06-30,falſe",
        'C1,"n",i,2026-03-02,2026-06-30,Y',
    ],
}


@pytest.mark.parametrize(("kind", "person"), KIND_PEOPLE)
def test_fast_path_leaves_nearly_well_formed_lines_to_parse_line(kind, person):
    value = {"rrn_hmac": HMAC, "rrn": rrn_for(7), "": ""}[person]
    for line in NEARLY_WELL_FORMED[kind]:
        line = line.format(p=value, long="C" * 40, name="가" * 200)
        assert fast_line(kind, person, line) is None, line


def test_regex_whitespace_is_what_strip_removes():
    # The fast path's free text relies on it to leave padded values to parse_line.
    space = re.compile(r"\s")
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        assert bool(space.fullmatch(char)) == (char.strip() == ""), hex(code)


# Reading in blocks.


def lines_one_by_one(stream, digest, max_bytes):
    """The line reader as it was before blocks: readline, hash, decode, line by line."""
    number = 0
    while raw := stream.readline(max_bytes):
        number += 1
        digest.update(raw)
        if len(raw) == max_bytes and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):
                raw = stream.readline(max_bytes)
                digest.update(raw)
            yield number, "", "line_too_long"
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            yield number, "", "invalid_encoding"
            continue
        yield number, text.rstrip("\r\n"), None


def read_lines(stream, first_line=1):
    """(line number, text, problem code) for each line of read_blocks."""
    for start, lines, problems in read_blocks(stream, first_line=first_line):
        for number, text in enumerate(lines, start):
            yield number, text, problems.get(number)


# Text and line ends, invalid UTF-8 (\xff, a cut \xe2), é, 가, NUL and a BOM.
BYTES = b"a bc , \n \n \r \r\n \xff \xe2 \xc3\xa9 \xea\xb0\x80 \x00 \xef\xbb\xbf"
pieces = st.sampled_from([*BYTES.split(b" "), b" "])


@settings(max_examples=500, deadline=None)
@given(
    data=st.lists(pieces, max_size=60).map(b"".join),
    max_line=st.integers(1, 12),
    block=st.integers(1, 16),
)
def test_block_reader_yields_what_line_by_line_reading_did(data, max_line, block):
    with pytest.MonkeyPatch.context() as patch:  # tiny lines and blocks: every boundary case
        patch.setattr(registry_csv, "MAX_LINE_BYTES", max_line)
        patch.setattr(registry_csv, "BLOCK_BYTES", block)
        got = list(read_lines(io.BytesIO(data)))

    assert got == list(lines_one_by_one(io.BytesIO(data), hashlib.sha256(), max_line))


def test_block_reader_skips_a_huge_line_without_holding_it():
    data = b"a,b\n" + b"x" * (5 * registry_csv.MAX_LINE_BYTES) + b"\nc,d"
    assert list(read_lines(io.BytesIO(data))) == [
        (1, "a,b", None),
        (2, "", "line_too_long"),
        (3, "c,d", None),
    ]


# Chunks: blocks of lines checked at once, cut at CHUNK_ROWS, must make the same chunks
# as reading line by line did.


def chunks_line_by_line(kind: str, data: bytes, chunk_rows: int, max_line: int):
    """The rows and counts of each chunk as the import made them before blocks."""
    lines = lines_one_by_one(io.BytesIO(data), hashlib.sha256(), max_line)
    person = registry_csv.read_header(kind, next(lines))
    chunks, rows, read, rejected, errors = [], [], 0, 0, []
    for number, text, problem in lines:
        if not problem and not text.strip():
            continue
        read += 1
        try:
            if problem:
                raise RowError(None, problem, registry_csv.LINE_PROBLEMS[problem])
            rows.append((number, parse_line(kind, person, text)))
        except RowError as exc:
            rejected += 1
            errors.append((number, exc.field, exc.code))
        if read % chunk_rows == 0:
            chunks.append((rows, read, rejected))
            rows = []
    chunks.append((rows, read, rejected))
    return chunks, errors


def chunks_now(kind: str, data: bytes, chunk_rows: int):
    blocks = read_blocks(io.BytesIO(data))
    start, lines, problems = next(blocks)
    person = registry_csv.read_header(kind, (start, lines[0], problems.get(start)))
    blocks = chain([(start + 1, lines[1:], problems)], blocks)
    rows = registry_load._Rows(kind, person, blocks, 7, chunk_rows=chunk_rows)
    chunks = []
    while not rows.done:
        written = [(line, values) for batch in rows.chunk() for _, line, values, _ in batch]
        chunks.append((written, rows.read, rows.rejected))
    return chunks, [(e["line"], e["field"], e["code"]) for e in rows.errors]


voucher_lines = st.one_of(
    st.builds(lambda n, year: f"{n:064x},{year}".encode(), st.integers(0, 3), st.just(2025)),
    st.sampled_from(
        [f"{HMAC},2025", f" {HMAC} ,2025", f"{HMAC},1899", "x,2025", f'"{HMAC}",2025']
    ).map(str.encode),
    st.sampled_from([b"", b" ", b"\r", b"\xff,2025", b"a" * 90]),  # blank, not UTF-8, too long
)


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(voucher_lines, max_size=40),
    crlf=st.booleans(),
    chunk_rows=st.integers(1, 7),
    block=st.integers(1, 300),
)
def test_chunks_are_cut_as_reading_line_by_line_cut_them(lines, crlf, chunk_rows, block):
    end = b"\r\n" if crlf else b"\n"
    data = end.join([b"rrn_hmac,year", *lines]) + end
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(registry_csv, "MAX_LINE_BYTES", 80)
        patch.setattr(registry_csv, "BLOCK_BYTES", block)
        got = chunks_now(RegistryKind.NATIONAL_VOUCHER, data, chunk_rows)

    assert got == chunks_line_by_line(RegistryKind.NATIONAL_VOUCHER, data, chunk_rows, 80)


# Through the import, on SQLite (bulk_create) and PostgreSQL (COPY in CSV).


def import_file(kind: str, content: str):
    job = registry_import_create(
        kind=kind, uploaded_file=ContentFile(content.encode(), name="registry.csv"), actor=None
    )
    return registry_import_run(job_id=job.pk)


@pytest.mark.django_db
def test_free_text_round_trips_whatever_it_holds():
    names = [
        "tab\there",
        "back\\slash",
        "\\.",
        "\\N",
        "comma, inside",
        'say "hi"',
        "carriage\rreturn",
        "가" * 200,
        "\ufeffbom",
        "end\\",
    ]
    rows = []
    for n, name in enumerate(names):
        quoted = '"' + name.replace('"', '""') + '"' if "," in name or '"' in name else name
        rows.append(f"C{n},{quoted},기관\t{n},2026-03-02,2026-06-30,1\n")
    job = import_file(
        RegistryKind.TRAINING_COURSES,
        "course_id,name,institution,starts_on,ends_on,vocational\n" + "".join(rows),
    )

    assert job.status == "succeeded", job.errors
    stored = dict(TrainingCourse.objects.values_list("course_id", "name"))
    assert stored == {f"C{n}": name for n, name in enumerate(names)}
    assert set(TrainingCourse.objects.values_list("institution", flat=True)) == {
        f"기관\t{n}" for n in range(len(names))
    }


@pytest.mark.django_db
def test_values_of_fast_and_detailed_lines_are_stored_alike():
    spellings = ["true", "TRUE", "y", "Y", "1", "false", "False", "n", "N", "0"]
    courses = "".join(
        f"C{n},n,i,2026-03-02,2026-06-30,{spelling}\n" for n, spelling in enumerate(spellings)
    )
    courses += 'C98 , n , i ,2026-03-02,2026-06-30, y \nC99,n,i,2026-03-02,2026-06-30,"n"\n'
    assert (
        import_file(
            RegistryKind.TRAINING_COURSES,
            "course_id,name,institution,starts_on,ends_on,vocational\n" + courses,
        ).status
        == "succeeded"
    )
    vocational = dict(TrainingCourse.objects.values_list("course_id", "vocational"))
    assert vocational == {
        **{f"C{n}": n < 5 for n in range(len(spellings))},
        "C98": True,
        "C99": False,
    }

    rrn = rrn_for(5)
    job = import_file(
        RegistryKind.NAEILBAEUM,
        "rrn,card_valid_from,card_valid_to,course_id,training_from,training_to\n"
        f"{rrn},2025-01-01,2029-12-31,,,\n"
        f" {rrn[:6]}-{rrn[6:]} ,2025-01-01,2029-12-31, AIG1 ,2026-03-02,\n",
    )
    assert job.status == "succeeded", job.errors
    assert list(
        NaeilbaeumRecord.objects.order_by("line").values_list(
            "rrn_hmac", "course_id", "training_from", "training_to"
        )
    ) == [(rrn_hmac(rrn), "", None, None), (rrn_hmac(rrn), "AIG1", date(2026, 3, 2), None)]

    job = import_file(
        RegistryKind.YOUTH_ALLOWANCE,
        f"rrn_hmac,paid_from,paid_to\n{HMAC},2024-02,2024-02\n{HMAC}, 2023-12 ,2024-01\n",
    )
    assert job.status == "succeeded", job.errors
    assert list(
        YouthAllowanceRecord.objects.order_by("line").values_list("paid_from", "paid_to")
    ) == [(date(2024, 2, 1), date(2024, 2, 29)), (date(2023, 12, 1), date(2024, 1, 31))]


# Duplicates: the key hashes kept while reading spare the database query on clean files.


@pytest.mark.django_db
def test_a_repeat_is_found_across_fast_and_detailed_lines():
    job = import_file(
        RegistryKind.SOCIAL_SECURITY,
        "rrn_hmac,status,district,valid_from,valid_to\n"
        f"{HMAC},near_poor,11440,2025-01-01,\n"
        f" {HMAC} ,basic_livelihood,11110,2024-01-01,\n",
    )
    assert job.status == "failed"
    assert [(e["line"], e["code"]) for e in job.errors] == [(3, "duplicate")]


@pytest.mark.django_db
def test_a_clean_file_skips_the_duplicate_query_unless_too_big(monkeypatch):
    queried = []
    real = imports._duplicates
    monkeypatch.setattr(
        imports,
        "_duplicates",
        lambda kind, snapshot_id: queried.append(kind) or real(kind, snapshot_id),
    )
    content = "rrn_hmac,year\n" + "".join(f"{n:064x},2025\n" for n in range(30))

    assert import_file(RegistryKind.NATIONAL_VOUCHER, content).status == "succeeded"
    assert queried == []

    monkeypatch.setattr(import_chunks, "CHUNK_ROWS", 10)
    monkeypatch.setattr(registry_load, "KEY_HASH_ROWS", 10)
    assert import_file(RegistryKind.NATIONAL_VOUCHER, content).status == "succeeded"
    assert queried == [RegistryKind.NATIONAL_VOUCHER]
    assert import_file(RegistryKind.NATIONAL_VOUCHER, content + f"{0:064x},2025\n").errors == [
        {
            "line": 32,
            "field": "rrn_hmac",
            "code": "duplicate",
            "message": "Same rrn_hmac and year as line 2.",
        }
    ]

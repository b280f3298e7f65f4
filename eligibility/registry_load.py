"""Loading a registry file: cut into ranges of lines, its lines checked block by block,
written to a snapshot in chunks (COPY on PostgreSQL), and the rows that repeat an entry
found.

The job around it (claiming, leases, activation, the upload's life) is eligibility.imports.
"""

import hashlib
import re
from array import array
from collections.abc import Iterable, Iterator
from itertools import chain, islice, repeat
from operator import itemgetter

from django.db import connection
from django.db.models import CharField, Count, F, Min, Window

from eligibility.models import RECORD_MODELS, RegistryKind
from eligibility.registry_csv import (
    COLUMNS,
    LINE_PROBLEMS,
    FastLines,
    RowError,
    is_person_kind,
    parse_line,
)

CHUNK_ROWS = 10_000
MAX_ERRORS = 100
KEY_HASH_ROWS = 5_000_000  # beyond, the database alone looks for duplicates (40 MB kept)
# What makes two rows the same entry. A person may hold several Naeil-baeum cards or
# courses, youth-allowance periods and yearly vouchers, so only repeats of the same
# entry are duplicates there; the social-security status is one per person.
DUPLICATE_KEYS = {
    RegistryKind.SOCIAL_SECURITY: ("rrn_hmac",),
    RegistryKind.NAEILBAEUM: ("rrn_hmac", "card_valid_from", "course_id", "training_from"),
    RegistryKind.YOUTH_ALLOWANCE: ("rrn_hmac", "paid_from"),
    RegistryKind.NATIONAL_VOUCHER: ("rrn_hmac", "year"),
    RegistryKind.TRAINING_COURSES: ("course_id",),
}


def _db_columns(kind: str) -> list[str]:
    person = ["rrn_hmac"] if is_person_kind(kind) else []
    return ["snapshot", "line", *person, *COLUMNS[kind]]


# Bytes read at a time when a file is cut into ranges.
_SCAN_BYTES = 1 << 20


def line_ranges(stream, lines: int) -> tuple[str, list[tuple[int, int, int]]]:
    """Read the whole stream: return its SHA-256 and its data lines (from line 2) cut
    into ranges of `lines` lines, as (first line, start byte, end byte).

    A line ends at its LF, as read_blocks reads it, so a range read from its start byte
    with first_line numbers its lines as reading the whole file does.
    """
    digest, size, newlines = hashlib.sha256(), 0, 0
    starts = []  # the first line and start byte of each range
    wanted = 1  # the LF after which the next range begins: the header's, then every `lines`
    while block := stream.read(_SCAN_BYTES):
        digest.update(block)
        count = block.count(b"\n")
        position = -1
        while newlines + count >= wanted:
            for _ in range(wanted - newlines):
                position = block.index(b"\n", position + 1)
            count -= wanted - newlines
            newlines = wanted
            starts.append((wanted + 1, size + position + 1))
            wanted += lines
        newlines += count
        size += len(block)
    ends = [start for _, start in starts[1:]] + [size]
    ranges = [(first, start, end) for (first, start), end in zip(starts, ends, strict=False)]
    return digest.hexdigest(), [r for r in ranges if r[2] > r[1]]


class LineRange:
    """The bytes start..end of a seekable stream, read as a stream of their own."""

    def __init__(self, stream, start: int, end: int):
        stream.seek(start)
        self._stream, self._left = stream, end - start

    def read(self, size: int) -> bytes:
        data = self._stream.read(min(size, self._left)) if self._left > 0 else b""
        self._left -= len(data)
        return data


# Model instances handed to bulk_create at a time within a chunk's transaction.
_BATCH = 500
_CSV_QUOTED = re.compile(r'[,"\r\n]')


def _csv_field(value: str | None) -> str:
    if value is None:
        return ""  # unquoted and empty: NULL
    if _CSV_QUOTED.search(value):
        return '"' + value.replace('"', '""') + '"'
    return value


def _csv_lines(rows: list[tuple]) -> str:
    """Return rows as lines of COPY's CSV format, using the CSV a row comes with."""
    return "".join(
        [
            f"{snapshot_id},{line},{csv}\n"
            if csv is not None
            else f"{snapshot_id},{line}," + ",".join(map(_csv_field, values)) + "\n"
            for snapshot_id, line, values, csv in rows
        ]
    )


def _write_chunk(kind: str, rows: Iterable[list[tuple]]) -> None:
    """Write rows as they come, in lists of (snapshot, line, values, csv) from _Rows.chunk.

    The values are canonical text (None for NULL), in COLUMNS order after the person's
    HMAC; csv, when not None, is already their CSV (see registry_csv.FastLines).
    """
    model = RECORD_MODELS[kind]
    fields = [model._meta.get_field(name) for name in _db_columns(kind)]
    if connection.vendor == "postgresql":
        quote = connection.ops.quote_name
        columns = ", ".join(quote(f.column) for f in fields)
        # An empty text field is '' rather than NULL, as bulk_create stores it.
        texts = ", ".join(quote(f.column) for f in fields if isinstance(f, CharField))
        connection.ensure_connection()
        sql = (
            f"COPY {quote(model._meta.db_table)} ({columns}) FROM STDIN "
            f"(FORMAT csv, FORCE_NOT_NULL ({texts}))"
        )
        # Rows are sent while the file is still being read: PostgreSQL stores one list
        # while the next is parsed.
        with connection.connection.cursor() as cursor, cursor.copy(sql) as copy:
            for batch in rows:
                copy.write(_csv_lines(batch))
        return
    # The fields turn the canonical text into dates, booleans and numbers.
    attnames, rows = [f.attname for f in fields[2:]], chain.from_iterable(rows)
    while batch := [
        model(snapshot_id=snapshot_id, line=line, **dict(zip(attnames, values, strict=True)))
        for snapshot_id, line, values, _ in islice(rows, _BATCH)
    ]:
        model.objects.bulk_create(batch)


def _duplicates(kind: str, snapshot_id: int) -> tuple[int, list[dict]]:
    """Count rows repeating an earlier one, and describe the first of them."""
    model = RECORD_MODELS[kind]
    key = DUPLICATE_KEYS[kind]
    # One hash aggregate answers the usual case (no repeats) without sorting the snapshot.
    groups = (
        model.objects.filter(snapshot_id=snapshot_id)
        .values(*key)
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .order_by()
    )
    if not groups.exists():
        return 0, []
    repeats = (
        model.objects.filter(snapshot_id=snapshot_id)
        .annotate(first_line=Window(Min("line"), partition_by=[F(name) for name in key]))
        .filter(line__gt=F("first_line"))
    )
    count = repeats.count()
    errors = [
        _error(line, key[0], "duplicate", f"Same {' and '.join(key)} as line {first_line}.")
        for line, first_line in repeats.order_by("line").values_list("line", "first_line")[
            :MAX_ERRORS
        ]
    ]
    return count, errors


def _error(line: int, field: str | None, code: str, message: str) -> dict:
    return {"line": line, "field": field, "code": code, "message": message}


class _Rows:
    """The data lines of an upload, checked as they are read, chunk by chunk.

    Rows read, rows rejected and the first MAX_ERRORS errors add up on the side.
    """

    def __init__(
        self, kind: str, person: str, blocks: Iterator, snapshot_id: int, chunk_rows=CHUNK_ROWS
    ):
        self.kind, self.person, self.blocks, self.snapshot_id = kind, person, blocks, snapshot_id
        self.chunk_rows = chunk_rows
        self.fast = FastLines(kind, person)
        self.pending: tuple | None = None  # the rest of a block, not read yet
        self.read = self.rejected = 0
        self.errors: list[dict] = []
        self.done = False
        # The hash of each written row's duplicate key, in buckets by its low byte: no
        # hash twice in a bucket proves the file repeats no key, which spares the
        # database grouping the whole snapshot. The values are canonical text, so equal
        # keys hash alike; 8 bytes a row, and none kept past KEY_HASH_ROWS.
        columns = _db_columns(kind)[2:]
        self.key = itemgetter(*(columns.index(name) for name in DUPLICATE_KEYS[kind]))
        self.key_hashes: list[array] | None = [array("q") for _ in range(256)]

    def chunk(self) -> Iterator[list[tuple]]:
        """Yield the good rows among the next chunk_rows rows read, in lists for _write_chunk."""
        if self.read - self.rejected > KEY_HASH_ROWS:
            self.key_hashes = None
        room = self.chunk_rows
        while room:
            block = self.pending or next(self.blocks, None)
            if block is None:
                self.done = True
                return
            start, lines, problems = block
            # Lines are checked a block at a time while they are all well formed.
            rows = None if problems else self._well_formed(start, lines[:room])
            if rows is None:
                rows, used, counted = self._line_by_line(start, lines, problems, room)
            else:
                used = counted = len(rows)
            self.read += counted
            room -= counted
            self.pending = (start + used, lines[used:], problems) if used < len(lines) else None
            if rows:
                if self.key_hashes is not None:
                    for digest in map(hash, map(self.key, map(itemgetter(2), rows))):
                        self.key_hashes[digest & 255].append(digest)
                yield rows

    def may_repeat(self) -> bool:
        """Tell whether two written rows may share a duplicate key; False is certain."""
        if self.key_hashes is None:
            return True
        return any(len(set(bucket)) < len(bucket) for bucket in self.key_hashes)

    def _well_formed(self, start: int, lines: list[str]) -> list[tuple] | None:
        values = self.fast.values(lines)
        if values is None:
            return None
        numbers = range(start, start + len(lines))
        return list(zip(repeat(self.snapshot_id), numbers, values, self.fast.csv(lines, values)))

    def _line_by_line(self, start: int, lines: list[str], problems: dict, room: int):
        """Check lines one by one up to room rows; return the good rows, lines used, rows read."""
        rows, read = [], 0
        for used, text in enumerate(lines, 1):
            number, problem = start + used - 1, problems.get(start + used - 1)
            if not problem and not text.strip():
                continue  # a blank line is no row
            read += 1
            checked = None if problem else self._well_formed(number, [text])
            if checked is None:
                checked = self._check(number, text, problem)
            rows += checked  # the line's row, or none if it was rejected
            if read == room:
                return rows, used, read
        return rows, len(lines), read

    def _check(self, number: int, text: str, problem: str | None) -> list[tuple]:
        """Check a line in detail: a list of its row, or an empty one and an error."""
        try:
            if problem:
                raise RowError(None, problem, LINE_PROBLEMS[problem])
            return [(self.snapshot_id, number, parse_line(self.kind, self.person, text), None)]
        except RowError as exc:
            self.rejected += 1
            if len(self.errors) < MAX_ERRORS:
                self.errors.append(_error(number, exc.field, exc.code, exc.message))
            return []

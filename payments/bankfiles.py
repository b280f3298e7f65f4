"""Write outgoing bank transfer files (CSV and ISO 20022 pain.001.001.09) and read result files.

Pure functions over streams and bytes: no Django, no database, no clock, so output is reproducible.
"""

import codecs
import csv
import io
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, BinaryIO

from lxml import etree

PAIN001_XSD = Path(__file__).with_name("schemas") / "pain.001.001.09.xsd"
PAIN001_NS = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"

CSV_HEADER = ("reference", "bank_code", "account_number", "account_holder", "amount", "memo")
RESULT_CSV_HEADER = ("reference", "result", "reason")

MAX_ERRORS = 100

_REFERENCE = re.compile(r"[A-Za-z0-9-]{1,35}")
_BANK_CODE = re.compile(r"[0-9]{3}")
_ACCOUNT = re.compile(r"[0-9]{10,16}")
_DEBTOR_ACCOUNT = re.compile(r"[0-9]{1,34}")
# The XSD caps amounts and sums at 18 total digits.
_MAX_AMOUNT = 10**18 - 1
# Control, format, surrogate, private-use and unassigned code points, and line/paragraph breaks.
_CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Above this the all-or-nothing buffer moves from memory to a temporary file.
_SPOOL_BYTES = 8 * 1024 * 1024
_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
# A DOCTYPE may only follow the XML declaration, comments, processing instructions and whitespace.
_DOCTYPE = re.compile(rb"\s*(?:<\?.*?\?>\s*|<!--.*?-->\s*)*<!DOCTYPE", re.DOTALL)
# Never load a DTD, expand an entity or touch the network, whatever the document asks for.
_HARDENED = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
    "remove_comments": True,
    "remove_pis": True,
}
# With a schema, lxml skips fatal parse errors under resolve_entities=False, so a truncated file
# would pass. "internal" never loads external entities, and _PrologGuard keeps out any DTD, with
# which lxml's streaming validation crashes on the first entity.
_STREAMING = {**_HARDENED, "resolve_entities": "internal"}
_PROLOG_BYTES = 64 * 1024
_PROLOG_END = re.compile(rb"\s*(?:<\?.*?\?>\s*|<!--.*?-->\s*)*<[^!?]", re.DOTALL)
_DECLARED_ENCODING = re.compile(rb"<\?xml[^>]*?encoding\s*=\s*[\"']([^\"']*)[\"']")
_PAID = frozenset({"ACSC", "ACCC"})
_REJECTED = "RJCT"


class BankFileError(Exception):
    """A bank file that cannot be written or read; .errors lists {"line", "code", "message"}."""

    def __init__(self, message: str, errors: list[dict] | None = None):
        super().__init__(message)
        self.errors: list[dict] = list(errors or [])


@dataclass(frozen=True, slots=True)
class TransferLine:
    """One payment to one citizen's account."""

    reference: str
    bank_code: str
    account_number: str
    account_holder: str
    amount: int
    memo: str


@dataclass(frozen=True, slots=True)
class BatchHeader:
    """The group header and payment information block of a pain.001 batch."""

    message_id: str
    created_at: datetime
    execution_date: date
    initiating_party: str
    debtor_account: str
    debtor_bank_code: str
    payment_info_id: str
    number_of_transactions: int
    control_sum: int


@dataclass(frozen=True, slots=True)
class ResultLine:
    """The bank's outcome for one payment."""

    line: int
    reference: str
    result: str
    reason: str


def _error(line: int | None, code: str, message: str) -> dict:
    return {"line": line, "code": code, "message": message}


class _Problems:
    """Collect up to MAX_ERRORS problems, then raise them together."""

    def __init__(self) -> None:
        self.errors: list[dict] = []

    def __bool__(self) -> bool:
        return bool(self.errors)

    @property
    def full(self) -> bool:
        return len(self.errors) >= MAX_ERRORS

    def add(self, line: int | None, code: str, message: str) -> None:
        if not self.full:
            self.errors.append(_error(line, code, message))

    def raise_if_any(self, what: str) -> None:
        if not self.errors:
            return
        shown = "; ".join(
            (f"line {e['line']}: " if e["line"] is not None else "") + e["message"]
            for e in self.errors[:5]
        )
        more = len(self.errors) - 5
        suffix = f" (and {more} more)" if more > 0 else ""
        raise BankFileError(f"{what}: {shown}{suffix}", self.errors)


def _has_control(text: str) -> bool:
    """Return whether text holds control, format, unassigned or line-breaking characters."""
    if text.isprintable():
        return False
    # isprintable() also rejects spaces such as U+3000, which are allowed in names.
    return any(unicodedata.category(ch) in _CONTROL_CATEGORIES for ch in text)


def _text_problem(value: object, field: str, max_len: int, *, required: bool) -> str | None:
    if not isinstance(value, str):
        return f"{field} must be a string"
    if required and not value.strip():
        return f"{field} is empty"
    if len(value) > max_len:
        return f"{field} is {len(value)} characters, more than {max_len}"
    if _has_control(value):
        return f"{field} contains control characters or line breaks"
    return None


def _pattern_problem(value: object, field: str, pattern: re.Pattern[str], rule: str) -> str | None:
    if isinstance(value, str) and pattern.fullmatch(value):
        return None
    return f"{field} {value!r} is not {rule}"


def _amount_problem(value: object, field: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{field} {value!r} is not an integer number of won"
    if value <= 0:
        return f"{field} {value} is not positive"
    if value > _MAX_AMOUNT:
        return f"{field} {value} has more than 18 digits"
    return None


def _line_problems(line: TransferLine) -> list[tuple[str, str]]:
    checks = [
        (
            "reference",
            _pattern_problem(line.reference, "reference", _REFERENCE, "1-35 of A-Z a-z 0-9 -"),
        ),
        ("bank_code", _pattern_problem(line.bank_code, "bank_code", _BANK_CODE, "3 digits")),
        (
            "account_number",
            _pattern_problem(line.account_number, "account_number", _ACCOUNT, "10-16 digits"),
        ),
        ("account_holder", _text_problem(line.account_holder, "account_holder", 70, required=True)),
        ("amount", _amount_problem(line.amount, "amount")),
        ("memo", _text_problem(line.memo, "memo", 140, required=False)),
    ]
    return [(code, message) for code, message in checks if message]


def _check_line(line: TransferLine, position: int, seen: set[str], problems: _Problems) -> bool:
    """Record the problems of one line; return whether it is fit to write."""
    found = _line_problems(line)
    if not found and line.reference in seen:
        found = [("duplicate_reference", "reference appears more than once in the batch")]
    for code, message in found:
        problems.add(position, code, f"transfer {line.reference!r}: {message}")
    if not found:
        seen.add(line.reference)
    return not found


def _header_problems(header: BatchHeader) -> list[str]:
    created = header.created_at
    offset = created.utcoffset() if isinstance(created, datetime) else None
    found = [
        _text_problem(header.message_id, "message_id", 35, required=True),
        _text_problem(header.initiating_party, "initiating_party", 140, required=True),
        _text_problem(header.payment_info_id, "payment_info_id", 35, required=True),
        _pattern_problem(header.debtor_account, "debtor_account", _DEBTOR_ACCOUNT, "1-34 digits"),
        _pattern_problem(header.debtor_bank_code, "debtor_bank_code", _BANK_CODE, "3 digits"),
        _amount_problem(header.control_sum, "control_sum"),
    ]
    if offset is None:
        found.append("created_at must be a timezone-aware datetime")
    elif offset % timedelta(minutes=1):
        found.append("created_at has a UTC offset with seconds, which ISO 8601 cannot express")
    if isinstance(header.execution_date, datetime) or not isinstance(header.execution_date, date):
        found.append("execution_date must be a date")
    count = header.number_of_transactions
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count < 10**15:
        found.append(f"number_of_transactions {count!r} is not between 1 and 15 digits")
    return [message for message in found if message]


@contextmanager
def _all_or_nothing(out: BinaryIO) -> Iterator[BinaryIO]:
    """Yield a scratch stream whose bytes are copied to out only if the block succeeds."""
    # A half-written bank file must never reach the caller's stream, where it could be sent.
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
        yield spool
        spool.seek(0)
        shutil.copyfileobj(spool, out)


class _Utf8Text:
    """Adapt a binary stream to the text write() the csv module calls."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw

    def write(self, text: str) -> int:
        return self.raw.write(text.encode("utf-8"))


def write_csv(lines: Iterable[TransferLine], out: BinaryIO) -> tuple[int, int]:
    """Write the bank CSV (UTF-8, no BOM, header row, \\r\\n line ends); return (count, total).

    Nothing is written to out when a line is invalid.
    """
    problems = _Problems()
    seen: set[str] = set()
    count = total = 0
    with _all_or_nothing(out) as spool:
        writer = csv.writer(_Utf8Text(spool), lineterminator="\r\n")
        writer.writerow(CSV_HEADER)
        for position, line in enumerate(lines, start=1):
            if problems.full:
                break
            if _check_line(line, position, seen, problems) and not problems:
                writer.writerow(
                    (
                        line.reference,
                        line.bank_code,
                        line.account_number,
                        line.account_holder,
                        line.amount,
                        line.memo,
                    )
                )
                count += 1
                total += line.amount
        problems.raise_if_any("bank CSV not written")
    return count, total


def _q(name: str) -> str:
    return f"{{{PAIN001_NS}}}{name}"


class _Indented:
    """Write nested pain.001 elements through an lxml xmlfile, two spaces per level."""

    def __init__(self, xf: Any) -> None:
        # lxml does not export the type of the writer that xmlfile yields.
        self.xf = xf
        self.depth = 1

    @contextmanager
    def open(self, name: str) -> Iterator[None]:
        self._newline()
        with self.xf.element(_q(name)):
            self.depth += 1
            yield
            self.depth -= 1
            self._newline()

    def leaf(self, name: str, text: str, attrib: dict[str, str] | None = None) -> None:
        self._newline()
        with self.xf.element(_q(name), attrib or {}):
            self.xf.write(text)

    def path(self, names: str, text: str) -> None:
        """Write text inside the slash-separated chain of elements names."""
        first, _, rest = names.partition("/")
        if not rest:
            self.leaf(first, text)
            return
        with self.open(first):
            self.path(rest, text)

    def _newline(self) -> None:
        self.xf.write("\n" + "  " * self.depth)


def _write_transaction(w: _Indented, line: TransferLine) -> None:
    with w.open("CdtTrfTxInf"):
        with w.open("PmtId"):
            w.leaf("InstrId", line.reference)
            w.leaf("EndToEndId", line.reference)
        with w.open("Amt"):
            w.leaf("InstdAmt", str(line.amount), {"Ccy": "KRW"})
        w.path("CdtrAgt/FinInstnId/ClrSysMmbId/MmbId", line.bank_code)
        w.path("Cdtr/Nm", line.account_holder)
        w.path("CdtrAcct/Id/Othr/Id", line.account_number)
        # Ustrd must not be empty, so a transfer without memo has no RmtInf at all.
        if line.memo:
            w.path("RmtInf/Ustrd", line.memo)


def write_pain001(
    header: BatchHeader, lines: Iterable[TransferLine], out: BinaryIO
) -> tuple[int, int]:
    """Stream a pain.001.001.09 document to out and return (count, total).

    Raise BankFileError, writing nothing to out, if a line is invalid or the lines do not match
    header.number_of_transactions and header.control_sum.
    """
    problems = _Problems()
    for message in _header_problems(header):
        problems.add(None, "header", message)
    problems.raise_if_any("pain.001 not written")

    seen: set[str] = set()
    count = total = 0
    with _all_or_nothing(out) as spool:
        spool.write(_XML_DECLARATION)
        with (
            etree.xmlfile(spool, encoding="utf-8") as xf,
            xf.element(_q("Document"), nsmap={None: PAIN001_NS}),
        ):
            w = _Indented(xf)
            with w.open("CstmrCdtTrfInitn"):
                with w.open("GrpHdr"):
                    w.leaf("MsgId", header.message_id)
                    w.leaf("CreDtTm", header.created_at.isoformat(timespec="seconds"))
                    w.leaf("NbOfTxs", str(header.number_of_transactions))
                    w.leaf("CtrlSum", str(header.control_sum))
                    w.path("InitgPty/Nm", header.initiating_party)
                with w.open("PmtInf"):
                    w.leaf("PmtInfId", header.payment_info_id)
                    w.leaf("PmtMtd", "TRF")
                    w.leaf("BtchBookg", "true")
                    w.leaf("NbOfTxs", str(header.number_of_transactions))
                    w.leaf("CtrlSum", str(header.control_sum))
                    w.path("ReqdExctnDt/Dt", header.execution_date.isoformat())
                    w.path("Dbtr/Nm", header.initiating_party)
                    w.path("DbtrAcct/Id/Othr/Id", header.debtor_account)
                    w.path("DbtrAgt/FinInstnId/ClrSysMmbId/MmbId", header.debtor_bank_code)
                    w.leaf("ChrgBr", "SLEV")
                    for position, line in enumerate(lines, start=1):
                        if problems.full:
                            break
                        if _check_line(line, position, seen, problems) and not problems:
                            _write_transaction(w, line)
                            count += 1
                            total += line.amount
                    if not problems:
                        _check_totals(header, count, total, problems)
                    problems.raise_if_any("pain.001 not written")
            xf.write("\n")
        spool.write(b"\n")
    return count, total


def _check_totals(header: BatchHeader, count: int, total: int, problems: _Problems) -> None:
    if count != header.number_of_transactions:
        problems.add(
            None,
            "nb_of_txs",
            f"header says {header.number_of_transactions} transactions but {count} were given",
        )
    if total != header.control_sum:
        problems.add(
            None, "ctrl_sum", f"header control sum is {header.control_sum} but lines total {total}"
        )


def _pain001_schema() -> etree.XMLSchema:
    # Built per call (about 3 ms) so that no XMLSchema object is shared between threads.
    return etree.XMLSchema(etree.parse(str(PAIN001_XSD), _safe_parser()))


def _safe_parser() -> etree.XMLParser:
    """Return a parser that never loads a DTD, expands entities or touches the network."""
    # A new parser each call, because lxml parsers must not be shared between threads.
    return etree.XMLParser(**_HARDENED)


def _local(tag: object) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _decimal(text: str | None) -> Decimal | None:
    try:
        return Decimal((text or "").strip())
    except InvalidOperation:
        return None


class _Tally:
    """Count and sum the transactions of one pain.001 PmtInf or of the whole message."""

    def __init__(self, line: int | None, where: str) -> None:
        self.line = line
        self.where = where
        self.count = 0
        self.total = Decimal(0)
        self.declared_count: Decimal | None = None
        self.declared_sum: Decimal | None = None

    def compare(self, problems: _Problems) -> None:
        if self.declared_count is not None and self.declared_count != self.count:
            problems.add(
                self.line,
                "nb_of_txs",
                f"{self.where} NbOfTxs is {self.declared_count} but has {self.count} transactions",
            )
        if self.declared_sum is not None and self.declared_sum != self.total:
            problems.add(
                self.line,
                "ctrl_sum",
                f"{self.where} CtrlSum is {self.declared_sum} but InstdAmt total {self.total}",
            )


def validate_pain001(source: str | os.PathLike | BinaryIO) -> tuple[int, int]:
    """Validate a pain.001.001.09 file against the XSD and its own totals; return (count, total).

    The file is streamed and parsed elements are dropped, so memory stays flat with size.
    NbOfTxs and CtrlSum, where present, must equal the counted transactions and summed InstdAmt.
    """
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as file:
            return _validate_pain001(file)
    return _validate_pain001(source)


def _validate_pain001(stream: BinaryIO) -> tuple[int, int]:
    seekable = getattr(stream, "seekable", None)
    start = stream.tell() if seekable is not None and seekable() else None
    checks = _Problems()
    message = _Tally(None, "GrpHdr")
    events = etree.iterparse(
        _PrologGuard(stream), events=("start", "end"), schema=_pain001_schema(), **_STREAMING
    )
    # Streaming schema errors land in lxml's per-thread log, which keeps earlier files' errors.
    etree.clear_error_log()
    try:
        _walk_pain001(events, message, checks)
    except etree.XMLSyntaxError as exc:
        # Parse and schema errors come first: the totals of a malformed file mean little.
        problems = _Problems()
        parse_error = _parse_error(stream, start) if start is not None else None
        if parse_error is not None:
            problems.add(*parse_error)
        _add_syntax_error(exc, problems, have_parse_error=parse_error is not None)
        for error in checks.errors:
            problems.add(error["line"], error["code"], error["message"])
        problems.raise_if_any("pain.001 is not valid")
    checks.raise_if_any("pain.001 is not valid")
    return message.count, int(message.total)


class _PrologGuard:
    """Hand a stream to the parser, refusing a DOCTYPE or a non-UTF-8 prolog before it is parsed."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.buffer: bytes | None = None

    def read(self, size: int = -1) -> bytes:
        if self.buffer is None:
            self.buffer = self._read_prolog()
        if not self.buffer:
            return self.raw.read(size)
        if size < 0:
            data, self.buffer = self.buffer + self.raw.read(), b""
        else:
            data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def _read_prolog(self) -> bytes:
        """Read up to the root element's start tag and check what comes before it."""
        head = bytearray()
        check_at = 512
        while True:
            chunk = self.raw.read(8192)
            head += chunk
            # Checking at doubling sizes keeps a stream of tiny reads linear.
            if chunk and len(head) < check_at:
                continue
            body = _strip_bom(bytes(head))
            declared = _DECLARED_ENCODING.match(body)
            if b"\0" in body or (declared and declared[1].lower() not in (b"utf-8", b"utf8")):
                self._refuse("encoding", "a pain.001 file must be UTF-8")
            if _DOCTYPE.match(body):
                self._refuse("xml_doctype", "a DOCTYPE is not allowed")
            if _PROLOG_END.match(body) or not chunk:
                # The root element has begun, or the file ended: no DOCTYPE can follow.
                return bytes(head)
            if len(head) > _PROLOG_BYTES:
                self._refuse("xml", "no root element in the first 64 KiB")
            check_at = 2 * len(head)

    def _refuse(self, code: str, message: str) -> None:
        raise BankFileError(f"pain.001 is not valid: {message}", [_error(None, code, message)])


def _walk_pain001(events: Iterable, message: _Tally, problems: _Problems) -> None:
    """Tally transactions and compare them with NbOfTxs and CtrlSum as the parse streams by."""
    payment = _Tally(None, "PmtInf")
    for event, elem in events:
        name = _local(elem.tag)
        if event == "start":
            if elem.getparent() is None and elem.getroottree().docinfo.doctype:
                problems.add(elem.sourceline, "xml_doctype", "a DOCTYPE is not allowed")
                return
            if name == "PmtInf":
                payment = _Tally(elem.sourceline, f"PmtInf on line {elem.sourceline}")
            continue
        parent = elem.getparent()
        if name == "CdtTrfTxInf":
            _tally_transaction(elem, message, payment, problems)
        elif name in ("NbOfTxs", "CtrlSum") and parent is not None:
            if _local(parent.tag) == "PmtInf":
                _declare(payment, name, elem.text)
            elif _local(parent.tag) == "GrpHdr":
                message.line = parent.sourceline
                _declare(message, name, elem.text)
            continue
        elif name == "PmtInf":
            payment.compare(problems)
        elif name != "GrpHdr":
            continue
        _drop(elem)
    message.compare(problems)


def _drop(elem: etree._Element) -> None:
    """Free an element that has been read, and its earlier siblings, to keep memory flat."""
    elem.clear(keep_tail=True)
    while elem.getprevious() is not None:
        del elem.getparent()[0]


def _declare(tally: _Tally, name: str, text: str | None) -> None:
    value = _decimal(text)
    if name == "NbOfTxs":
        tally.declared_count = value
    else:
        tally.declared_sum = value


def _tally_transaction(
    elem: etree._Element, message: _Tally, payment: _Tally, problems: _Problems
) -> None:
    amt = _child(elem, "Amt")
    amount_elem = _child(amt, "InstdAmt") if amt is not None else None
    amount = _decimal(amount_elem.text) if amount_elem is not None else None
    if amount_elem is None or amount is None:
        problems.add(elem.sourceline, "amount", "transaction has no InstdAmt")
        return
    if amount_elem.get("Ccy") != "KRW":
        problems.add(amount_elem.sourceline, "currency", "InstdAmt currency is not KRW")
    if amount != amount.to_integral_value():
        # Won have no minor unit.
        problems.add(amount_elem.sourceline, "amount", f"KRW amount {amount} has decimals")
    for tally in (message, payment):
        tally.count += 1
        tally.total += amount


def _add_syntax_error(
    exc: etree.XMLSyntaxError, problems: _Problems, *, have_parse_error: bool
) -> None:
    entries = [e for e in exc.error_log if e.level_name in ("ERROR", "FATAL")]
    if not entries and not have_parse_error:
        problems.add(exc.lineno or None, "xml", f"not well-formed XML: {exc}")
    for entry in entries:
        code = "schema" if entry.domain_name == "SCHEMASV" else "xml"
        # Streaming schema validation reports line 0: the position is not known.
        problems.add(entry.line or None, code, entry.message)


def _parse_error(stream: BinaryIO, start: int) -> tuple[int | None, str, str] | None:
    """Read the stream again without the schema; return its well-formedness error, if any."""
    # With a schema, lxml reports parse errors without their message and outside the error log.
    stream.seek(start)
    try:
        for _, elem in etree.iterparse(stream, **_HARDENED):
            _drop(elem)
    except etree.XMLSyntaxError as exc:
        return exc.lineno or None, "xml", f"not well-formed XML: {exc.msg}"
    return None


def _strip_bom(data: bytes) -> bytes:
    return data[len(codecs.BOM_UTF8) :] if data.startswith(codecs.BOM_UTF8) else data


def parse_result_file(data: bytes) -> list[ResultLine]:
    """Parse a bank result file: pain.002 if it starts with '<', else the result CSV."""
    if _strip_bom(data).lstrip().startswith(b"<"):
        return parse_pain002(data)
    return parse_result_csv(data)


def parse_result_csv(data: bytes) -> list[ResultLine]:
    """Parse the bank's result CSV; raise BankFileError listing every problem with its line."""
    problems = _Problems()
    body = _strip_bom(data)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body[: exc.start].count(b"\n") + 1
        problems.add(line, "encoding", f"not UTF-8: byte {body[exc.start]:#04x} cannot be decoded")
        problems.raise_if_any("result CSV rejected")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    results: list[ResultLine] = []
    first_line: dict[str, int] = {}
    header_seen = False
    line = 1
    try:
        for row in reader:
            start, line = line, reader.line_num + 1
            if not row:
                continue
            if not header_seen:
                header_seen = True
                if tuple(name.strip() for name in row) != RESULT_CSV_HEADER:
                    problems.add(
                        start, "header", f"header must be {','.join(RESULT_CSV_HEADER)}, got {row}"
                    )
                    break
                continue
            result = _result_row(row, start, first_line, problems)
            if result is not None:
                results.append(result)
            if problems.full:
                break
    except csv.Error as exc:
        problems.add(line, "csv", f"cannot parse CSV: {exc}")
    if not problems and not results:
        problems.add(None, "empty_file", "the file has no result rows")
    problems.raise_if_any("result CSV rejected")
    return results


def _result_row(
    row: list[str], line: int, first_line: dict[str, int], problems: _Problems
) -> ResultLine | None:
    if len(row) != len(RESULT_CSV_HEADER):
        problems.add(line, "columns", f"expected {len(RESULT_CSV_HEADER)} fields, got {len(row)}")
        return None
    reference, result, reason = (value.strip() for value in row)
    result = result.lower()
    ok = True
    if not _REFERENCE.fullmatch(reference):
        problems.add(line, "reference", f"reference {reference!r} is not 1-35 of A-Z a-z 0-9 -")
        ok = False
    elif reference in first_line:
        problems.add(
            line,
            "duplicate_reference",
            f"reference {reference!r} is on lines {first_line[reference]} and {line}",
        )
        ok = False
    else:
        first_line[reference] = line
    if result not in ("paid", "failed"):
        problems.add(line, "result", f"result {row[1]!r} is not paid or failed")
        ok = False
    elif result == "failed" and not reason:
        problems.add(line, "reason_required", f"failed transfer {reference!r} has no reason")
        ok = False
    return ResultLine(line, reference, result, reason) if ok else None


def parse_pain002(data: bytes) -> list[ResultLine]:
    """Parse a pain.002 payment status report of any version; raise BankFileError on problems."""
    problems = _Problems()
    body = _strip_bom(data).lstrip()
    if not body:
        problems.add(None, "empty_file", "the file is empty")
    elif _DOCTYPE.match(body):
        # Refused before parsing: a DTD is how entity-expansion and external-entity attacks work.
        problems.add(None, "xml_doctype", "a DOCTYPE is not allowed")
    problems.raise_if_any("pain.002 rejected")
    try:
        root = etree.fromstring(body, _safe_parser())
    except etree.XMLSyntaxError as exc:
        problems.add(exc.lineno or None, "xml", f"not well-formed XML: {exc.msg}")
        problems.raise_if_any("pain.002 rejected")
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        problems.add(None, "xml_doctype", "a DOCTYPE is not allowed")
        problems.raise_if_any("pain.002 rejected")

    report = root if _local(root.tag) == "CstmrPmtStsRpt" else _child(root, "CstmrPmtStsRpt")
    if report is None:
        problems.add(root.sourceline, "not_pain002", "no CstmrPmtStsRpt message in the document")
        problems.raise_if_any("pain.002 rejected")

    results: list[ResultLine] = []
    first_index: dict[str, int] = {}
    for index, tx in enumerate(_transactions(report), start=1):
        result = _status_row(tx, index, first_index, problems)
        if result is not None:
            results.append(result)
        if problems.full:
            break
    if not problems and not results:
        problems.add(None, "empty_file", "the report has no TxInfAndSts")
    problems.raise_if_any("pain.002 rejected")
    return results


def _child(elem: etree._Element, name: str) -> etree._Element | None:
    return next((c for c in elem if _local(c.tag) == name), None)


def _child_text(elem: etree._Element, name: str) -> str:
    child = _child(elem, name)
    return (child.text or "").strip() if child is not None else ""


def _transactions(report: etree._Element) -> Iterator[etree._Element]:
    for child in report:
        name = _local(child.tag)
        if name == "TxInfAndSts":
            yield child
        elif name == "OrgnlPmtInfAndSts":
            yield from (tx for tx in child if _local(tx.tag) == "TxInfAndSts")


def _status_row(
    tx: etree._Element, index: int, first_index: dict[str, int], problems: _Problems
) -> ResultLine | None:
    where = f"TxInfAndSts on line {tx.sourceline}"
    reference = _child_text(tx, "OrgnlEndToEndId") or _child_text(tx, "OrgnlInstrId")
    status = _child_text(tx, "TxSts").upper()
    ok = True
    if not reference:
        problems.add(index, "reference", f"{where} has no OrgnlEndToEndId or OrgnlInstrId")
        ok = False
    elif reference in first_index:
        problems.add(
            index,
            "duplicate_reference",
            f"reference {reference!r} is in transactions {first_index[reference]} and {index}",
        )
        ok = False
    else:
        first_index[reference] = index
    if not status:
        problems.add(index, "status", f"{where} has no TxSts")
        ok = False
    if not ok:
        return None
    if status in _PAID:
        return ResultLine(index, reference, "paid", "")
    if status == _REJECTED:
        return ResultLine(index, reference, "failed", _rejection_reason(tx) or status)
    return ResultLine(index, reference, "pending", status)


def _rejection_reason(tx: etree._Element) -> str:
    reasons = []
    for info in (c for c in tx if _local(c.tag) == "StsRsnInf"):
        rsn = _child(info, "Rsn")
        parts = [(_child_text(rsn, "Cd") or _child_text(rsn, "Prtry")) if rsn is not None else ""]
        parts += [(c.text or "").strip() for c in info if _local(c.tag) == "AddtlInf"]
        text = ": ".join(part for part in parts if part)
        if text:
            reasons.append(text)
    return "; ".join(reasons)

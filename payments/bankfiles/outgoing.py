"""Write outgoing bank transfer files: the bank CSV and ISO 20022 pain.001.001.09.

Nothing reaches the caller's stream unless every line is valid and the totals match the header.
"""

import csv
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any, BinaryIO

from lxml import etree

from payments.bankfiles.common import _REFERENCE, BatchHeader, TransferLine, _Problems

PAIN001_NS = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"

CSV_HEADER = ("reference", "bank_code", "account_number", "account_holder", "amount", "memo")

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
    # Never echo the value: an account number must not reach an error message or a log.
    return f"{field} is not {rule}"


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

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
from typing import BinaryIO

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


def _plainly_fit(line: TransferLine) -> bool:
    """Whether every check of _line_problems passes, by a shorter road taken line by line.

    False only sends the line through _line_problems, which names what is wrong, if anything.
    """
    holder, memo, amount = line.account_holder, line.memo, line.amount
    return bool(
        type(amount) is int
        and 0 < amount <= _MAX_AMOUNT
        and type(holder) is str
        and len(holder) <= 70
        and holder.isprintable()
        and holder.strip()
        and type(memo) is str
        and len(memo) <= 140
        and memo.isprintable()
        and type(line.reference) is str
        and _REFERENCE.fullmatch(line.reference)
        and type(line.bank_code) is str
        and _BANK_CODE.fullmatch(line.bank_code)
        and type(line.account_number) is str
        and _ACCOUNT.fullmatch(line.account_number)
    )


def _check_line(line: TransferLine, position: int, seen: set[str], problems: _Problems) -> bool:
    """Record the problems of one line; return whether it is fit to write."""
    found = [] if _plainly_fit(line) else _line_problems(line)
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


def _escape(text: str) -> str:
    """Escape text content as libxml2 does: &, < and >; no control character passes _check_line."""
    if "&" in text or "<" in text or ">" in text:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text


def _nested(names: str, text: str, depth: int) -> str:
    """The slash-separated chain of elements names around text, indented from depth on.

    Every element starts on a new line two spaces deeper than its parent, leaves hold their
    text inline, and every closing tag of a parent has a line of its own.
    """
    first, _, rest = names.partition("/")
    pad = "\n" + "  " * depth
    if not rest:
        return f"{pad}<{first}>{text}</{first}>"
    return f"{pad}<{first}>{_nested(rest, text, depth + 1)}{pad}</{first}>"


def _template(names: str, depth: int) -> str:
    """_nested with a {} where the text goes (element names hold no braces)."""
    return _nested(names, "{}", depth)


# One transaction at the depth of PmtInf's children; the memo's RmtInf only when there is one.
_TRANSACTION = "".join(
    (
        "\n      <CdtTrfTxInf>",
        "\n        <PmtId>",
        _template("InstrId", 5),
        _template("EndToEndId", 5),
        "\n        </PmtId>",
        "\n        <Amt>",
        '\n          <InstdAmt Ccy="KRW">{}</InstdAmt>',
        "\n        </Amt>",
        _template("CdtrAgt/FinInstnId/ClrSysMmbId/MmbId", 4),
        _template("Cdtr/Nm", 4),
        _template("CdtrAcct/Id/Othr/Id", 4),
        "{}",
        "\n      </CdtTrfTxInf>",
    )
)
_REMITTANCE = _template("RmtInf/Ustrd", 4)

# Transactions gathered before they are encoded and written: the file streams in pieces.
_FLUSH_EVERY = 1000


def _transaction(line: TransferLine) -> str:
    # Ustrd must not be empty, so a transfer without memo has no RmtInf at all.
    memo = _REMITTANCE.format(_escape(line.memo)) if line.memo else ""
    reference = line.reference
    return _TRANSACTION.format(
        reference,
        reference,
        line.amount,
        line.bank_code,
        _escape(line.account_holder),
        line.account_number,
        memo,
    )


def _head(header: BatchHeader) -> str:
    """The document up to the first transaction."""
    party = _escape(header.initiating_party)
    return "".join(
        (
            f'<Document xmlns="{PAIN001_NS}">',
            "\n  <CstmrCdtTrfInitn>",
            "\n    <GrpHdr>",
            _nested("MsgId", _escape(header.message_id), 3),
            _nested("CreDtTm", header.created_at.isoformat(timespec="seconds"), 3),
            _nested("NbOfTxs", str(header.number_of_transactions), 3),
            _nested("CtrlSum", str(header.control_sum), 3),
            _nested("InitgPty/Nm", party, 3),
            "\n    </GrpHdr>",
            "\n    <PmtInf>",
            _nested("PmtInfId", _escape(header.payment_info_id), 3),
            _nested("PmtMtd", "TRF", 3),
            _nested("BtchBookg", "true", 3),
            _nested("NbOfTxs", str(header.number_of_transactions), 3),
            _nested("CtrlSum", str(header.control_sum), 3),
            _nested("ReqdExctnDt/Dt", header.execution_date.isoformat(), 3),
            _nested("Dbtr/Nm", party, 3),
            _nested("DbtrAcct/Id/Othr/Id", header.debtor_account, 3),
            _nested("DbtrAgt/FinInstnId/ClrSysMmbId/MmbId", header.debtor_bank_code, 3),
            _nested("ChrgBr", "SLEV", 3),
        )
    )


_TAIL = "\n    </PmtInf>\n  </CstmrCdtTrfInitn>\n</Document>\n"


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
        pending = [_head(header)]
        for position, line in enumerate(lines, start=1):
            if problems.full:
                break
            if _check_line(line, position, seen, problems) and not problems:
                pending.append(_transaction(line))
                count += 1
                total += line.amount
                if len(pending) >= _FLUSH_EVERY:
                    spool.write("".join(pending).encode("utf-8"))
                    pending.clear()
        if not problems:
            _check_totals(header, count, total, problems)
        problems.raise_if_any("pain.001 not written")
        pending.append(_TAIL)
        spool.write("".join(pending).encode("utf-8"))
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

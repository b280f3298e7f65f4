"""Validate a pain.001.001.09 file by streaming it through the XSD and checking its own totals.

Memory stays flat with file size, and a DOCTYPE or a non-UTF-8 prolog is refused before parsing.
"""

import os
import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import BinaryIO

from lxml import etree

from payments.bankfiles.common import (
    _DOCTYPE,
    _HARDENED,
    BankFileError,
    _error,
    _local,
    _Problems,
    _safe_parser,
    _strip_bom,
)

PAIN001_XSD = Path(__file__).parents[1] / "schemas" / "pain.001.001.09.xsd"

# With a schema, lxml skips fatal parse errors under resolve_entities=False, so a truncated file
# would pass. "internal" never loads external entities, and _PrologGuard keeps out any DTD, with
# which lxml's streaming validation crashes on the first entity.
_STREAMING = {**_HARDENED, "resolve_entities": "internal"}

_PROLOG_BYTES = 64 * 1024
_PROLOG_END = re.compile(rb"\s*(?:<\?.*?\?>\s*|<!--.*?-->\s*)*<[^!?]", re.DOTALL)
_DECLARED_ENCODING = re.compile(rb"<\?xml[^>]*?encoding\s*=\s*[\"']([^\"']*)[\"']")


def _pain001_schema() -> etree.XMLSchema:
    # Built per call (about 3 ms) so that no XMLSchema object is shared between threads.
    return etree.XMLSchema(etree.parse(str(PAIN001_XSD), _safe_parser()))


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
        _PrologGuard(stream),
        events=("start", "end"),
        tag=_WALKED,
        schema=_pain001_schema(),
        **_STREAMING,
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


_QUOTED_VALUE = re.compile(r"(value\s+)'[^']*'")
_LONG_DIGITS = re.compile(r"\d{6,}")


def _without_values(message: str) -> str:
    """libxml2 may quote the offending value, which could be an account: keep it out."""
    return _LONG_DIGITS.sub("…", _QUOTED_VALUE.sub(r"\1'…'", message))


# The elements the walk reads, in any namespace: libxml2 still parses and validates every
# element, but only these reach Python (a transaction has about twenty others).
_WALKED = ("{*}GrpHdr", "{*}PmtInf", "{*}NbOfTxs", "{*}CtrlSum", "{*}CdtTrfTxInf")


def _walk_pain001(events: Iterable, message: _Tally, problems: _Problems) -> None:
    """Tally transactions and compare them with NbOfTxs and CtrlSum as the parse streams by."""
    payment = _Tally(None, "PmtInf")
    first = True
    for event, elem in events:
        if first:
            first = False
            tree = elem.getroottree()
            if tree.docinfo.doctype:
                problems.add(tree.getroot().sourceline, "xml_doctype", "a DOCTYPE is not allowed")
                return
        name = _local(elem.tag)
        if event == "start":
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
    # The first Amt child, then its first InstdAmt child, in any namespace.
    amt = elem.find("{*}Amt")
    amount_elem = amt.find("{*}InstdAmt") if amt is not None else None
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
        problems.add(entry.line or None, code, _without_values(entry.message))


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

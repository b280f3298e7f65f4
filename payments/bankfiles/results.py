"""Read the bank's result files, the result CSV and pain.002 status reports, into ResultLines.

Problems are raised together in one BankFileError, each with its line or transaction number.
"""

import csv
import io
from collections.abc import Iterator

from lxml import etree

from payments.bankfiles.common import (
    _DOCTYPE,
    _HARDENED,
    _REFERENCE,
    ResultLine,
    _child,
    _local,
    _Problems,
    _safe_parser,
    _strip_bom,
)

RESULT_CSV_HEADER = ("reference", "result", "reason")

_PAID = frozenset({"ACSC", "ACCC"})
_REJECTED = "RJCT"


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
    row: list[str], line: int, first_line: dict[str, int] | None, problems: _Problems
) -> ResultLine | None:
    if len(row) != len(RESULT_CSV_HEADER):
        problems.add(line, "columns", f"expected {len(RESULT_CSV_HEADER)} fields, got {len(row)}")
        return None
    reference, result, reason = (value.strip() for value in row)
    result = result.lower()
    ok = True
    if not _REFERENCE.fullmatch(reference):
        # The malformed value is not echoed: the column may hold anything, an account too.
        problems.add(line, "reference", "reference is not 1-35 of A-Z a-z 0-9 -")
        ok = False
    elif first_line is not None and reference in first_line:
        problems.add(
            line,
            "duplicate_reference",
            f"reference {reference!r} is on lines {first_line[reference]} and {line}",
        )
        ok = False
    elif first_line is not None:
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
    tx: etree._Element, index: int, first_index: dict[str, int] | None, problems: _Problems
) -> ResultLine | None:
    where = f"TxInfAndSts on line {tx.sourceline}"
    reference = _child_text(tx, "OrgnlEndToEndId") or _child_text(tx, "OrgnlInstrId")
    status = _child_text(tx, "TxSts").upper()
    ok = True
    if not reference:
        problems.add(index, "reference", f"{where} has no OrgnlEndToEndId or OrgnlInstrId")
        ok = False
    elif first_index is not None and reference in first_index:
        problems.add(
            index,
            "duplicate_reference",
            f"reference {reference!r} is in transactions {first_index[reference]} and {index}",
        )
        ok = False
    elif first_index is not None:
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


# Streaming: a result file of a whole round read from a stream, one line at a time.

_HEAD_BYTES = 64 * 1024


class _Prefixed(io.RawIOBase):
    """A binary stream that gives back the bytes already read from its head first."""

    def __init__(self, head: bytes, rest) -> None:
        self._head, self._rest = memoryview(head), rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n], self._head = self._head[:n], self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def iter_result_file(stream) -> Iterator[ResultLine]:
    """Yield the lines of a bank result file read from a binary stream, as parse_result_file
    reads them, holding one line (or transaction) at a time.

    References repeated across the file are not looked for here (that would hold every
    reference): the caller does it. Problems are raised together in one BankFileError once
    the file is read (or once MAX_ERRORS of them are found), after the good lines: a caller
    applies nothing before the end.
    """
    head = stream.read(_HEAD_BYTES)
    source = io.BufferedReader(_Prefixed(head, stream), buffer_size=_HEAD_BYTES)
    if _strip_bom(head).lstrip().startswith(b"<"):
        return _iter_pain002(head, source)
    return _iter_result_csv(source)


def _iter_result_csv(source) -> Iterator[ResultLine]:
    problems = _Problems()
    text = io.TextIOWrapper(source, encoding="utf-8-sig", newline="")
    reader = csv.reader(text, strict=True)
    header_seen = found = False
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
            result = _result_row(row, start, None, problems)
            if result is not None:
                found = True
                yield result
            if problems.full:
                break
    except UnicodeDecodeError as exc:
        # Decoded a block at a time: the line is the first one of the block that failed.
        byte = exc.object[exc.start]
        problems.add(line, "encoding", f"not UTF-8: byte {byte:#04x} cannot be decoded")
    except csv.Error as exc:
        problems.add(line, "csv", f"cannot parse CSV: {exc}")
    if not problems and not found:
        problems.add(None, "empty_file", "the file has no result rows")
    problems.raise_if_any("result CSV rejected")


def _in_report(tx: etree._Element) -> bool:
    parent = tx.getparent()
    if parent is None:
        return False
    if _local(parent.tag) == "OrgnlPmtInfAndSts":
        parent = parent.getparent()
    return parent is not None and _local(parent.tag) == "CstmrPmtStsRpt"


def _iter_pain002(head: bytes, source) -> Iterator[ResultLine]:
    problems = _Problems()
    body = _strip_bom(head).lstrip()
    if not body:
        problems.add(None, "empty_file", "the file is empty")
    elif _DOCTYPE.match(body):
        # Refused before parsing: a DTD is how entity-expansion and external-entity attacks work.
        problems.add(None, "xml_doctype", "a DOCTYPE is not allowed")
    problems.raise_if_any("pain.002 rejected")
    events = etree.iterparse(
        source,
        events=("start", "end"),
        tag=("{*}CstmrPmtStsRpt", "{*}TxInfAndSts", "CstmrPmtStsRpt", "TxInfAndSts"),
        **_HARDENED,
    )
    report_seen = found = checked = False
    index = 0
    try:
        for event, elem in events:
            if not checked:
                checked = True
                docinfo = elem.getroottree().docinfo
                if docinfo.doctype or docinfo.internalDTD is not None:
                    problems.add(None, "xml_doctype", "a DOCTYPE is not allowed")
                    break
            if _local(elem.tag) == "CstmrPmtStsRpt":
                report_seen = report_seen or event == "start"
                continue
            if event != "end":
                continue
            if _in_report(elem):
                index += 1
                result = _status_row(elem, index, None, problems)
                if result is not None:
                    found = True
                    yield result
            # What is read is let go: the tree never holds more than the transaction at hand.
            elem.clear(keep_tail=True)
            parent = elem.getparent()
            while parent is not None and elem.getprevious() is not None:
                del parent[0]
            if problems.full:
                break
    except etree.XMLSyntaxError as exc:
        problems.add(exc.lineno or None, "xml", f"not well-formed XML: {exc.msg}")
    if not problems and not report_seen:
        problems.add(None, "not_pain002", "no CstmrPmtStsRpt message in the document")
    if not problems and not found:
        problems.add(None, "empty_file", "the report has no TxInfAndSts")
    problems.raise_if_any("pain.002 rejected")

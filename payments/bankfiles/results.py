"""Read the bank's result files, the result CSV and pain.002 status reports, into ResultLines.

Problems are raised together in one BankFileError, each with its line or transaction number.
"""

import csv
import io
from collections.abc import Iterator

from lxml import etree

from payments.bankfiles.common import (
    _DOCTYPE,
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
    row: list[str], line: int, first_line: dict[str, int], problems: _Problems
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

"""Errors, records and helpers shared by the bank file writers, validator and result parsers.

Problems are collected and raised together; XML is parsed without DTDs, entities or network.
"""

import codecs
import re
from dataclasses import dataclass
from datetime import date, datetime

from lxml import etree

MAX_ERRORS = 100

_REFERENCE = re.compile(r"[A-Za-z0-9-]{1,35}")

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


def _safe_parser() -> etree.XMLParser:
    """Return a parser that never loads a DTD, expands entities or touches the network."""
    # A new parser each call, because lxml parsers must not be shared between threads.
    return etree.XMLParser(**_HARDENED)


def _local(tag: object) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _strip_bom(data: bytes) -> bytes:
    return data[len(codecs.BOM_UTF8) :] if data.startswith(codecs.BOM_UTF8) else data


def _child(elem: etree._Element, name: str) -> etree._Element | None:
    return next((c for c in elem if _local(c.tag) == name), None)

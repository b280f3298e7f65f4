"""pain.001 validation refuses what the XSD alone lets through, and a prolog that never ends."""

import io

import pytest
import xmlschema
from lxml import etree

from payments.bankfiles import PAIN001_XSD, BankFileError, validate_pain001, validation
from payments.bankfiles.common import _HARDENED, _Problems
from tests.payments.test_bankfiles import codes, make_line, pain001_bytes


def test_an_equivalent_amount_instead_of_instdamt_fails_validation():
    data = pain001_bytes([make_line(1, amount=1000)], control_sum=1000)
    equivalent = data.replace(
        b'<InstdAmt Ccy="KRW">1000</InstdAmt>',
        b'<EqvtAmt><Amt Ccy="KRW">1000</Amt><CcyOfTrf>KRW</CcyOfTrf></EqvtAmt>',
    )
    assert equivalent != data

    # The XSD allows either; the transfer would not be counted in the totals.
    xmlschema.XMLSchema(str(PAIN001_XSD)).validate(equivalent.decode("utf-8"))
    with pytest.raises(BankFileError) as exc_info:
        validate_pain001(io.BytesIO(equivalent))
    assert "amount" in [code for _, code in codes(exc_info)]


def test_a_prolog_of_hundreds_of_kib_fails_validation():
    data = pain001_bytes([make_line(1)])
    declaration, newline, rest = data.partition(b"\n")
    padded = declaration + newline + b"<!--" + b"x" * (256 * 1024) + b"-->\n" + rest

    with pytest.raises(BankFileError) as exc_info:
        validate_pain001(io.BytesIO(padded))
    assert codes(exc_info) == [(None, "xml")]
    assert "64 KiB" in str(exc_info.value)


def test_the_walk_refuses_a_doctype_that_got_past_the_prolog_check():
    # Second line of defence: the walk itself, fed a parse that skipped _PrologGuard.
    data = pain001_bytes([make_line(1)])
    declaration, newline, rest = data.partition(b"\n")
    doctyped = declaration + newline + b"<!DOCTYPE Document>\n" + rest
    events = etree.iterparse(
        io.BytesIO(doctyped), events=("start", "end"), tag=validation._WALKED, **_HARDENED
    )
    problems = _Problems()
    validation._walk_pain001(events, validation._Tally(None, "GrpHdr"), problems)
    assert [error["code"] for error in problems.errors] == ["xml_doctype"]

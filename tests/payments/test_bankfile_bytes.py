"""The bank files' bytes are pinned: a faster writer must not change one byte a bank receives.

The golden files were written by the lxml xmlfile writer that the string writer replaced.
"""

import io
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from payments.bankfiles import BatchHeader, TransferLine, write_csv, write_pain001

GOLDEN = Path(__file__).parent / "golden"
KST = timezone(timedelta(hours=9))


def golden_lines() -> list[TransferLine]:
    """Transfers that exercise every field: escaping, non-ASCII, limits and empty memos."""
    return [
        TransferLine(
            "BAEUM-P0000000001", "004", "12345678901234", "김민수", 500_000, "장학금 2026"
        ),
        TransferLine("BAEUM-P0000000002", "088", "1000000000", "A", 1, ""),
        TransferLine("R" * 35, "020", "1" * 16, "김" * 70, 999_999_999_999_000_000, "메" * 140),
        TransferLine(
            "BAEUM-P0000000004",
            "011",
            "3020000012345",
            'Tom & Jerry <Co> "O\'Neil"',
            123_456,
            "a&b <c> d>e \"f\" 'g' ]]> &amp;",
        ),
        TransferLine(
            "ref-with-dash", "003", "98765432109", "남궁\u3000민수 😀", 70_000, "  spaced  "
        ),
        TransferLine("BAEUM-P0000000006", "004", "11112222333344", "Ünïcödé ß", 2, 'x, "y"'),
    ]


def golden_header(lines: list[TransferLine]) -> BatchHeader:
    return BatchHeader(
        message_id="BAEUM-B0000000042",
        created_at=datetime(2026, 3, 4, 9, 30, 15, tzinfo=KST),
        execution_date=date(2026, 3, 5),
        initiating_party="서울특별시 <평생교육> & 진흥원",
        debtor_account="1005123456789",
        debtor_bank_code="020",
        payment_info_id="BAEUM-B0000000042-1",
        number_of_transactions=len(lines),
        control_sum=sum(line.amount for line in lines),
    )


def test_pain001_bytes_are_those_of_the_golden_file():
    lines = golden_lines()
    out = io.BytesIO()
    write_pain001(golden_header(lines), iter(lines), out)
    assert out.getvalue() == (GOLDEN / "pain001.xml").read_bytes()


def test_csv_bytes_are_those_of_the_golden_file():
    out = io.BytesIO()
    write_csv(iter(golden_lines()), out)
    assert out.getvalue() == (GOLDEN / "transfers.csv").read_bytes()

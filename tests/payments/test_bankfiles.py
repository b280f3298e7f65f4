"""Bank transfer files: CSV and pain.001 out, result CSV and pain.002 in."""

import csv
import io
import time
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import pytest
import xmlschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from payments import bankfiles
from payments.bankfiles import (
    CSV_HEADER,
    PAIN001_XSD,
    BankFileError,
    BatchHeader,
    ResultLine,
    TransferLine,
    parse_pain002,
    parse_result_csv,
    parse_result_file,
    validate_pain001,
    write_csv,
    write_pain001,
)

KST = timezone(timedelta(hours=9))
NS = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"}


def make_line(n: int = 1, **changes) -> TransferLine:
    line = TransferLine(
        reference=f"BAEUM-P{n:08d}",
        bank_code="004",
        account_number="12345678901234",
        account_holder="김민수",
        amount=500_000,
        memo="서울 평생학습 장학금 2025 1차",
    )
    return replace(line, **changes)


def make_lines(count: int = 3) -> list[TransferLine]:
    return [make_line(n, amount=100_000 * n) for n in range(1, count + 1)]


def make_header(lines: list[TransferLine], **changes) -> BatchHeader:
    header = BatchHeader(
        message_id="BAEUM-B0000000042",
        created_at=datetime(2025, 3, 4, 9, 30, 15, 123456, tzinfo=KST),
        execution_date=date(2025, 3, 5),
        initiating_party="서울특별시평생교육진흥원",
        debtor_account="1005123456789",
        debtor_bank_code="020",
        payment_info_id="BAEUM-B0000000042-1",
        number_of_transactions=len(lines),
        control_sum=sum(line.amount for line in lines),
    )
    return replace(header, **changes)


def pain001_bytes(lines: list[TransferLine], **header_changes) -> bytes:
    out = io.BytesIO()
    write_pain001(make_header(lines, **header_changes), lines, out)
    return out.getvalue()


def codes(exc_info: pytest.ExceptionInfo[BankFileError]) -> list[tuple[int | None, str]]:
    return [(error["line"], error["code"]) for error in exc_info.value.errors]


# --- bank CSV -------------------------------------------------------------------------------


def test_csv_round_trips_through_dictreader_with_the_exact_header():
    lines = make_lines(3)
    out = io.BytesIO()

    assert write_csv(lines, out) == (3, 600_000)

    data = out.getvalue()
    assert not data.startswith(b"\xef\xbb\xbf")
    assert data.count(b"\r\n") == 4
    reader = csv.DictReader(io.StringIO(data.decode("utf-8"), newline=""))
    assert tuple(reader.fieldnames) == CSV_HEADER
    rows = list(reader)
    assert [row["reference"] for row in rows] == [line.reference for line in lines]
    assert rows[1] == {
        "reference": "BAEUM-P00000002",
        "bank_code": "004",
        "account_number": "12345678901234",
        "account_holder": "김민수",
        "amount": "200000",
        "memo": "서울 평생학습 장학금 2025 1차",
    }


def test_csv_quotes_commas_and_quotes_in_memo_without_changing_them():
    line = make_line(memo='3월, "특별" 지급')
    out = io.BytesIO()
    write_csv([line], out)

    row = next(csv.DictReader(io.StringIO(out.getvalue().decode("utf-8"), newline="")))
    assert row["memo"] == '3월, "특별" 지급'


def test_csv_of_no_lines_is_just_the_header():
    out = io.BytesIO()
    assert write_csv([], out) == (0, 0)
    assert out.getvalue() == b"reference,bank_code,account_number,account_holder,amount,memo\r\n"


def test_same_input_gives_byte_identical_files():
    lines = make_lines(5)
    first_csv, second_csv = io.BytesIO(), io.BytesIO()
    write_csv(lines, first_csv)
    write_csv(iter(lines), second_csv)
    assert first_csv.getvalue() == second_csv.getvalue()

    assert pain001_bytes(lines) == pain001_bytes(list(lines))


# --- pain.001 out ---------------------------------------------------------------------------


def test_pain001_validates_with_lxml_and_independently_with_xmlschema():
    lines = make_lines(4)
    data = pain001_bytes(lines)

    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="urn:iso')
    assert validate_pain001(io.BytesIO(data)) == (4, 1_000_000)
    xmlschema.XMLSchema(str(PAIN001_XSD)).validate(data.decode("utf-8"))


def test_pain001_carries_the_header_and_one_transaction_per_line():
    lines = make_lines(3)
    root = etree.fromstring(pain001_bytes(lines))

    def text(path: str) -> list[str]:
        return [el.text for el in root.xpath(path, namespaces=NS)]

    assert text("//p:GrpHdr/p:NbOfTxs") == ["3"]
    assert text("//p:GrpHdr/p:CtrlSum") == ["600000"]
    assert text("//p:PmtInf/p:NbOfTxs") == ["3"]
    assert text("//p:PmtInf/p:CtrlSum") == ["600000"]
    assert text("//p:GrpHdr/p:CreDtTm") == ["2025-03-04T09:30:15+09:00"]
    assert text("//p:ReqdExctnDt/p:Dt") == ["2025-03-05"]
    assert text("//p:PmtMtd") == ["TRF"]
    assert text("//p:BtchBookg") == ["true"]
    assert text("//p:PmtInf/p:ChrgBr") == ["SLEV"]
    assert text("//p:DbtrAcct/p:Id/p:Othr/p:Id") == ["1005123456789"]
    assert text("//p:DbtrAgt/p:FinInstnId/p:ClrSysMmbId/p:MmbId") == ["020"]
    assert text("//p:CdtTrfTxInf/p:PmtId/p:EndToEndId") == [line.reference for line in lines]
    assert text("//p:CdtTrfTxInf/p:PmtId/p:InstrId") == [line.reference for line in lines]
    assert text("//p:InstdAmt") == ["100000", "200000", "300000"]
    assert {el.get("Ccy") for el in root.xpath("//p:InstdAmt", namespaces=NS)} == {"KRW"}
    assert text("//p:CdtrAgt/p:FinInstnId/p:ClrSysMmbId/p:MmbId") == ["004"] * 3
    assert text("//p:CdtrAcct/p:Id/p:Othr/p:Id") == ["12345678901234"] * 3
    assert text("//p:RmtInf/p:Ustrd") == ["서울 평생학습 장학금 2025 1차"] * 3


def test_korean_names_survive_as_utf8():
    lines = [make_line(1, account_holder="남궁 민수"), make_line(2, account_holder="황보혜정")]
    data = pain001_bytes(lines)

    assert "남궁 민수".encode() in data
    root = etree.fromstring(data)
    names = [el.text for el in root.xpath("//p:Cdtr/p:Nm", namespaces=NS)]
    assert names == ["남궁 민수", "황보혜정"]
    assert root.xpath("//p:InitgPty/p:Nm", namespaces=NS)[0].text == "서울특별시평생교육진흥원"


def test_an_empty_memo_leaves_out_remittance_information():
    data = pain001_bytes([make_line(memo="")])
    assert b"RmtInf" not in data
    assert validate_pain001(io.BytesIO(data)) == (1, 500_000)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"number_of_transactions": 4}, "nb_of_txs"),
        ({"number_of_transactions": 2}, "nb_of_txs"),
        ({"control_sum": 600_001}, "ctrl_sum"),
    ],
)
def test_header_that_disagrees_with_the_lines_raises_and_writes_nothing(changes, code):
    lines = make_lines(3)
    out = io.BytesIO()

    with pytest.raises(BankFileError) as exc_info:
        write_pain001(make_header(lines, **changes), lines, out)

    assert [error["code"] for error in exc_info.value.errors] == [code]
    assert out.getvalue() == b""


@pytest.mark.parametrize(
    "changes",
    [
        {"created_at": datetime(2025, 3, 4, 9, 30)},
        {"execution_date": datetime(2025, 3, 5, tzinfo=KST)},
        {"message_id": "M" * 36},
        {"debtor_account": "1005-123-456789"},
        {"debtor_bank_code": "20"},
        {"number_of_transactions": 0, "control_sum": 0},
    ],
)
def test_invalid_header_raises_before_writing(changes):
    lines = make_lines(1)
    out = io.BytesIO()
    with pytest.raises(BankFileError) as exc_info:
        write_pain001(make_header(lines, **changes), lines, out)
    assert {error["code"] for error in exc_info.value.errors} == {"header"}
    assert out.getvalue() == b""


BAD_FIELDS = [
    ("reference", "BAEUM P1", "reference"),
    ("reference", "", "reference"),
    ("reference", "R" * 36, "reference"),
    ("reference", "BAEUM-장학", "reference"),
    ("bank_code", "04", "bank_code"),
    ("bank_code", "0041", "bank_code"),
    ("bank_code", "O04", "bank_code"),
    ("account_number", "123456789", "account_number"),
    ("account_number", "1" * 17, "account_number"),
    ("account_number", "123-456-7890", "account_number"),
    ("account_number", "１２３４５６７８９０", "account_number"),
    ("account_holder", "", "account_holder"),
    ("account_holder", "   ", "account_holder"),
    ("account_holder", "김" * 71, "account_holder"),
    ("account_holder", "김민수\n", "account_holder"),
    ("account_holder", "김\u202emin", "account_holder"),
    ("amount", 0, "amount"),
    ("amount", -1000, "amount"),
    ("amount", 1000.0, "amount"),
    ("amount", "1000", "amount"),
    ("amount", True, "amount"),
    ("amount", 10**18, "amount"),
    ("memo", "m" * 141, "memo"),
    ("memo", "3월\r\n장학금", "memo"),
    ("memo", "tab\there", "memo"),
    ("memo", "nul\x00", "memo"),
]


@pytest.mark.parametrize("writer", ["csv", "pain001"])
@pytest.mark.parametrize(("field", "value", "code"), BAD_FIELDS)
def test_each_bad_line_field_raises_naming_the_line_and_writes_nothing(writer, field, value, code):
    bad = make_line(2, **{field: value})
    lines = [make_line(1), bad, make_line(3)]
    out = io.BytesIO()

    with pytest.raises(BankFileError) as exc_info:
        if writer == "csv":
            write_csv(lines, out)
        else:
            write_pain001(make_header([make_line(1)] * 3), lines, out)

    assert codes(exc_info) == [(2, code)]
    assert repr(bad.reference) in str(exc_info.value)
    assert out.getvalue() == b""


def test_fields_at_their_limits_are_written_unchanged():
    line = make_line(
        reference="R" * 35,
        account_number="1" * 16,
        account_holder="김" * 70,
        memo="메" * 140,
        amount=1,
    )
    short = make_line(2, account_number="1" * 10, account_holder="A", memo="")
    data = pain001_bytes([line, short])
    assert validate_pain001(io.BytesIO(data)) == (2, 500_001)
    assert ("김" * 70).encode() in data and ("메" * 140).encode() in data


@pytest.mark.parametrize("writer", ["csv", "pain001"])
def test_every_bad_line_and_a_duplicate_reference_are_reported_together(writer):
    lines = [
        make_line(1),
        make_line(2, bank_code="4"),
        make_line(1),
        make_line(4, amount=0, memo="\x07"),
    ]
    out = io.BytesIO()
    with pytest.raises(BankFileError) as exc_info:
        if writer == "csv":
            write_csv(lines, out)
        else:
            write_pain001(make_header(lines, control_sum=1), lines, out)

    assert codes(exc_info) == [
        (2, "bank_code"),
        (3, "duplicate_reference"),
        (4, "amount"),
        (4, "memo"),
    ]
    assert "'BAEUM-P00000001'" in exc_info.value.errors[1]["message"]


# --- pain.001 validation ----------------------------------------------------------------------


def test_hand_tampered_control_sum_fails_validation():
    data = pain001_bytes(make_lines(3))
    tampered = data.replace(b"<CtrlSum>600000</CtrlSum>", b"<CtrlSum>600100</CtrlSum>", 1)
    assert tampered != data

    # The XSD alone does not catch it.
    xmlschema.XMLSchema(str(PAIN001_XSD)).validate(tampered.decode("utf-8"))
    with pytest.raises(BankFileError) as exc_info:
        validate_pain001(io.BytesIO(tampered))
    assert codes(exc_info) == [(4, "ctrl_sum")]
    assert "600100" in str(exc_info.value)


def test_tampered_payment_information_totals_fail_validation():
    data = pain001_bytes(make_lines(3))
    head, sep, tail = data.partition(b"<PmtInf>")
    tail = tail.replace(b"<NbOfTxs>3</NbOfTxs>", b"<NbOfTxs>2</NbOfTxs>", 1)
    tail = tail.replace(b"<CtrlSum>600000</CtrlSum>", b"<CtrlSum>1</CtrlSum>", 1)

    with pytest.raises(BankFileError) as exc_info:
        validate_pain001(io.BytesIO(head + sep + tail))
    assert [code for _, code in codes(exc_info)] == ["nb_of_txs", "ctrl_sum"]


def test_a_removed_transaction_fails_validation():
    data = pain001_bytes(make_lines(3))
    start = data.rindex(b"      <CdtTrfTxInf>")
    end = data.rindex(b"</CdtTrfTxInf>") + len(b"</CdtTrfTxInf>\n")
    with pytest.raises(BankFileError) as exc_info:
        validate_pain001(io.BytesIO(data[:start] + data[end:]))
    assert {code for _, code in codes(exc_info)} == {"nb_of_txs", "ctrl_sum"}


@pytest.mark.parametrize(
    "remove",
    [
        b"<PmtMtd>TRF</PmtMtd>",
        b"<MsgId>BAEUM-B0000000042</MsgId>",
        b"<EndToEndId>BAEUM-P00000002</EndToEndId>",
    ],
)
def test_missing_required_element_fails_validation(remove):
    data = pain001_bytes(make_lines(3))
    tampered = data.replace(remove, b"", 1)
    assert tampered != data

    with pytest.raises(BankFileError) as exc_info:
        validate_pain001(io.BytesIO(tampered))
    assert exc_info.value.errors[0]["code"] == "schema"
    missing = remove[1 : remove.index(b">")].decode()
    assert missing in exc_info.value.errors[0]["message"]


def test_validation_errors_do_not_leak_between_calls():
    data = pain001_bytes(make_lines(2))
    with pytest.raises(BankFileError) as first:
        validate_pain001(io.BytesIO(data.replace(b"<PmtMtd>TRF</PmtMtd>", b"", 1)))
    with pytest.raises(BankFileError) as second:
        validate_pain001(io.BytesIO(data.replace(b"<ChrgBr>SLEV</ChrgBr>", b"<ChrgBr>X</ChrgBr>")))
    assert len(first.value.errors) == 1
    assert len(second.value.errors) == 1
    assert "ChrgBr" in second.value.errors[0]["message"]


def test_non_krw_or_fractional_amounts_fail_validation():
    data = pain001_bytes([make_line(1, amount=1000)], control_sum=1000)
    euro = data.replace(b'Ccy="KRW"', b'Ccy="EUR"')
    with pytest.raises(BankFileError) as exc_info:
        validate_pain001(io.BytesIO(euro))
    assert [code for _, code in codes(exc_info)] == ["currency"]

    cents = data.replace(b">1000<", b">1000.50<").replace(b">1000.50</CtrlSum>", b">1000</CtrlSum>")
    with pytest.raises(BankFileError) as exc_info:
        validate_pain001(io.BytesIO(cents))
    assert "amount" in [code for _, code in codes(exc_info)]


class OneWayStream(io.RawIOBase):
    """A stream that cannot seek and returns a few bytes per read, like a slow socket."""

    def __init__(self, data: bytes) -> None:
        self.data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self.data.read(min(len(buffer), 997))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_validate_reads_a_stream_that_cannot_seek():
    data = pain001_bytes(make_lines(3))
    assert validate_pain001(OneWayStream(data)) == (3, 600_000)


@pytest.mark.parametrize("stream", [io.BytesIO, OneWayStream])
def test_truncated_file_fails_validation(stream):
    data = pain001_bytes(make_lines(3))
    # Cut just before the closing tags: every transaction and both totals still agree.
    truncated = data[: data.index(b"    </PmtInf>")]
    with pytest.raises(BankFileError) as exc_info:
        validate_pain001(stream(truncated))
    assert [code for _, code in codes(exc_info)] == ["xml"]
    assert "Premature end of data" in exc_info.value.errors[0]["message"]


def test_broken_xml_fails_validation_with_the_parser_message_and_line():
    data = pain001_bytes(make_lines(3))

    broken = data.replace(b"</Cdtr>", b"</Cdtr_>", 1)
    line = broken[: broken.index(b"</Cdtr_>")].count(b"\n") + 1
    with pytest.raises(BankFileError) as exc_info:
        validate_pain001(io.BytesIO(broken))
    assert codes(exc_info) == [(line, "xml")]
    assert "mismatch" in exc_info.value.errors[0]["message"]


@pytest.mark.parametrize("stream", [io.BytesIO, OneWayStream])
@pytest.mark.parametrize(
    "doctype",
    [
        b"<!DOCTYPE Document>\n",
        b'<!-- bank --><!DOCTYPE Document [<!ENTITY a "AAAA">]>\n',
        b'<!DOCTYPE Document [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n',
    ],
)
def test_doctype_fails_validation_before_parsing(doctype, stream):
    data = pain001_bytes(make_lines(1))
    with_entity = data.replace(b"?>\n", b"?>\n" + doctype, 1).replace(b">004<", b">&a;<")
    with pytest.raises(BankFileError) as exc_info:
        validate_pain001(stream(with_entity))
    assert codes(exc_info) == [(None, "xml_doctype")]


def test_billion_laughs_pain001_is_refused_quickly():
    payload = BILLION_LAUGHS.replace(b"<Document>", f'<Document xmlns="{NS["p"]}">'.encode())
    started = time.perf_counter()
    with pytest.raises(BankFileError) as exc_info:
        validate_pain001(io.BytesIO(payload))
    assert time.perf_counter() - started < 5
    assert codes(exc_info) == [(None, "xml_doctype")]


@pytest.mark.parametrize(
    "encode",
    [
        lambda data: data.decode().encode("utf-16"),
        lambda data: data.replace(b'encoding="UTF-8"', b'encoding="UTF-7"'),
    ],
)
def test_a_pain001_that_is_not_utf8_fails_validation(encode):
    data = pain001_bytes(make_lines(1))
    with pytest.raises(BankFileError) as exc_info:
        validate_pain001(io.BytesIO(encode(data)))
    assert codes(exc_info) == [(None, "encoding")]


def test_validate_reads_paths(tmp_path):
    path = tmp_path / "batch.xml"
    path.write_bytes(pain001_bytes(make_lines(2)))
    assert validate_pain001(path) == (2, 300_000)
    assert validate_pain001(str(path)) == (2, 300_000)


def test_twenty_thousand_lines_stream_to_a_file_and_validate(tmp_path):
    count = 20_000

    def lines():
        # A generator: the writer must not need the lines as a list.
        for n in range(1, count + 1):
            yield make_line(n, amount=1000 + n % 997, account_holder=f"홍길동{n % 50}")

    total = sum(1000 + n % 997 for n in range(1, count + 1))
    path = tmp_path / "big.xml"
    header = make_header([], number_of_transactions=count, control_sum=total)
    with path.open("wb") as out:
        assert write_pain001(header, lines(), out) == (count, total)
    with path.open("rb") as source:
        assert validate_pain001(source) == (count, total)
    assert path.stat().st_size > 10_000_000


valid_text = st.characters(exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"))
transfer_lines = st.builds(
    TransferLine,
    reference=st.from_regex(r"[A-Za-z0-9-]{1,35}", fullmatch=True),
    bank_code=st.from_regex(r"[0-9]{3}", fullmatch=True),
    account_number=st.from_regex(r"[0-9]{10,16}", fullmatch=True),
    account_holder=st.text(valid_text, min_size=1, max_size=70).filter(str.strip),
    amount=st.integers(min_value=1, max_value=10**12),
    memo=st.text(valid_text, max_size=140),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(transfer_lines, min_size=1, max_size=8, unique_by=lambda line: line.reference))
def test_any_valid_lines_write_a_valid_pain001_and_csv(lines):
    total = sum(line.amount for line in lines)
    out = io.BytesIO()

    assert write_pain001(make_header(lines), lines, out) == (len(lines), total)
    assert validate_pain001(io.BytesIO(out.getvalue())) == (len(lines), total)
    root = etree.fromstring(out.getvalue())
    assert [el.text for el in root.xpath("//p:Cdtr/p:Nm", namespaces=NS)] == [
        line.account_holder for line in lines
    ]

    csv_out = io.BytesIO()
    assert write_csv(lines, csv_out) == (len(lines), total)
    rows = list(csv.DictReader(io.StringIO(csv_out.getvalue().decode("utf-8"), newline="")))
    assert [(row["account_holder"], row["memo"]) for row in rows] == [
        (line.account_holder, line.memo) for line in lines
    ]


# --- result CSV -------------------------------------------------------------------------------


def test_result_csv_is_parsed_with_line_numbers():
    data = (
        "\ufeff reference , result ,reason\r\n"
        "BAEUM-P00000001,paid,\r\n"
        "BAEUM-P00000002,FAILED,계좌 해지\r\n"
        "\r\n"
        'BAEUM-P00000003,Failed,"수취인 불일치,\n확인 필요"\r\n'
        "BAEUM-P00000004,paid,ok\r\n"
    ).encode()

    assert parse_result_csv(data) == [
        ResultLine(2, "BAEUM-P00000001", "paid", ""),
        ResultLine(3, "BAEUM-P00000002", "failed", "계좌 해지"),
        ResultLine(5, "BAEUM-P00000003", "failed", "수취인 불일치,\n확인 필요"),
        ResultLine(7, "BAEUM-P00000004", "paid", "ok"),
    ]


HEADER = b"reference,result,reason\r\n"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", [(None, "empty_file")]),
        (b"\xef\xbb\xbf", [(None, "empty_file")]),
        (HEADER, [(None, "empty_file")]),
        (HEADER + b"P-1,paid,\r\nP-2,failed,\xbf\xeb\r\n", [(3, "encoding")]),
        (b"ref,result,reason\r\nP-1,paid,\r\n", [(1, "header")]),
        (b"reference,reason,result\r\nP-1,,paid\r\n", [(1, "header")]),
        (b"reference,result\r\nP-1,paid\r\n", [(1, "header")]),
        (HEADER + b"P-1,paid\r\nP-2,paid,,extra\r\n", [(2, "columns"), (3, "columns")]),
        (
            HEADER + b",paid,\r\nP 2,paid,\r\n" + b"R" * 36 + b",paid,\r\n",
            [(2, "reference"), (3, "reference"), (4, "reference")],
        ),
        (HEADER + b"P-1,paid,\r\nP-2,done,\r\nP-3,pending,\r\n", [(3, "result"), (4, "result")]),
        (
            HEADER + b"P-1,failed,\r\nP-2,failed,  \r\n",
            [(2, "reason_required"), (3, "reason_required")],
        ),
        (HEADER + b"P-1,paid,\r\nP-2,paid,\r\nP-1,failed,x\r\n", [(4, "duplicate_reference")]),
        (HEADER + b'P-1,paid,\r\nP-2,"failed,x\r\n', [(3, "csv")]),
        (HEADER + b'P-1,"paid"x,\r\n', [(2, "csv")]),
    ],
)
def test_result_csv_rejects_the_whole_file_with_each_problem(data, expected):
    with pytest.raises(BankFileError) as exc_info:
        parse_result_csv(data)
    assert codes(exc_info) == expected


def test_duplicate_reference_names_both_lines():
    with pytest.raises(BankFileError) as exc_info:
        parse_result_csv(HEADER + b"P-1,paid,\r\nP-2,paid,\r\nP-1,paid,\r\n")
    assert "lines 2 and 4" in exc_info.value.errors[0]["message"]


def test_result_csv_collects_problems_of_every_kind_at_once_up_to_a_hundred():
    data = HEADER + b"P-1,paid\r\nP-2,maybe,\r\nP-3,failed,\r\n"
    with pytest.raises(BankFileError) as exc_info:
        parse_result_csv(data)
    assert codes(exc_info) == [(2, "columns"), (3, "result"), (4, "reason_required")]

    many = HEADER + b"".join(b"P-%d,lost,\r\n" % n for n in range(500))
    with pytest.raises(BankFileError) as exc_info:
        parse_result_csv(many)
    assert len(exc_info.value.errors) == 100
    assert exc_info.value.errors[-1]["line"] == 101


# --- pain.002 ---------------------------------------------------------------------------------


def pain002(transactions: str, version: str = "10", wrap: bool = True) -> bytes:
    body = transactions
    if wrap:
        body = (
            "<OrgnlPmtInfAndSts><OrgnlPmtInfId>BAEUM-B1-1</OrgnlPmtInfId>"
            f"{body}</OrgnlPmtInfAndSts>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.{version}">'
        "<CstmrPmtStsRpt><GrpHdr><MsgId>BANK-1</MsgId></GrpHdr>"
        "<OrgnlGrpInfAndSts><OrgnlMsgId>BAEUM-B1</OrgnlMsgId>"
        "<OrgnlMsgNmId>pain.001.001.09</OrgnlMsgNmId></OrgnlGrpInfAndSts>"
        f"{body}</CstmrPmtStsRpt></Document>"
    ).encode()


def tx(reference: str | None, status: str | None, extra: str = "", tag: str = "OrgnlEndToEndId"):
    ref = f"<{tag}>{reference}</{tag}>" if reference is not None else ""
    sts = f"<TxSts>{status}</TxSts>" if status is not None else ""
    return f"<TxInfAndSts>{ref}{sts}{extra}</TxInfAndSts>"


def test_pain002_maps_statuses_to_paid_failed_and_pending():
    data = pain002(
        tx("P-1", "ACSC")
        + tx("P-2", "ACCC")
        + tx(
            "P-3",
            "RJCT",
            "<StsRsnInf><Rsn><Cd>AC04</Cd></Rsn><AddtlInf>Closed account</AddtlInf>"
            "<AddtlInf>since 2024</AddtlInf></StsRsnInf>",
        )
        + tx("P-4", "RJCT", "<StsRsnInf><Rsn><Prtry>K123</Prtry></Rsn></StsRsnInf>")
        + tx("P-5", "RJCT")
        + tx("P-6", "PDNG")
        + tx("P-7", "ACTC")
        + tx("P-8", "acsp")
    )

    assert parse_pain002(data) == [
        ResultLine(1, "P-1", "paid", ""),
        ResultLine(2, "P-2", "paid", ""),
        ResultLine(3, "P-3", "failed", "AC04: Closed account: since 2024"),
        ResultLine(4, "P-4", "failed", "K123"),
        ResultLine(5, "P-5", "failed", "RJCT"),
        ResultLine(6, "P-6", "pending", "PDNG"),
        ResultLine(7, "P-7", "pending", "ACTC"),
        ResultLine(8, "P-8", "pending", "ACSP"),
    ]


@pytest.mark.parametrize("version", ["03", "10", "12"])
def test_pain002_of_any_version_and_layout_is_read(version):
    data = pain002(tx("P-1", "ACSC") + tx("P-2", "RJCT", tag="OrgnlInstrId"), version=version)
    assert [(r.reference, r.result) for r in parse_pain002(data)] == [
        ("P-1", "paid"),
        ("P-2", "failed"),
    ]

    flat = pain002(tx("P-9", "ACCC"), version=version, wrap=False)
    assert parse_pain002(flat) == [ResultLine(1, "P-9", "paid", "")]


def test_end_to_end_id_wins_over_instruction_id():
    data = pain002(
        "<TxInfAndSts><OrgnlInstrId>INSTR</OrgnlInstrId><OrgnlEndToEndId>P-1</OrgnlEndToEndId>"
        "<TxSts>ACSC</TxSts></TxInfAndSts>"
    )
    assert parse_pain002(data)[0].reference == "P-1"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", [(None, "empty_file")]),
        (b"  \r\n", [(None, "empty_file")]),
        (pain002(""), [(None, "empty_file")]),
        (b"<Document><CstmrPmtStsRpt>", [(1, "xml")]),
        (b"<Document><CstmrCdtTrfInitn/></Document>", [(1, "not_pain002")]),
        (pain002(tx(None, "ACSC") + tx("P-2", None)), [(1, "reference"), (2, "status")]),
        (pain002(tx("P-1", "ACSC") + tx("P-1", "RJCT")), [(2, "duplicate_reference")]),
    ],
)
def test_pain002_rejects_the_whole_file_with_each_problem(data, expected):
    with pytest.raises(BankFileError) as exc_info:
        parse_pain002(data)
    assert codes(exc_info) == expected


def test_result_file_is_sniffed_by_its_first_character():
    xml = b"\xef\xbb\xbf \r\n" + pain002(tx("P-1", "ACSC"))
    assert parse_result_file(xml) == [ResultLine(1, "P-1", "paid", "")]

    text = b"\xef\xbb\xbf" + HEADER + b"P-1,paid,\r\n"
    assert parse_result_file(text) == [ResultLine(2, "P-1", "paid", "")]

    with pytest.raises(BankFileError) as exc_info:
        parse_result_file(b"")
    assert codes(exc_info) == [(None, "empty_file")]


# --- hostile XML ------------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE Document [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Document><CstmrPmtStsRpt><TxInfAndSts>
<OrgnlEndToEndId>P-1</OrgnlEndToEndId><TxSts>RJCT</TxSts>
<StsRsnInf><AddtlInf>&lol9;</AddtlInf></StsRsnInf>
</TxInfAndSts></CstmrPmtStsRpt></Document>"""


def xxe_payload(secret_path) -> bytes:
    return (
        '<?xml version="1.0"?>\n'
        f'<!DOCTYPE Document [<!ENTITY xxe SYSTEM "{secret_path.as_uri()}">]>\n'
        "<Document><CstmrPmtStsRpt><TxInfAndSts>"
        "<OrgnlEndToEndId>P-1</OrgnlEndToEndId><TxSts>RJCT</TxSts>"
        "<StsRsnInf><AddtlInf>&xxe;</AddtlInf></StsRsnInf>"
        "</TxInfAndSts></CstmrPmtStsRpt></Document>"
    ).encode()


@pytest.mark.parametrize("parse", [parse_pain002, parse_result_file])
def test_billion_laughs_is_refused_without_expanding(parse):
    started = time.perf_counter()
    with pytest.raises(BankFileError) as exc_info:
        parse(BILLION_LAUGHS)
    assert time.perf_counter() - started < 5
    assert codes(exc_info) == [(None, "xml_doctype")]
    assert "lollol" not in str(exc_info.value)


@pytest.mark.parametrize("parse", [parse_pain002, parse_result_file])
def test_external_entity_is_refused_and_no_file_content_appears(parse, tmp_path):
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:TOP-SECRET-42\n")

    with pytest.raises(BankFileError) as exc_info:
        parse(xxe_payload(secret))
    assert codes(exc_info) == [(None, "xml_doctype")]
    assert "TOP-SECRET-42" not in str(exc_info.value)
    assert "TOP-SECRET-42" not in repr(exc_info.value.errors)


def test_doctype_after_a_comment_is_still_refused():
    data = b'<?xml version="1.0"?>\n<!-- bank --><?pi x?>\n<!DOCTYPE Document SYSTEM "x.dtd">\n'
    with pytest.raises(BankFileError) as exc_info:
        parse_pain002(data + pain002(tx("P-1", "ACSC")).split(b"?>\n", 1)[1])
    assert codes(exc_info) == [(None, "xml_doctype")]


def test_the_hardened_parser_itself_neither_expands_nor_reads_files(tmp_path):
    # Defence in depth: even past the DOCTYPE check, the parser would not expand entities.
    secret = tmp_path / "passwd"
    secret.write_text("TOP-SECRET-42")
    root = etree.fromstring(xxe_payload(secret), bankfiles._safe_parser())
    assert b"TOP-SECRET-42" not in etree.tostring(root)

    try:
        root = etree.fromstring(BILLION_LAUGHS, bankfiles._safe_parser())
    except etree.XMLSyntaxError:
        return  # libxml2 refused the amplification outright
    assert len(etree.tostring(root)) < 10_000


@pytest.mark.parametrize("writer", ["csv", "pain001"])
def test_a_bad_account_number_is_named_but_never_echoed(writer):
    bad = make_line(1, account_number="110-123-4567890")
    out = io.BytesIO()
    with pytest.raises(BankFileError) as exc_info:
        if writer == "csv":
            write_csv([bad], out)
        else:
            write_pain001(make_header([bad]), [bad], out)
    text = str(exc_info.value) + repr(exc_info.value.errors)
    assert "account_number" in text
    assert "4567890" not in text


def test_a_malformed_result_reference_is_named_by_line_but_not_echoed():
    data = b"reference,result,reason\n110-123-456789 (acct),paid,\n"
    with pytest.raises(BankFileError) as exc_info:
        parse_result_csv(data)
    text = str(exc_info.value) + repr(exc_info.value.errors)
    assert exc_info.value.errors[0]["code"] == "reference"
    assert exc_info.value.errors[0]["line"] == 2
    assert "456789" not in text


def test_schema_errors_do_not_quote_the_offending_value():
    line = make_line(1)
    # libxml2 quotes a value it cannot read as a number: make it account-shaped.
    xml = pain001_bytes([line]).replace(
        f">{line.amount}</InstdAmt>".encode(), b">110123456789X</InstdAmt>"
    )
    assert b"110123456789X" in xml
    with pytest.raises(BankFileError) as exc_info:
        validate_pain001(io.BytesIO(xml))
    text = str(exc_info.value) + repr(exc_info.value.errors)
    assert "schema" in {e["code"] for e in exc_info.value.errors}
    assert "123456789" not in text

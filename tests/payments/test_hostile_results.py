"""Bad bank result files through the API: each is a 4xx naming the problem, and nothing changes."""

import io

import pytest

from benefits.models import Round
from payments import services
from payments.exports import bank_file_download
from payments.models import BankResultImport, Payment
from tests.factories import ApplicationFactory, RoundFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sent_batch(finance1, finance2):
    round_ = RoundFactory(status=Round.Status.SELECTED, capacity=3)
    for _ in range(3):
        ApplicationFactory(round=round_, status="selected")
    batch = services.batch_create(round_=round_, actor=finance1.user)
    batch = services.batch_submit(batch=batch, actor=finance1.user)
    batch = services.batch_approve(batch=batch, actor=finance2.user)
    bank_file_download(bank_file=batch.files.get(format="csv"), actor=finance1.user)
    return services.batch_disburse(batch=batch, actor=finance1.user)


def upload(client, batch, content: bytes, name="results.csv"):
    file = io.BytesIO(content)
    file.name = name
    return client.post(
        f"/api/v1/disbursements/{batch.pk}/results/", {"file": file}, format="multipart"
    )


def references(batch):
    return [p.reference for p in Payment.objects.filter(batch=batch).order_by("id")]


def assert_nothing_changed(batch):
    assert set(Payment.objects.filter(batch=batch).values_list("status", flat=True)) == {"sent"}
    assert not BankResultImport.objects.exists()


def pain002(rows: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"><CstmrPmtStsRpt>'
        "<GrpHdr><MsgId>BANK-1</MsgId><CreDtTm>2026-11-25T10:00:00+09:00</CreDtTm></GrpHdr>"
        "<OrgnlGrpInfAndSts><OrgnlMsgId>BAEUM-B1</OrgnlMsgId>"
        "<OrgnlMsgNmId>pain.001.001.09</OrgnlMsgNmId></OrgnlGrpInfAndSts>"
        f"<OrgnlPmtInfAndSts><OrgnlPmtInfId>BAEUM-B1-1</OrgnlPmtInfId>{rows}</OrgnlPmtInfAndSts>"
        "</CstmrPmtStsRpt></Document>"
    ).encode()


def tx(reference: str, status: str, reason: str = "") -> str:
    why = f"<StsRsnInf><Rsn><Cd>{reason}</Cd></Rsn></StsRsnInf>" if reason else ""
    return (
        f"<TxInfAndSts><OrgnlEndToEndId>{reference}</OrgnlEndToEndId>"
        f"<TxSts>{status}</TxSts>{why}</TxInfAndSts>"
    )


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"", "empty_file"),
        (b"reference,result,reason\n", "empty_file"),
        ("reference,result,reason\nBAEUM-P0000000001,지급,\n".encode("cp949"), "encoding"),
        (b"ref,status\nBAEUM-P0000000001,paid\n", "header"),
        (b"reference,result,reason\nBAEUM-P0000000001,maybe,\n", "result"),
        (b"reference,result,reason\nBAEUM-P0000000001,failed,\n", "reason_required"),
        (b"reference,result,reason\nBAEUM-P0000000001,paid\n", "columns"),
        (b"reference,result,reason\nnot a ref!,paid,\n", "reference"),
    ],
)
def test_a_malformed_result_csv_is_refused_whole(finance1, sent_batch, content, code):
    response = upload(finance1, sent_batch, content)
    assert response.status_code == 400, response.json()
    errors = response.json()["errors"]
    assert errors[0]["attr"] == "file"
    assert code in {e["code"] for e in errors}
    assert_nothing_changed(sent_batch)


def test_a_duplicated_reference_is_refused_naming_both_lines(finance1, sent_batch):
    ref = references(sent_batch)[0]
    response = upload(
        finance1, sent_batch, f"reference,result,reason\n{ref},paid,\n{ref},paid,\n".encode()
    )
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["code"] == "duplicate_reference"
    assert "2" in error["detail"] and "3" in error["detail"]
    assert_nothing_changed(sent_batch)


def test_a_reference_of_another_batch_is_unknown_here(finance1, finance2, sent_batch):
    other_round = RoundFactory(status=Round.Status.SELECTED, capacity=1)
    ApplicationFactory(round=other_round, status="selected")
    other = services.batch_create(round_=other_round, actor=finance1.user)
    foreign = Payment.objects.get(batch=other).reference
    ours = references(sent_batch)[0]
    body = f"reference,result,reason\n{ours},paid,\n{foreign},paid,\n".encode()
    response = upload(finance1, sent_batch, body)
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "unknown_reference"
    assert_nothing_changed(sent_batch)


def test_a_result_that_contradicts_a_settled_payment_is_refused(finance1, sent_batch):
    ref = references(sent_batch)[0]
    first = upload(finance1, sent_batch, f"reference,result,reason\n{ref},paid,\n".encode())
    assert first.status_code == 200
    response = upload(
        finance1, sent_batch, f"reference,result,reason\n{ref},failed,closed\n".encode()
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "result_conflict"
    assert Payment.objects.get(batch=sent_batch, status="paid").reference == ref


def test_results_for_a_batch_not_yet_sent_are_409(finance1, finance2):
    round_ = RoundFactory(status=Round.Status.SELECTED, capacity=1)
    ApplicationFactory(round=round_, status="selected")
    batch = services.batch_create(round_=round_, actor=finance1.user)
    ref = Payment.objects.get(batch=batch).reference
    response = upload(finance1, batch, f"reference,result,reason\n{ref},paid,\n".encode())
    assert response.status_code == 409
    assert Payment.objects.get(batch=batch).status == "pending"


def test_a_pain002_report_reconciles_and_leaves_interim_statuses_sent(finance1, sent_batch):
    paid, failed, interim = references(sent_batch)
    report = pain002(tx(paid, "ACSC") + tx(failed, "RJCT", "AC04") + tx(interim, "ACSP"))
    response = upload(finance1, sent_batch, report, name="status.xml")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["format"], body["paid"], body["failed"], body["pending"]) == ("pain002", 1, 1, 1)
    assert body["batch_status"] == "sent"
    statuses = dict(Payment.objects.filter(batch=sent_batch).values_list("id", "status"))
    assert sorted(statuses.values()) == ["failed", "paid", "sent"]
    assert Payment.objects.get(batch=sent_batch, status="failed").failure_reason == "AC04"


def test_a_pain002_with_an_external_entity_is_refused(finance1, sent_batch):
    ref = references(sent_batch)[0]
    report = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        + pain002(tx(ref, "RJCT", "&x;")).split(b"?>", 1)[1]
    )
    response = upload(finance1, sent_batch, report, name="status.xml")
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "xml_doctype"
    assert "root:" not in response.content.decode()
    assert_nothing_changed(sent_batch)


def test_a_pain002_that_is_not_xml_enough_is_refused(finance1, sent_batch):
    response = upload(finance1, sent_batch, b"<Document><unclosed></Document>", name="x.xml")
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "xml"
    assert_nothing_changed(sent_batch)

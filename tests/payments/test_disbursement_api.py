"""The whole money path through the API: select, batch, approve by another user, export,
disburse, import results, reissue, and the citizen seeing their payment."""

import base64
import csv
import hashlib
import io
from pathlib import Path

import pytest
import xmlschema
from django.core.management import CommandError, call_command
from lxml import etree

from benefits.models import Application, Notification
from core.crypto import file_key_id
from payments.bankfiles import PAIN001_XSD
from payments.models import BankFile, DisbursementBatch, Payment
from tests.conftest import client_for

# Real commits: the batch is built and the bank files made by tasks run after the commit.
pytestmark = pytest.mark.django_db(transaction=True)

NS = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"}


def _create_batch(client, round_):
    response = client.post("/api/v1/disbursements/", {"round": round_.pk}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def _approve(finance1, finance2, batch_id):
    assert finance1.post(f"/api/v1/disbursements/{batch_id}/submit/").status_code == 200
    response = finance2.post(f"/api/v1/disbursements/{batch_id}/approve/")
    assert response.status_code == 200, response.json()
    return response.json()


def _export(client, batch_id, fmt):
    response = client.get(f"/api/v1/disbursements/{batch_id}/export/?format={fmt}")
    assert response.status_code == 200, getattr(response, "json", lambda: None)()
    return b"".join(response.streaming_content)


def _results(client, batch_id, text: str, name="results.csv"):
    upload = io.BytesIO(text.encode())
    upload.name = name
    return client.post(
        f"/api/v1/disbursements/{batch_id}/results/", {"file": upload}, format="multipart"
    )


def test_the_whole_path_pays_citizens_and_reissues_a_failed_payment(
    selected_round, finance1, finance2
):
    batch = _create_batch(finance1, selected_round)
    assert batch["status"] == "draft"
    assert batch["build_status"] == "ready"
    assert batch["payments_count"] == 5
    assert batch["total_amount"] == 5 * selected_round.amount
    assert batch["prepared_by"] == finance1.user.username
    assert batch["ledger"]["in_batches"] == 5 * selected_round.amount

    batch = _approve(finance1, finance2, batch["id"])
    assert batch["status"] == "approved"
    assert batch["approved_by"] == finance2.user.username
    # Nothing is marked sent before a bank file has actually been taken out.
    response = finance1.post(f"/api/v1/disbursements/{batch['id']}/disburse/")
    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "export_missing"

    rows = list(csv.DictReader(io.StringIO(_export(finance1, batch["id"], "csv").decode())))
    assert [r["amount"] for r in rows] == [str(selected_round.amount)] * 5
    assert len({r["reference"] for r in rows}) == 5
    payments = {p.reference: p for p in Payment.objects.filter(batch_id=batch["id"])}
    assert {r["account_number"] for r in rows} == {p.account_number for p in payments.values()}

    xml = _export(finance1, batch["id"], "pain001")
    xmlschema.XMLSchema(str(PAIN001_XSD)).validate(xml)
    doc = etree.fromstring(xml)
    assert doc.findtext(".//p:GrpHdr/p:NbOfTxs", namespaces=NS) == "5"
    assert doc.findtext(".//p:GrpHdr/p:CtrlSum", namespaces=NS) == str(5 * selected_round.amount)
    assert sorted(doc.xpath(".//p:EndToEndId/text()", namespaces=NS)) == sorted(payments)
    # Regenerating gives the same bytes.
    assert _export(finance1, batch["id"], "pain001") == xml
    # On disk the files are encrypted: no account number is readable there.
    for stored in BankFile.objects.filter(batch_id=batch["id"]):
        with stored.file.open("rb") as f:
            at_rest = f.read()
        assert all(p.account_number.encode() not in at_rest for p in payments.values())

    response = finance1.post(f"/api/v1/disbursements/{batch['id']}/disburse/")
    assert response.status_code == 200, response.json()
    assert response.json()["counts"]["sent"] == 5
    files = {f["format"]: f for f in response.json()["files"]}
    assert files["csv"]["downloaded_by"] == finance1.user.username

    references = sorted(payments)
    failing = references[0]
    lines = ["reference,result,reason", f"{failing},failed,account closed"]
    lines += [f"{ref},paid," for ref in references[1:]]
    response = _results(finance1, batch["id"], "\n".join(lines) + "\n")
    assert response.status_code == 200, response.json()
    assert response.json()["paid"] == 4
    assert response.json()["failed"] == 1
    assert response.json()["batch_status"] == "reconciled"

    detail = finance1.get(f"/api/v1/disbursements/{batch['id']}/").json()
    assert detail["counts"]["paid"] == 4
    assert detail["counts"]["failed"] == 1
    ledger = detail["ledger"]
    assert ledger["paid"] == 4 * selected_round.amount
    assert ledger["failed"] == selected_round.amount
    assert ledger["committed"] == (
        ledger["awaiting_batch"] + ledger["in_batches"] + ledger["paid"] + ledger["failed"]
    )

    # The citizen whose payment failed sees it, and is told.
    failed_payment = payments[failing]
    applicant = failed_payment.application.applicant
    citizen = client_for(applicant.user)
    seen = citizen.get(f"/api/v1/applications/{failed_payment.application_id}/").json()
    assert seen["payments"] == [
        {"status": "failed", "amount": selected_round.amount, "paid_at": None}
    ]
    assert Notification.objects.filter(
        application_id=failed_payment.application_id, kind=Notification.Kind.PAYMENT_FAILED
    ).exists()

    # Nothing to pay until the citizen gives another account.
    response = finance1.post("/api/v1/disbursements/", {"round": selected_round.pk}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "nothing_to_pay"

    response = citizen.patch(
        "/api/v1/me/profile/",
        {"bank_code": "088", "account_number": "110-123-456789"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    reissue = _create_batch(finance1, selected_round)
    assert reissue["payments_count"] == 1
    new_payment = Payment.objects.get(batch_id=reissue["id"])
    assert new_payment.reissue_of_id == failed_payment.pk
    assert new_payment.account_number == "110123456789"
    failed_payment.refresh_from_db()
    assert failed_payment.status == Payment.Status.REISSUED
    # The checker sees the changed account in the pre-release audit.
    audit = finance2.get(f"/api/v1/disbursements/{reissue['id']}/audit/").json()
    assert audit["results"][0]["flags"] == ["account_changed"]
    assert audit["results"][0]["account_number"] == "****6789"

    _approve(finance1, finance2, reissue["id"])
    _export(finance1, reissue["id"], "csv")
    finance1.post(f"/api/v1/disbursements/{reissue['id']}/disburse/")
    response = _results(
        finance1, reissue["id"], f"reference,result,reason\n{new_payment.reference},paid,\n"
    )
    assert response.status_code == 200, response.json()

    seen = citizen.get(f"/api/v1/applications/{failed_payment.application_id}/").json()
    assert [p["status"] for p in seen["payments"]] == ["reissued", "paid"]
    assert seen["payments"][1]["paid_at"] is not None
    ledger = finance1.get(f"/api/v1/rounds/{selected_round.pk}/ledger/").json()
    assert ledger["paid"] == 5 * selected_round.amount
    assert ledger["failed"] == 0
    assert ledger["available"] == selected_round.budget - 5 * selected_round.amount


NEW_KEY = "k2:" + base64.urlsafe_b64encode(b"\x05" * 32).decode()


def test_after_a_key_rotation_bank_files_download_without_the_old_key(
    selected_round, finance1, finance2, settings
):
    batch = _approve(finance1, finance2, _create_batch(finance1, selected_round)["id"])
    before = {fmt: _export(finance1, batch["id"], fmt) for fmt in ("csv", "pain001")}
    old_names = set(BankFile.objects.values_list("file", flat=True))
    storage = BankFile._meta.get_field("file").storage
    settings.BAEUM_ENCRYPTION_KEYS = f"{NEW_KEY},{settings.BAEUM_ENCRYPTION_KEYS}"

    out = io.StringIO()
    call_command("rotate_encryption_keys", stdout=out)

    assert "payments.BankFile: 2 files re-encrypted" in out.getvalue()
    for stored in BankFile.objects.all():
        with stored.file.open("rb") as f:
            assert file_key_id(f) == "k2"
        assert stored.sha256 == hashlib.sha256(before[stored.format]).hexdigest()
    assert not any(storage.exists(name) for name in old_names)
    # The old key can go: the files still download, byte for byte.
    settings.BAEUM_ENCRYPTION_KEYS = NEW_KEY
    assert {fmt: _export(finance1, batch["id"], fmt) for fmt in before} == before
    # Run again, it finds nothing left to do.
    out = io.StringIO()
    call_command("rotate_encryption_keys", stdout=out)
    assert "payments.BankFile: 0 files re-encrypted" in out.getvalue()


def test_a_bank_file_that_does_not_decrypt_stops_the_rotation_and_stays_as_it_was(
    selected_round, finance1, finance2, settings
):
    batch = _approve(finance1, finance2, _create_batch(finance1, selected_round)["id"])
    _export(finance1, batch["id"], "csv")
    tampered = BankFile.objects.get(batch_id=batch["id"], format="csv")
    path = Path(tampered.file.path)
    blob = bytearray(path.read_bytes())
    blob[-5] ^= 1
    path.write_bytes(bytes(blob))
    settings.BAEUM_ENCRYPTION_KEYS = f"{NEW_KEY},{settings.BAEUM_ENCRYPTION_KEYS}"

    with pytest.raises(CommandError) as raised:
        call_command("rotate_encryption_keys", stdout=io.StringIO())

    assert str(raised.value) == (
        f"payments.BankFile #{tampered.pk}: DecryptionError: Encrypted file failed authentication."
    )
    tampered.refresh_from_db()
    assert Path(tampered.file.path) == path
    assert path.read_bytes() == bytes(blob)
    # No spare file is left beside the batch's files.
    kept = {Path(f.file.path).name for f in BankFile.objects.filter(batch_id=batch["id"])}
    assert {p.name for p in path.parent.iterdir()} == kept


def test_a_bank_file_that_does_not_read_whole_is_not_served_nor_counted_as_taken_out(
    selected_round, finance1, finance2
):
    batch = _approve(finance1, finance2, _create_batch(finance1, selected_round)["id"])
    _export(finance1, batch["id"], "csv")  # made, and taken out once
    BankFile.objects.filter(batch_id=batch["id"]).update(downloaded_at=None, downloaded_by=None)
    stored = BankFile.objects.get(batch_id=batch["id"], format="csv")
    path = Path(stored.file.path)
    path.write_bytes(path.read_bytes()[:-3])  # cut short: its last chunk no longer decrypts

    finance1.raise_request_exception = False  # a 500: answered, and logged as an error
    response = finance1.get(f"/api/v1/disbursements/{batch['id']}/export/?format=csv")

    assert response.status_code == 500
    assert response.json()["errors"][0]["code"] == "stored_file_unreadable"
    stored.refresh_from_db()
    assert stored.downloaded_at is None
    # So the batch cannot be marked sent on a file the bank never had whole.
    response = finance1.post(f"/api/v1/disbursements/{batch['id']}/disburse/")
    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "export_missing"


def test_the_preparer_cannot_approve_their_own_batch(selected_round, finance1):
    batch = _create_batch(finance1, selected_round)
    finance1.post(f"/api/v1/disbursements/{batch['id']}/submit/")
    response = finance1.post(f"/api/v1/disbursements/{batch['id']}/approve/")
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "maker_checker"
    assert DisbursementBatch.objects.get(pk=batch["id"]).status == "pending_approval"


def test_wrong_state_transitions_are_409_and_change_nothing(selected_round, finance1, finance2):
    batch = _create_batch(finance1, selected_round)
    url = f"/api/v1/disbursements/{batch['id']}"
    # Approve a draft.
    response = finance2.post(f"{url}/approve/")
    assert response.status_code == 409
    assert response.json()["errors"][0]["attr"] == "status"
    # Disburse an unapproved batch.
    assert finance1.post(f"{url}/disburse/").status_code == 409
    # No bank file before approval.
    assert finance1.get(f"{url}/export/?format=csv").status_code == 409
    assert DisbursementBatch.objects.get(pk=batch["id"]).status == "draft"

    _approve(finance1, finance2, batch["id"])
    _export(finance1, batch["id"], "csv")
    finance1.post(f"{url}/disburse/")
    # Cancel a sent batch.
    response = finance1.post(f"{url}/cancel/")
    assert response.status_code == 409
    assert DisbursementBatch.objects.get(pk=batch["id"]).status == "sent"
    assert set(Payment.objects.filter(batch_id=batch["id"]).values_list("status", flat=True)) == {
        "sent"
    }


def test_cancelling_a_batch_frees_its_payments_for_the_next(selected_round, finance1):
    batch = _create_batch(finance1, selected_round)
    response = finance1.post(f"/api/v1/disbursements/{batch['id']}/cancel/", {"reason": "typo"})
    assert response.status_code == 200
    assert response.json()["counts"]["cancelled"] == 5
    again = _create_batch(finance1, selected_round)
    assert again["payments_count"] == 5


def test_holding_a_payment_out_keeps_it_out_of_the_file(selected_round, finance1, finance2):
    batch = _create_batch(finance1, selected_round)
    payment = Payment.objects.filter(batch_id=batch["id"]).first()
    url = f"/api/v1/disbursements/{batch['id']}/payments/{payment.pk}/hold/"
    response = finance2.post(url, {}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["attr"] == "reason"
    response = finance2.post(url, {"reason": "shared account"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "cancelled"
    _approve(finance1, finance2, batch["id"])
    rows = list(csv.DictReader(io.StringIO(_export(finance1, batch["id"], "csv").decode())))
    assert payment.reference not in {r["reference"] for r in rows}
    assert len(rows) == 4
    # A held payment cannot be held again, and nothing is held after approval.
    assert finance2.post(url, {"reason": "again"}, format="json").status_code == 409


def test_shared_accounts_and_changed_applications_are_flagged(selected_round, finance1):
    apps = list(Application.objects.filter(round=selected_round).order_by("id"))
    twin = apps[1].applicant
    twin.account_number = apps[0].applicant.account_number
    twin.account_fingerprint = apps[0].applicant.account_fingerprint
    twin.save()
    batch = _create_batch(finance1, selected_round)
    withdrawn = apps[2]
    Application.objects.filter(pk=withdrawn.pk).update(status=Application.Status.WITHDRAWN)
    audit = finance1.get(f"/api/v1/disbursements/{batch['id']}/audit/").json()
    flags = {row["application"]: row["flags"] for row in audit["results"]}
    assert flags == {
        apps[0].pk: ["shared_account"],
        apps[1].pk: ["shared_account"],
        withdrawn.pk: ["application_changed"],
    }
    detail = finance1.get(f"/api/v1/disbursements/{batch['id']}/").json()
    assert detail["audit"]["shared_account"] == 2, detail["audit"]
    assert detail["audit"]["application_changed"] == 1


def test_result_file_with_an_unknown_reference_is_rejected_whole(
    selected_round, finance1, finance2
):
    batch = _create_batch(finance1, selected_round)
    _approve(finance1, finance2, batch["id"])
    _export(finance1, batch["id"], "csv")
    finance1.post(f"/api/v1/disbursements/{batch['id']}/disburse/")
    known = Payment.objects.filter(batch_id=batch["id"]).first().reference
    text = f"reference,result,reason\n{known},paid,\nBAEUM-P9999999999,paid,\n"
    response = _results(finance1, batch["id"], text)
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["attr"] == "file"
    assert error["code"] == "unknown_reference"
    assert "Line 3" in error["detail"]
    assert not Payment.objects.filter(batch_id=batch["id"], status="paid").exists()


def test_the_same_result_file_twice_changes_nothing_the_second_time(
    selected_round, finance1, finance2
):
    batch = _create_batch(finance1, selected_round)
    _approve(finance1, finance2, batch["id"])
    _export(finance1, batch["id"], "csv")
    finance1.post(f"/api/v1/disbursements/{batch['id']}/disburse/")
    refs = [p.reference for p in Payment.objects.filter(batch_id=batch["id"])]
    text = "reference,result,reason\n" + "".join(f"{r},paid,\n" for r in refs[:2])
    first = _results(finance1, batch["id"], text).json()
    second = _results(finance1, batch["id"], text).json()
    assert first == second
    assert Notification.objects.filter(kind=Notification.Kind.PAID).count() == 2


def test_citizens_and_caseworkers_cannot_touch_batches(
    selected_round, citizen, caseworker, finance1
):
    batch = _create_batch(finance1, selected_round)
    for client in (citizen, caseworker):
        assert client.get("/api/v1/disbursements/").status_code == 403
        assert client.get(f"/api/v1/disbursements/{batch['id']}/").status_code == 403
        response = client.post("/api/v1/disbursements/", {"round": selected_round.pk})
        assert response.status_code == 403
    assert DisbursementBatch.objects.count() == 1


def test_a_round_not_yet_selected_cannot_be_paid(open_round, finance1):
    response = finance1.post("/api/v1/disbursements/", {"round": open_round.pk}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0] == {
        "code": "round_not_selected",
        "detail": f"Round #{open_round.pk} is open: run the selection before paying it.",
        "attr": "round",
    }


def test_bad_export_format_is_a_field_error(selected_round, finance1):
    batch = _create_batch(finance1, selected_round)
    response = finance1.get(f"/api/v1/disbursements/{batch['id']}/export/?format=xlsx")
    assert response.status_code == 400
    assert response.json()["errors"][0]["attr"] == "format"


def test_a_voucher_round_is_credited_without_a_bank_file(manager, finance1, finance2):
    from benefits.models import Round
    from tests.factories import ProgramFactory, RoundFactory, approved_applications

    voucher_round = RoundFactory(
        program=ProgramFactory(code="VOUCHER"),
        status=Round.Status.CLOSED,
        capacity=2,
        amount=350_000,
    )
    approved_applications(voucher_round, 2)
    assert manager.post(f"/api/v1/rounds/{voucher_round.pk}/select/").status_code == 200
    batch = _create_batch(finance1, voucher_round)
    _approve(finance1, finance2, batch["id"])
    response = finance1.get(f"/api/v1/disbursements/{batch['id']}/export/?format=csv")
    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "no_file"
    response = finance1.post(f"/api/v1/disbursements/{batch['id']}/disburse/")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "reconciled"
    assert response.json()["counts"]["paid"] == 2
    assert Notification.objects.filter(kind=Notification.Kind.PAID).count() == 2


def test_batch_views_and_the_admin_show_account_numbers_masked(selected_round, finance1, client):
    from tests.factories import UserFactory

    batch = _create_batch(finance1, selected_round)
    payment = Payment.objects.filter(batch_id=batch["id"]).first()
    raw = payment.account_number
    admin = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(admin)
    pages = [
        finance1.get(f"/api/v1/disbursements/{batch['id']}/payments/"),
        finance1.get(f"/api/v1/disbursements/{batch['id']}/"),
        client.get("/admin/payments/payment/"),
        client.get(f"/admin/payments/payment/{payment.pk}/change/"),
    ]
    for page in pages:
        assert page.status_code == 200
        assert raw not in page.content.decode()
    assert f"****{raw[-4:]}" in pages[0].content.decode()
    assert f"****{raw[-4:]}" in pages[3].content.decode()


def test_the_batch_list_costs_the_same_queries_for_one_batch_or_many(
    selected_round, finance1, django_assert_max_num_queries
):
    first = _create_batch(finance1, selected_round)
    with django_assert_max_num_queries(50) as one:
        body = finance1.get("/api/v1/disbursements/").json()
    queries_for_one = len(one.captured_queries)  # read now: the log is reset per request
    assert body["results"][0]["payments_count"] == 5
    finance1.post(f"/api/v1/disbursements/{first['id']}/cancel/")
    _create_batch(finance1, selected_round)
    with django_assert_max_num_queries(queries_for_one):
        body = finance1.get("/api/v1/disbursements/").json()
    assert [b["counts"]["cancelled"] for b in body["results"]] == [0, 5]
    assert [b["payments_count"] for b in body["results"]] == [5, 0]

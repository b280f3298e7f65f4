"""Stages from the selection on: batches with maker–checker, bank files out and results in,
accounts fixed and reissued; for vouchers the credit, redemptions and the providers'
settlement; then the round report."""

import random

from django.utils import timezone

from benefits import rounds, services
from benefits.models import Round
from benefits.reports import round_report
from benefits.selection import round_select
from benefits.simulation import Simulation, SimulationError, population
from benefits.simulation.waiting import wait_until
from payments import audit, selectors
from payments import services as payments
from payments.exports import bank_file_for_download
from payments.imports import bank_results_import
from payments.models import BankFile, DisbursementBatch, Payment, VoucherAccount
from payments.settlement import settlement_batch_create
from payments.vouchers import voucher_course_complete, voucher_redeem, voucher_refund

FAILURE_REASON = "해지된 계좌 / Account closed"
# Voucher holders who spend some of it, and of those, who finish the course or get a refund.
REDEEMING, COMPLETING, REFUNDED = 0.7, 0.4, 0.05
REDEMPTION_AMOUNTS = (50_000, 100_000, 150_000, 200_000)


def selection(sim: Simulation) -> int:
    """The manager closes the round and runs the selection (priority, then the lottery)."""
    manager = sim.staff["manager"]
    rounds.round_close(round_=sim.round_, actor=manager)
    result = round_select(round_=sim.round_, actor=manager)
    sim.round_ = result.round
    sim.notes["selection"] = {"selected": result.selected, "waitlisted": result.waitlisted}
    return result.selected + result.waitlisted


def _batch(pk: int) -> DisbursementBatch:
    return selectors.batch_get(pk=pk)


def _built_batch(sim: Simulation, description: str) -> DisbursementBatch:
    """finance1 opens a batch of the round; wait for its payments to be gathered."""
    batch = payments.batch_create(round_=sim.round_, actor=sim.staff["finance1"])
    sim.batches.append(batch.pk)
    total = batch.build_expected
    gathered = Payment.objects.filter(batch=batch)
    state = DisbursementBatch.objects.filter(pk=batch.pk)

    def done() -> int:
        if state.filter(build_status=DisbursementBatch.BuildStatus.READY).exists():
            return total
        return min(gathered.count(), total - 1)

    def failed() -> str | None:
        if state.filter(status=DisbursementBatch.Status.CANCELLED).exists():
            return f"batch #{batch.pk} was cancelled while being built (over budget)"
        return None

    wait_until(sim, description, total=total, done=done, failed=failed)
    return _batch(batch.pk)


def _approved(sim: Simulation, batch: DisbursementBatch) -> DisbursementBatch:
    """finance2, who did not prepare it, reads the pre-release audit and approves."""
    sim.notes.setdefault("pre-release audit", {})[f"batch #{batch.pk}:"] = {
        flag: n for flag, n in audit.batch_audit_summary(batch).items() if n
    }
    payments.batch_approve(batch=batch, actor=sim.staff["finance2"])
    return _batch(batch.pk)


def _exported(sim: Simulation, batch: DisbursementBatch) -> list[str]:
    """Wait for both bank files, take them out as finance1 does; return the CSV's references."""
    files = BankFile.objects.filter(batch=batch)
    wait_until(sim, f"bank files of batch #{batch.pk}", total=2, done=files.count)
    actor = sim.staff["finance1"]
    bank_file, chunks = bank_file_for_download(batch=batch, fmt=BankFile.Format.CSV, actor=actor)
    references = _references(chunks)
    _, chunks = bank_file_for_download(batch=batch, fmt=BankFile.Format.PAIN001, actor=actor)
    for _chunk in chunks:  # read whole, as the bank would
        pass
    if len(references) != bank_file.payments_count:
        raise SimulationError(
            f"batch #{batch.pk}: the CSV lists {len(references)} transfers, "
            f"its record says {bank_file.payments_count}"
        )
    return references


def _references(chunks) -> list[str]:
    """The first column of the bank CSV, read as it streams (account numbers are not kept)."""
    references, rest, header = [], b"", True
    for chunk in chunks:
        lines = (rest + chunk).split(b"\r\n")
        rest = lines.pop()
        for line in lines:
            if header:
                header = False
                continue
            references.append(line.split(b",", 1)[0].decode())
    if rest:
        references.append(rest.split(b",", 1)[0].decode())
    return references


def _bank_answers(sim: Simulation, batch: DisbursementBatch, references: list[str], *, fail_rate):
    """The bank's result file for the references; return the import's summary."""
    rng = random.Random(f"{sim.seed}:bank:{len(sim.batches)}")
    failing = round(len(references) * fail_rate)
    if fail_rate and references:
        failing = max(failing, 1)
    failed = set(rng.sample(range(len(references)), failing))
    lines = ["reference,result,reason"]
    for i, reference in enumerate(references):
        result = f"failed,{FAILURE_REASON}" if i in failed else "paid,"
        lines.append(f"{reference},{result}")
    data = ("\r\n".join(lines) + "\r\n").encode()
    record = bank_results_import(batch=batch, actor=sim.staff["finance1"], data=data)
    return record.summary


def _paid_by_bank(sim: Simulation, batch: DisbursementBatch, *, fail_rate: float) -> dict:
    """Approve, export, mark sent, and apply the bank's answers to a submitted batch."""
    batch = _approved(sim, batch)
    references = _exported(sim, batch)
    payments.batch_disburse(batch=batch, actor=sim.staff["finance1"])
    return _bank_answers(sim, _batch(batch.pk), references, fail_rate=fail_rate)


def batch(sim: Simulation) -> int:
    """finance1 opens the round's first batch, waits for it to be built and submits it."""
    batch = _built_batch(sim, "batch build")
    batch = payments.batch_submit(batch=batch, actor=sim.staff["finance1"])
    return batch.payments.count()


def bank_files(sim: Simulation) -> int:
    """finance2 approves (the bank files are made then), finance1 exports and sends them."""
    batch = _approved(sim, _batch(sim.batches[0]))
    sim.notes["sent references"] = _exported(sim, batch)
    payments.batch_disburse(batch=batch, actor=sim.staff["finance1"])
    return len(sim.notes["sent references"])


def bank_results(sim: Simulation) -> int:
    """The bank pays most transfers and fails a share (`fail_rate`); finance1 imports it."""
    references = sim.notes.pop("sent references")
    batch = _batch(sim.batches[0])
    sim.notes["bank results"] = _bank_answers(sim, batch, references, fail_rate=sim.fail_rate)
    return len(references)


def account_fixes(sim: Simulation) -> int:
    """Each citizen whose payment failed gives another account in the profile."""
    failed = list(
        Payment.objects.filter(round=sim.round_, status=Payment.Status.FAILED)
        .select_related("application__applicant__user")
        .order_by("pk")
    )
    tracker = sim.track("accounts fixed", len(failed))
    for payment in failed:
        applicant = payment.application.applicant
        services.applicant_profile_update(
            applicant=applicant,
            actor=applicant.user,
            data={"account_number": population.replacement_account(applicant.pk, sim.salt)},
        )
        tracker.advance()
    return len(failed)


def reissue(sim: Simulation) -> int:
    """A second batch reissues the failed payments to the new accounts; the bank pays all.
    Both batches are then closed."""
    count = 0
    if Payment.objects.filter(round=sim.round_, status=Payment.Status.FAILED).exists():
        batch = _built_batch(sim, "reissue batch build")
        batch = payments.batch_submit(batch=batch, actor=sim.staff["finance1"])
        count = batch.payments.count()
        sim.notes["reissue results"] = _paid_by_bank(sim, batch, fail_rate=0)
    for pk in sim.batches:
        payments.batch_close(batch=_batch(pk), actor=sim.staff["finance1"])
    return count


# Vouchers.


def credit(sim: Simulation) -> int:
    """finance2 approves the voucher batch; disbursing credits each recipient's voucher."""
    batch = _approved(sim, _batch(sim.batches[0]))
    batch = payments.batch_disburse(batch=batch, actor=sim.staff["finance1"])
    return batch.payments.filter(status=Payment.Status.PAID).count()


def redemptions(sim: Simulation) -> int:
    """The provider charges courses to most vouchers; some finish, a few are refunded."""
    rng = random.Random(f"{sim.seed}:redemptions")
    provider_user = sim.staff["provider"]
    accounts = list(
        VoucherAccount.objects.filter(round=sim.round_).order_by("pk").values_list("pk", "code")
    )
    tracker = sim.track("redemptions", len(accounts))
    amount = sim.round_.amount
    courses = [name for _, name, _, _ in population.COURSES]
    done = 0
    for pk, code in accounts:
        tracker.advance()
        if rng.random() >= REDEEMING:
            continue
        charge = amount if rng.random() < 0.3 else min(rng.choice(REDEMPTION_AMOUNTS), amount)
        entry = voucher_redeem(
            actor=provider_user,
            voucher_code=code,
            amount=charge,
            course=rng.choice(courses),
            idempotency_key=f"{sim.prefix}-{pk}",
        )
        done += 1
        if rng.random() < COMPLETING:
            voucher_course_complete(actor=provider_user, redemption_id=entry.pk)
        elif rng.random() < REFUNDED:
            voucher_refund(actor=provider_user, redemption_id=entry.pk, amount=charge // 2)
    return done


def settlement(sim: Simulation) -> int:
    """finance1 settles the provider's redemptions of today in a batch, finance2 approves,
    the bank pays it."""
    today = timezone.localdate()
    batch = settlement_batch_create(
        round_=sim.round_,
        actor=sim.staff["finance1"],
        period_starts_on=today,
        period_ends_on=today,
    )
    sim.batches.append(batch.pk)
    batch = payments.batch_submit(batch=_batch(batch.pk), actor=sim.staff["finance1"])
    sim.notes["settlement results"] = _paid_by_bank(sim, batch, fail_rate=0)
    for pk in sim.batches:
        payments.batch_close(batch=_batch(pk), actor=sim.staff["finance1"])
    return batch.payments.count()


def report(sim: Simulation) -> int:
    """Read the round report, as staff do."""
    round_ = Round.objects.select_related("program").get(pk=sim.round_.pk)
    sim.report = round_report(round_=round_)
    return sim.report["applications"]["total"]

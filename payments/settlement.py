"""Provider settlement: pay each voucher provider its redemptions, net of refunds, in a period.

A settlement is a disbursement batch like any other (maker–checker, bank files, results);
what is particular is how it is gathered, and that each ledger entry it pays is tied to its
payment so that it is paid once.
"""

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Max, OuterRef, Subquery, Sum

from benefits.models import Round
from core.audit import audit_record
from core.exceptions import DomainError
from payments.models import DisbursementBatch, Payment, Provider, VoucherEntry


@transaction.atomic
def settlement_batch_create(
    *, round_: Round, actor, period_starts_on, period_ends_on
) -> DisbursementBatch:
    """Open a batch paying each provider its redemptions net of refunds made in a period.

    Each redemption and refund is tied to the settlement payment that pays it, under the
    round's lock, so a second settlement (even a concurrent one) pays nothing twice.
    """
    if not actor.has_perm("payments.prepare_batch"):
        raise PermissionDenied
    round_ = Round.objects.select_for_update().select_related("program").get(pk=round_.pk)
    if round_.program.code != "VOUCHER":
        raise DomainError(
            "Only a voucher round has providers to settle.",
            code="not_a_voucher_round",
            field="round",
        )
    if period_ends_on < period_starts_on:
        raise DomainError(
            "The period ends before it starts.", code="invalid_period", field="period_ends_on"
        )
    entries = VoucherEntry.objects.filter(
        account__round=round_,
        kind__in=[VoucherEntry.Kind.REDEMPTION, VoucherEntry.Kind.REFUND],
        settlement__isnull=True,
        at__date__gte=period_starts_on,
        at__date__lte=period_ends_on,
    )
    # Entries written after this point (a redemption right now) wait for the next settlement.
    last_id = entries.aggregate(last=Max("id"))["last"]
    if last_id is None:
        raise DomainError(
            "No redemption in this period is waiting to be settled.",
            code="nothing_to_pay",
            field="round",
        )
    entries = entries.filter(id__lte=last_id)
    owed = [
        (provider_id, -total)
        for provider_id, total in entries.values("provider")
        .annotate(total=Sum("amount"))
        .values_list("provider", "total")
        .order_by("provider")
        if total < 0  # refunds beyond redemptions carry over to the next period
    ]
    if not owed:
        raise DomainError(
            "Refunds cancel out the redemptions of this period: nothing to pay.",
            code="nothing_to_pay",
            field="round",
        )
    batch = DisbursementBatch.objects.create(
        round=round_,
        kind=DisbursementBatch.Kind.SETTLEMENT,
        period_starts_on=period_starts_on,
        period_ends_on=period_ends_on,
        prepared_by=actor,
        build_status=DisbursementBatch.BuildStatus.READY,
        build_expected=len(owed),
    )
    providers = Provider.objects.in_bulk([provider_id for provider_id, _ in owed])
    Payment.objects.bulk_create(
        Payment(
            batch=batch,
            round=round_,
            provider=providers[provider_id],
            amount=amount,
            bank_code=providers[provider_id].bank_code,
            account_number=providers[provider_id].account_number,
            account_holder=providers[provider_id].account_holder,
            account_fingerprint=providers[provider_id].account_fingerprint,
        )
        for provider_id, amount in owed
    )
    # Tie every entry paid to its provider's payment, in one statement.
    entries.filter(provider_id__in=providers).update(
        settlement=Subquery(
            Payment.objects.filter(batch=batch, provider=OuterRef("provider")).values("id")[:1]
        )
    )
    audit_record(
        actor=actor,
        obj=batch,
        action="batch.created",
        to_state=batch.status,
        data={
            "round": round_.pk,
            "kind": "settlement",
            "period": [period_starts_on.isoformat(), period_ends_on.isoformat()],
            "providers": len(owed),
        },
    )
    return batch

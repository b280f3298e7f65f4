"""Voucher accounts, their append-only ledger, and the providers who redeem them."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from benefits.models import Applicant, Application, Round
from core.banks import BANK_CHOICES, mask_account_number
from core.fields import EncryptedTextField


class Provider(models.Model):
    """A registered lifelong-learning institution that redeems vouchers and is settled by bank."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        SUSPENDED = "suspended"

    name = models.CharField(max_length=200)
    # 사업자등록번호, ten digits, checked with python-stdnum's Korean module.
    business_registration_number = models.CharField(max_length=10, unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    bank_code = models.CharField(max_length=3, choices=BANK_CHOICES)
    account_number = EncryptedTextField(purpose="account_number")
    account_holder = models.CharField(max_length=100)
    account_fingerprint = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    @property
    def account_number_masked(self) -> str:
        return mask_account_number(self.account_number) if self.account_number else ""


class ProviderUser(models.Model):
    """A user who acts for a provider (the provider role)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="provider_membership"
    )
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="members")

    def __str__(self) -> str:
        return f"{self.user} for {self.provider}"


class VoucherAccount(models.Model):
    """One recipient's voucher for one round: its balance is the sum of its ledger entries."""

    code = models.CharField(max_length=24, unique=True)
    application = models.OneToOneField(
        Application, on_delete=models.PROTECT, related_name="voucher_account"
    )
    applicant = models.ForeignKey(
        Applicant, on_delete=models.PROTECT, related_name="voucher_accounts"
    )
    round = models.ForeignKey(Round, on_delete=models.PROTECT, related_name="voucher_accounts")
    expires_on = models.DateField()
    lapsed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["expires_on", "lapsed_at"])]

    def __str__(self) -> str:
        return f"Voucher #{self.pk}"


class VoucherEntry(models.Model):
    """One movement on a voucher account; never updated, never deleted."""

    class Kind(models.TextChoices):
        CREDIT = "credit"
        REDEMPTION = "redemption"
        REFUND = "refund"
        TOP_UP = "top_up"
        LAPSE = "lapse"

    CREDITS = (Kind.CREDIT, Kind.REFUND, Kind.TOP_UP)
    DEBITS = (Kind.REDEMPTION, Kind.LAPSE)

    account = models.ForeignKey(VoucherAccount, on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    # Signed KRW: credits are positive, redemptions and lapses negative.
    amount = models.BigIntegerField()
    # The account's balance after this entry; entries are written under the account's lock.
    balance_after = models.BigIntegerField()
    provider = models.ForeignKey(
        Provider, null=True, blank=True, on_delete=models.PROTECT, related_name="entries"
    )
    course = models.CharField(max_length=200, blank=True)
    # A refund names the redemption it gives back (part of).
    redemption = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="refunds"
    )
    completed = models.BooleanField(default=False)
    idempotency_key = models.CharField(max_length=255, blank=True)
    # The provider settlement payment that paid this redemption or netted this refund.
    settlement = models.ForeignKey(
        "payments.Payment",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="settled_entries",
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(kind__in=["credit", "refund", "top_up"]) & Q(amount__gt=0))
                | (Q(kind__in=["redemption", "lapse"]) & Q(amount__lt=0)),
                name="voucher_entry_sign_follows_kind",
            ),
            # Never below zero, whatever the code does.
            models.CheckConstraint(
                condition=Q(balance_after__gte=0), name="voucher_balance_never_negative"
            ),
            models.UniqueConstraint(
                fields=["account"], condition=Q(kind="credit"), name="one_credit_per_voucher"
            ),
            models.UniqueConstraint(
                fields=["account"], condition=Q(kind="lapse"), name="one_lapse_per_voucher"
            ),
            models.UniqueConstraint(
                fields=["account"], condition=Q(kind="top_up"), name="one_top_up_per_voucher"
            ),
            models.UniqueConstraint(
                fields=["provider", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="one_redemption_per_idempotency_key",
            ),
        ]
        indexes = [
            models.Index(fields=["account", "kind"]),
            models.Index(fields=["provider", "settlement"]),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} on voucher #{self.account_id}"


# Named for the OpenAPI schema (SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]).
VOUCHER_ENTRY_KIND_CHOICES = VoucherEntry.Kind.choices

"""Korean financial-institution codes (금융결제원 3-digit codes) and account numbers."""

import re

from django.core.exceptions import ValidationError

BANKS: dict[str, str] = {
    "002": "KDB산업은행",
    "003": "IBK기업은행",
    "004": "KB국민은행",
    "007": "수협은행",
    "011": "NH농협은행",
    "012": "지역농축협",
    "020": "우리은행",
    "023": "SC제일은행",
    "027": "한국씨티은행",
    "031": "iM뱅크(대구은행)",
    "032": "부산은행",
    "034": "광주은행",
    "035": "제주은행",
    "037": "전북은행",
    "039": "경남은행",
    "045": "새마을금고",
    "048": "신협",
    "050": "저축은행",
    "064": "산림조합",
    "071": "우체국",
    "081": "하나은행",
    "088": "신한은행",
    "089": "케이뱅크",
    "090": "카카오뱅크",
    "092": "토스뱅크",
}
BANK_CHOICES: list[tuple[str, str]] = list(BANKS.items())

_ACCOUNT_RE = re.compile(r"[0-9]{10,16}")


def bank_name(code: str) -> str:
    """Return the name of a bank; ValueError for an unknown code."""
    try:
        return BANKS[code]
    except KeyError:
        raise ValueError(f"Unknown bank code: {code!r}") from None


def _strip(value: str) -> str:
    return value.replace("-", "").replace(" ", "")


def normalize_account_number(value: str) -> str:
    """Return the account number as bare digits, or raise ValidationError."""
    digits = _strip(value) if isinstance(value, str) else ""
    if not _ACCOUNT_RE.fullmatch(digits):
        raise ValidationError(
            "Enter an account number of 10 to 16 digits; hyphens are allowed.",
            code="invalid_account_number",
        )
    return digits


def mask_account_number(number: str) -> str:
    """Return "****" and the last four digits of the account number."""
    return "****" + _strip(number)[-4:]

"""Filters of the staff pages: won amounts, Seoul times, state badges and evidence."""

import datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from core.banks import BANKS
from core.districts import SEOUL_DISTRICTS
from eligibility.rules import MESSAGES, duplicate_code
from staff import labels

register = template.Library()


@register.filter
def won(value) -> str:
    """1000000 → "1,000,000원" (Korean) or "KRW 1,000,000" (English)."""
    if value is None or value == "":
        return "–"
    amount = f"{int(value):,}"
    if (get_language() or "ko").startswith("ko"):
        return f"{amount}원"
    return f"KRW {amount}"


@register.filter
def number(value) -> str:
    if value is None or value == "":
        return "–"
    return f"{int(value):,}"


@register.filter
def percent(value) -> str:
    if value is None:
        return "–"
    return f"{float(value) * 100:.1f}%"


@register.filter
def seoul(value, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A time in Asia/Seoul (the project's TIME_ZONE), or a date as it is."""
    if not value:
        return "–"
    if hasattr(value, "tzinfo") and hasattr(value, "hour"):
        value = timezone.localtime(value)
        return value.strftime(fmt)
    return value.strftime("%Y-%m-%d")


@register.filter
def iso_seoul(value: str) -> str:
    """An ISO 8601 time (as the report gives it) shown like every other time here."""
    try:
        return seoul(datetime.datetime.fromisoformat(value))
    except (TypeError, ValueError):
        return value or "–"


def _badge(text: str, tone: str) -> str:
    return format_html('<span class="badge badge-{}">{}</span>', tone or "plain", text)


@register.filter
def status_badge(value, kind: str = "application") -> str:
    """A state as a coloured badge; `kind` names whose state it is (application, round,
    batch, payment, import), since the same word means different things."""
    tone = labels.STATUS_TONE.get(value, "plain")
    if kind == "payment" and value == "cancelled":
        tone = "warn"
    return _badge(labels.label(labels.STATUS_TABLES[kind], value), tone)


@register.filter
def status_label(value, kind: str = "application") -> str:
    return labels.label(labels.STATUS_TABLES[kind], value)


@register.filter
def outcome_badge(value) -> str:
    if not value:
        return _badge(_("Not screened"), "muted")
    return _badge(labels.label(labels.OUTCOME, value), labels.OUTCOME_TONE.get(value, "plain"))


@register.filter
def flag_badge(value) -> str:
    tone = "bad" if value in ("duplicate", "ineligible") else "warn"
    return _badge(labels.label(labels.REVIEW_FLAG, value), tone)


@register.filter
def audit_flag_badge(value) -> str:
    return _badge(labels.label(labels.AUDIT_FLAG, value), "warn")


@register.filter
def policy_badge(value) -> str:
    tone = {"block": "bad", "review": "warn", "allow": "muted"}.get(value, "plain")
    return _badge(labels.label(labels.POLICY, value), tone)


@register.filter
def registry_label(value) -> str:
    return labels.label(labels.REGISTRY, value)


@register.filter
def income_label(value) -> str:
    return labels.label(labels.INCOME, value)


@register.filter
def document_kind_label(value) -> str:
    return labels.label(labels.DOCUMENT_KIND, value)


@register.filter
def batch_kind_label(value) -> str:
    return labels.label(labels.BATCH_KIND, value)


@register.filter
def program_label(value) -> str:
    return labels.label(labels.PROGRAM, value)


@register.filter
def audit_action_label(value) -> str:
    return labels.label(labels.AUDIT_ACTION, value)


@register.filter
def district_label(code) -> str:
    district = SEOUL_DISTRICTS.get(code or "")
    if district is None:
        return code or "–"
    return district.name_ko if (get_language() or "ko").startswith("ko") else district.name_en


@register.filter
def bank_label(code) -> str:
    return BANKS.get(code, code) if code else "–"


def _value(value) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(_value(v) for v in value) or "–"
    if isinstance(value, dict):
        return "; ".join(f"{k} {_value(v)}" for k, v in value.items())
    if value is True:
        return _("yes")
    if value is False:
        return _("no")
    return "–" if value is None or value == "" else str(value)


@register.filter
def match_message(match) -> str:
    """What a duplicate match means, in Korean on a Korean page (the stored detail is English)."""
    english = match.get("detail", "")
    if not (get_language() or "ko").startswith("ko"):
        return english
    return MESSAGES.get(duplicate_code(match.get("registry") or ""), ("", english))[1] or english


@register.filter
def evidence_items(evidence) -> list[tuple[str, str]]:
    """A rule's evidence as (key, value) lines; nested matches are listed by match_periods."""
    if not isinstance(evidence, dict):
        return []
    return [(key, _value(value)) for key, value in evidence.items() if key != "matches"]


@register.filter
def match_periods(evidence) -> list[str]:
    """The periods a duplicate match covers, one line per registry row matched."""
    if not isinstance(evidence, dict):
        return []
    lines = []
    for match in evidence.get("matches") or []:
        if "training_from" in match:
            line = f"{match.get('training_from') or '?'} – {match.get('training_to') or '?'}"
            if match.get("course_id"):
                course = _("course %(id)s") % {"id": match["course_id"]}
                line += f" ({course})"
        elif "paid_from" in match:
            line = f"{match['paid_from'][:7]} – {match['paid_to'][:7]}"
        elif "year" in match:
            line = _("year %(year)s") % {"year": match["year"]}
        else:
            line = _value(match)
        lines.append(line)
    if evidence.get("applications"):
        lines.append(
            _("applications %(ids)s")
            % {"ids": ", ".join(f"#{i}" for i in evidence["applications"])}
        )
    if evidence.get("applicants"):
        lines.append(
            _("applicants %(ids)s") % {"ids": ", ".join(f"#{i}" for i in evidence["applicants"])}
        )
    return lines

"""Filters of the staff pages: won amounts, Seoul times, state badges and evidence."""

import datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from core.banks import BANKS
from core.districts import SEOUL_DISTRICTS
from eligibility.rules import MESSAGES, duplicate_code, rendered_rule
from payments.audit import payment_flags
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
    if kind == "recovery" and value == "open":
        tone = "warn"  # money still owed
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
def payment_flag_names(payment) -> list[str]:
    """The pre-release audit flags a payment of the batch page carries."""
    return payment_flags(payment)


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


def _record_line(record) -> str:
    """One matched registry row as a period (or year), the way a caseworker compares it."""
    if "training_from" in record:
        line = f"{record.get('training_from') or '?'} – {record.get('training_to') or '?'}"
        if record.get("course_id"):
            course = _("course %(id)s") % {"id": record["course_id"]}
            line += f" ({course})"
        return line
    if "paid_from" in record:
        return f"{(record['paid_from'] or '?')[:7]} – {(record.get('paid_to') or '?')[:7]}"
    if "year" in record:
        return _("year %(year)s") % {"year": record["year"]}
    return _value(record)


@register.filter
def match_periods(evidence) -> list[str]:
    """The periods a duplicate match covers, one line per registry row matched."""
    if not isinstance(evidence, dict):
        return []
    lines = [_record_line(match) for match in evidence.get("matches") or []]
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


@register.filter
def record_line(record) -> str:
    """One record of a duplicate match: its period, or the other application or applicant."""
    if not isinstance(record, dict):
        return "–"
    if "application" in record:
        return _("application #%(id)s") % {"id": record["application"]}
    if "applicant" in record:
        return _("applicant #%(id)s") % {"id": record["applicant"]}
    return _record_line(record)


# The registry whose duplicate gave a rule code (a blocking match raises its code).
_REGISTRY_OF_CODE = {duplicate_code(registry): registry for registry in labels.REGISTRY}


@register.filter
def flag_causes(causes) -> list[dict]:
    """A flag's causes as rule results with their Korean and English messages, and the
    registry of a match that caused one."""
    rendered = []
    for cause in causes or []:
        rule = rendered_rule(cause)
        rule["registry"] = _REGISTRY_OF_CODE.get(rule["code"] or "")
        rendered.append(rule)
    return rendered


@register.filter
def appeal_days_left(appeal) -> int | None:
    """Days left to decide an appeal; negative once its deadline has passed."""
    if appeal is None or appeal.deadline is None:
        return None
    return (appeal.deadline - timezone.localdate()).days


@register.filter
def appeal_due_badge(appeal) -> str:
    """How long the caseworkers have left to decide an open appeal, overdue in red."""
    days = appeal_days_left(appeal)
    if days is None:
        return ""
    if days < 0:
        text, tone = _("Overdue by %(n)s days") % {"n": -days}, "bad"
    elif days == 0:
        text, tone = _("Due today"), "bad"
    else:
        text, tone = _("%(n)s days left") % {"n": days}, "warn" if days <= 7 else "info"
    title = _("Decide by %(date)s") % {"date": appeal.deadline.isoformat()}
    return format_html('<span class="badge badge-{}" title="{}">{}</span>', tone, title, text)


@register.filter
def recovery_overdue(recovery) -> bool:
    """Whether an open recovery is past the day the recipient was to repay by."""
    return bool(recovery.outstanding) and recovery.due_on < timezone.localdate()


@register.filter
def recovery_due_badge(recovery) -> str:
    """An open recovery's due date, red once past it."""
    if not recovery.outstanding:
        return ""
    days = (recovery.due_on - timezone.localdate()).days
    if days < 0:
        return _badge(_("Overdue by %(n)s days") % {"n": -days}, "bad")
    if days == 0:
        return _badge(_("Due today"), "bad")
    return _badge(_("%(n)s days left") % {"n": days}, "warn" if days <= 7 else "info")


@register.filter
def recovery_rule_label(value) -> str:
    return labels.label(labels.RECOVERY_RULE, value)


@register.filter
def appeal_outcome_label(value) -> str:
    return labels.label(labels.APPEAL_OUTCOME, value)


@register.filter
def resolution_badge(value) -> str:
    tone = "bad" if value == "confirmed_duplicate" else "ok"
    return _badge(labels.label(labels.MATCH_RESOLUTION, value), tone)

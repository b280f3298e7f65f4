"""The round report: applications by state and district, the approval rate, duplicates
found by registry and where the money stands, with its CSV and its chart.

The report is read in a fixed number of aggregate queries, whatever the round's size.
"""

import csv
import io
from zoneinfo import ZoneInfo

import pygal
from django.db.models import Count, Q, Sum
from django.shortcuts import get_object_or_404
from django.utils import timezone
from pygal.style import Style

from benefits.models import Application, Round
from core.districts import SEOUL_DISTRICTS
from eligibility import rules
from eligibility.models import ScreeningRun
from payments.models import Payment
from payments.selectors import round_budget_ledger

SEOUL = ZoneInfo("Asia/Seoul")

Status = Application.Status
# A caseworker approved these; selection then placed some. Paid recipients are `selected`.
APPROVED_STATES = Application.APPROVED_STATES
# A rejection under appeal stays a decision until the appeal is decided.
DECIDED_STATES = (*APPROVED_STATES, Status.REJECTED, Status.APPEALED)

DUPLICATE_REGISTRIES = (
    rules.NAEILBAEUM,
    rules.YOUTH_ALLOWANCE,
    rules.NATIONAL_VOUCHER,
    rules.INTERNAL_APPLICATION,
    rules.SHARED_ACCOUNT,
)

DISTRICT_COLUMNS = (
    "district",
    "district_name",
    "applications",
    "approved",
    "selected",
    "paid",
    "paid_amount",
    "approval_rate",
)

# The report's queries besides the budget ledger's: statuses by district, payments by
# district, duplicates.
OWN_QUERIES = 3


def approval_rate(approved: int, decided: int) -> float | None:
    """Return approved / decided to four places, or None while nothing is decided."""
    # None, not 0.0: a round with no decision yet has not refused everyone.
    return round(approved / decided, 4) if decided else None


def round_for_report(*, pk: int) -> Round:
    """Return the round with its program, or 404."""
    return get_object_or_404(Round.objects.select_related("program"), pk=pk)


def round_report(*, round_: Round) -> dict:
    """Report on a round: applications, approval rate, districts, duplicates and amounts."""
    counts = _status_counts(round_)
    by_status = dict.fromkeys(Status.values, 0)
    for (_, status), n in counts.items():
        by_status[status] += n
    return {
        "round": round_.pk,
        "program": round_.program.code,
        "as_of": timezone.now().astimezone(SEOUL).isoformat(timespec="seconds"),
        "applications": {"total": sum(by_status.values()), "by_status": by_status},
        "approval_rate": _rate(by_status),
        "districts": _district_rows(counts, _paid_by_district(round_)),
        "duplicates": _duplicates(round_),
        "amounts": _amounts(round_),
    }


def round_report_districts(*, round_: Round) -> list[dict]:
    """Return the report's district rows: all 25 districts of Seoul, in code order."""
    return _district_rows(_status_counts(round_), _paid_by_district(round_))


def _status_counts(round_: Round) -> dict[tuple[str, str], int]:
    """Applications by (applicant's district, status)."""
    rows = (
        Application.objects.filter(round=round_)
        .values_list("applicant__district", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {(district, status): n for district, status, n in rows}


def _paid_by_district(round_: Round) -> dict[str, tuple[int, int]]:
    """Paid applications and the amount paid to them, by applicant's district."""
    rows = (
        Payment.objects.filter(round=round_, status=Payment.Status.PAID, application__isnull=False)
        .values_list("application__applicant__district")
        .annotate(n=Count("application_id", distinct=True), amount=Sum("amount"))
        .order_by()
    )
    return {district: (n, amount) for district, n, amount in rows}


def _rate(counts: dict[str, int]) -> float | None:
    return approval_rate(
        sum(counts.get(s, 0) for s in APPROVED_STATES),
        sum(counts.get(s, 0) for s in DECIDED_STATES),
    )


def _district_rows(by_district_status: dict, paid: dict) -> list[dict]:
    # Applicants without a Seoul district (a draft's unfinished profile) count in the
    # round's total but in no district.
    return [_district_row(code, by_district_status, paid) for code in SEOUL_DISTRICTS]


def _district_row(code: str, by_district_status: dict, paid: dict) -> dict:
    counts = {status: by_district_status.get((code, status), 0) for status in Status.values}
    paid_count, paid_amount = paid.get(code, (0, 0))
    return {
        "district": code,
        "district_name": SEOUL_DISTRICTS[code].name_ko,
        "applications": sum(counts.values()),
        "approved": sum(counts[s] for s in APPROVED_STATES),
        "selected": counts[Status.SELECTED],
        "paid": paid_count,
        "paid_amount": paid_amount,
        "approval_rate": _rate(counts),
    }


def _has_match(registry: str) -> Q:
    """A run's stored duplicates name this registry.

    rules.duplicate_checks records at most one match per registry, so a run holds at most
    len(DUPLICATE_REGISTRIES) matches. Looking at each position works alike on SQLite and
    PostgreSQL; SQLite has no JSON containment lookup.
    """
    query = Q()
    for position in range(len(DUPLICATE_REGISTRIES)):
        query |= Q(**{f"duplicates__{position}__registry": registry})
    return query


def _duplicates(round_: Round) -> dict[str, int]:
    """Applications whose current screening found a match, by registry."""
    # One current run per application (one_current_screening_per_application); counting
    # distinct applications says what is meant all the same.
    return ScreeningRun.objects.filter(
        application__round=round_, is_current=True, duplicate_found=True
    ).aggregate(
        **{
            registry: Count("application_id", distinct=True, filter=_has_match(registry))
            for registry in DUPLICATE_REGISTRIES
        }
    )


def _amounts(round_: Round) -> dict[str, int]:
    ledger = round_budget_ledger(round_).as_dict()
    return {
        "budget": ledger["budget"],
        "committed": ledger["committed"],
        "paid": ledger["paid"],
        "failed": ledger["failed"],
        "lapsed": ledger["returned"],
        # Repaid by recipients whose training ended early, and still claimed from them.
        "recovered": ledger["recovered"],
        "to_recover": ledger["to_recover"],
        "available": ledger["available"],
    }


def report_districts_csv(districts: list[dict]) -> str:
    """Render the report's district rows as CSV, one line per district."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(DISTRICT_COLUMNS)
    for row in districts:
        rate = row["approval_rate"]
        writer.writerow([*(row[c] for c in DISTRICT_COLUMNS[:-1]), "" if rate is None else rate])
    return out.getvalue()


def recipient_rate(row: dict) -> float | None:
    """Return the share of a district's applications that became recipients, paid or not."""
    return row["selected"] / row["applications"] if row["applications"] else None


def chart_order(districts: list[dict]) -> list[dict]:
    """Order the districts as the chart shows them: highest recipient rate first, none last."""

    def key(row: dict):
        rate = recipient_rate(row)
        return (rate is None, -(rate or 0), -row["applications"], row["district"])

    return sorted(districts, key=key)


# Fonts are named, never fetched: the chart renders offline with what the reader has.
_CHART_STYLE = Style(
    font_family="'Noto Sans CJK KR', 'Noto Sans KR', 'Malgun Gothic', 'Apple SD Gothic Neo', "
    "'Nanum Gothic', sans-serif",
    background="white",
    plot_background="white",
    colors=("#9fb3c8", "#1f5f99"),
    label_font_size=13,
    major_label_font_size=13,
    value_font_size=11,
    legend_font_size=14,
    title_font_size=17,
)


def _without_scripts(root):
    # pygal always writes an inline script for its tooltips; the chart is a picture.
    for parent in list(root.iter()):
        for child in list(parent):
            if isinstance(child.tag, str) and child.tag.rpartition("}")[2] == "script":
                parent.remove(child)
    return root


def chart_label(row: dict) -> str:
    """Label a district on the chart with its name and its recipient rate."""
    rate = recipient_rate(row)
    return f"{row['district_name']} {'—' if rate is None else f'{rate:.1%}'}"


def report_chart_svg(districts: list[dict], *, title: str) -> bytes:
    """Draw applications and recipients by district, highest recipient rate on top, as SVG."""
    # pygal draws the first label at the bottom: bottom-up, the highest rate is on top.
    rows = chart_order(districts)[::-1]
    chart = pygal.HorizontalBar(
        style=_CHART_STYLE,
        js=[],
        width=900,
        height=170 + 32 * len(rows),
        title=title,
        x_title="건수 (자치구 옆 비율은 선정률 = 선정 ÷ 신청)",
        legend_at_bottom=True,
        print_values=True,
        print_zeroes=False,
        x_labels=[chart_label(row) for row in rows],
        truncate_label=-1,
        include_x_axis=True,
        min_scale=1,
    )
    chart.add_xml_filter(_without_scripts)
    chart.add("신청", [row["applications"] for row in rows])
    chart.add("선정 (지급 포함)", [row["selected"] for row in rows])
    return chart.render()


def round_report_chart(*, round_: Round) -> bytes:
    """Draw the round's applications and recipients by district, read now, as SVG."""
    as_of = timezone.now().astimezone(SEOUL)
    title = f"{round_.name}: 자치구별 신청·선정 ({as_of:%Y-%m-%d %H:%M} 기준)"
    return report_chart_svg(round_report_districts(round_=round_), title=title)

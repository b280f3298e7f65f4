"""Round reports for every staff role: the report's numbers and its district chart."""

from django.shortcuts import render

from benefits import reports
from staff import selectors as staff_selectors
from staff.access import REPORTS_READ, staff_view
from staff.views.common import paginate


@staff_view(*REPORTS_READ)
def report_list(request):
    page = paginate(request, staff_selectors.round_list())
    return render(request, "staff/reports/report_list.html", {"menu": "reports", "page": page})


@staff_view(*REPORTS_READ)
def report_detail(request, pk: int):
    """The same numbers as GET /api/v1/reports/rounds/{id}/, and its chart."""
    round_ = reports.round_for_report(pk=pk)
    report = reports.round_report(round_=round_)
    districts = [
        {**row, "recipient_rate": reports.recipient_rate(row)} for row in report["districts"]
    ]
    rates = [row["recipient_rate"] for row in districts if row["recipient_rate"] is not None]
    return render(
        request,
        "staff/reports/report.html",
        {
            "menu": "reports",
            "round": round_,
            "report": report,
            "districts": districts,
            # Marked only where districts differ: the gap is what the page is for.
            "highest": max(rates) if len(set(rates)) > 1 else None,
            "lowest": min(rates) if len(set(rates)) > 1 else None,
        },
    )

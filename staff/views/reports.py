"""Round reports for every staff role."""

from django.shortcuts import render

from staff import selectors as staff_selectors
from staff.access import REPORTS_READ, staff_view
from staff.views.common import paginate


@staff_view(*REPORTS_READ)
def report_list(request):
    page = paginate(request, staff_selectors.round_list())
    return render(request, "staff/reports/report_list.html", {"menu": "reports", "page": page})

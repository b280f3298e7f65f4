"""Signing in and out, the language switch, and the home page of each role."""

from django.conf import settings
from django.contrib.auth.views import LoginView, LogoutView
from django.shortcuts import render
from django.urls import reverse_lazy

from benefits.models import Application, Round
from payments.models import DisbursementBatch
from staff.access import CASEWORKER, FINANCE, MANAGER, ROLE_NAMES, STAFF, can, staff_view
from staff.forms import StaffAuthenticationForm


class StaffLoginView(LoginView):
    template_name = "staff/login.html"
    authentication_form = StaffAuthenticationForm
    redirect_authenticated_user = True
    next_page = reverse_lazy("staff:home")

    def form_valid(self, form):
        response = super().form_valid(form)
        # A working day, then sign in again (or until the browser closes, if so configured).
        self.request.session.set_expiry(
            0 if settings.SESSION_EXPIRE_AT_BROWSER_CLOSE else settings.BAEUM_STAFF_SESSION_SECONDS
        )
        return response


class StaffLogoutView(LogoutView):
    next_page = reverse_lazy("staff:login")


@staff_view(*STAFF)
def home(request):
    """What waits for each of the user's roles, one count each."""
    waiting = {}
    if can(request, CASEWORKER):
        waiting["review"] = Application.objects.filter(
            status=Application.Status.UNDER_REVIEW
        ).count()
    if can(request, FINANCE):
        waiting["approval"] = DisbursementBatch.objects.filter(
            status=DisbursementBatch.Status.PENDING_APPROVAL
        ).count()
        waiting["sent"] = DisbursementBatch.objects.filter(
            status=DisbursementBatch.Status.SENT
        ).count()
    if can(request, MANAGER):
        waiting["open_rounds"] = Round.objects.filter(status=Round.Status.OPEN).count()
    roles = [ROLE_NAMES[r] for r in STAFF if r in request.staff_roles]
    return render(request, "staff/home.html", {"menu": "home", "waiting": waiting, "roles": roles})

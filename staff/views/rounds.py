"""The program manager's pages: rounds (open, close, select) and the voucher top-up."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from benefits import rounds
from benefits.models import Round
from benefits.selection import round_select
from payments import vouchers
from payments.selectors import round_budget_ledger
from staff import selectors as staff_selectors
from staff.access import ROUNDS_READ, ROUNDS_WRITE, can, staff_view
from staff.feedback import form_errors, run_service
from staff.forms import RoundMoneyForm
from staff.views.common import paginate

# The transitions a manager asks for on the round page; the FSM says which apply now.
ROUND_ACTIONS = ("open", "close", "select")


@staff_view(*ROUNDS_READ)
def round_list(request):
    page = paginate(request, staff_selectors.round_list())
    return render(request, "staff/rounds/round_list.html", {"menu": "rounds", "page": page})


@staff_view(*ROUNDS_READ)
def round_detail(request, pk: int):
    round_ = get_object_or_404(Round.objects.select_related("program"), pk=pk)
    writable = can(request, *ROUNDS_WRITE)
    available = (
        {t.name for t in round_.get_available_user_status_transitions(request.user)}
        if writable
        else set()
    )
    is_voucher = round_.program.code == "VOUCHER"
    return render(
        request,
        "staff/rounds/round.html",
        {
            "menu": "rounds",
            "round": round_,
            "counts": staff_selectors.round_status_counts(round_),
            "ledger": round_budget_ledger(round_),
            "voucher": staff_selectors.round_voucher_summary(round_) if is_voucher else None,
            "is_voucher": is_voucher,
            "actions": [a for a in ROUND_ACTIONS if a in available],
            "can_top_up": writable and is_voucher and round_.top_up_amount > 0,
            "writable": writable,
            "money_form": RoundMoneyForm(
                initial={name: getattr(round_, name) for name in RoundMoneyForm.MONEY_FIELDS}
            )
            if writable and round_.status not in (Round.Status.COMPLETED, Round.Status.CANCELLED)
            else None,
        },
    )


def _transition_call(action: str, round_: Round, actor):
    if action == "open":
        return lambda: rounds.round_open(round_=round_, actor=actor)
    if action == "close":
        return lambda: rounds.round_close(round_=round_, actor=actor)
    return lambda: round_select(round_=round_, actor=actor)


@require_POST
@staff_view(*ROUNDS_WRITE)
def round_transition(request, pk: int, action: str):
    round_ = get_object_or_404(Round, pk=pk)
    ok, result = run_service(request, _transition_call(action, round_, request.user))
    if not ok:
        return redirect("staff:round", pk)
    if action == "select":
        messages.success(
            request,
            _(
                "Selection done: %(selected)s selected, %(waitlisted)s waitlisted, "
                "%(seats)s seats left. Lottery seed: %(seed)s"
            )
            % {
                "selected": result.selected,
                "waitlisted": result.waitlisted,
                "seats": result.seats_left,
                "seed": result.round.selection_seed,
            },
        )
    else:
        done = {"open": _("Round opened."), "close": _("Round closed.")}[action]
        messages.success(request, done)
    return redirect("staff:round", pk)


@require_POST
@staff_view(*ROUNDS_WRITE)
def round_money(request, pk: int):
    """Change the round's money settings through the service that audits them."""
    round_ = get_object_or_404(Round, pk=pk)
    form = RoundMoneyForm(request.POST)
    if not form.is_valid():
        form_errors(request, form)
        return redirect("staff:round", pk)
    changes = form.changes(round_)
    if not changes:
        messages.info(request, _("Nothing changed."))
        return redirect("staff:round", pk)
    run_service(
        request,
        lambda: rounds.round_money_change(
            round_=round_, actor=request.user, reason=form.cleaned_data["reason"], **changes
        ),
        success=_("The round's money settings were changed."),
    )
    return redirect("staff:round", pk)


@require_POST
@staff_view(*ROUNDS_WRITE)
def round_top_up(request, pk: int):
    round_ = get_object_or_404(Round, pk=pk)
    ok, result = run_service(
        request, lambda: vouchers.voucher_top_up(round_=round_, actor=request.user)
    )
    if ok:
        messages.success(
            request,
            _("Top-up: %(granted)s granted (%(eligible)s eligible, limit %(limit)s).") % result,
        )
    return redirect("staff:round", pk)

from django.urls import path
from django.views.i18n import set_language

import api.urls  # noqa: F401 - registers the "id" path converter (a database id, or 404)
from staff.views import (
    after_decision,
    auth,
    finance,
    recoveries,
    registries,
    reports,
    review,
    rounds,
)

app_name = "staff"

urlpatterns = [
    path("", auth.home, name="home"),
    path("login/", auth.StaffLoginView.as_view(), name="login"),
    path("logout/", auth.StaffLogoutView.as_view(), name="logout"),
    path("language/", set_language, name="set_language"),
    # Caseworkers
    path("review/", review.queue, name="queue"),
    path("review/<id:pk>/", review.application_detail, name="application"),
    path("review/<id:pk>/documents/<id:document_id>/", review.document, name="document"),
    path("review/<id:pk>/approve/", review.approve, name="approve"),
    path("review/<id:pk>/reject/", review.reject, name="reject"),
    path("review/<id:pk>/request-documents/", review.request_documents, name="request_documents"),
    path("review/<id:pk>/reveal-rrn/", review.reveal_rrn, name="reveal_rrn"),
    path("review/<id:pk>/appeal-decision/", after_decision.appeal_decide, name="appeal_decide"),
    path("review/<id:pk>/clear-flag/", after_decision.flag_clear, name="flag_clear"),
    path("review/<id:pk>/revoke/", after_decision.revoke, name="revoke"),
    path("review/<id:pk>/training-ended/", after_decision.training_end, name="training_end"),
    path(
        "review/<id:pk>/matches/<str:match_id>/resolve/",
        after_decision.match_resolve_view,
        name="match_resolve",
    ),
    # Finance
    path("batches/", finance.batch_list, name="batch_list"),
    path("batches/new/", finance.batch_create, name="batch_create"),
    path("batches/new-settlement/", finance.settlement_create, name="settlement_create"),
    path("batches/<id:pk>/", finance.batch_detail, name="batch"),
    *[
        path(
            f"batches/<id:pk>/{action}/",
            finance.batch_transition,
            {"action": action},
            name=f"batch_{action}",
        )
        for action in finance.BATCH_ACTIONS
    ],
    path("batches/<id:pk>/audit/", finance.batch_audit_recheck, name="batch_audit_recheck"),
    path("batches/<id:pk>/export/<str:fmt>/", finance.batch_export, name="batch_export"),
    path("batches/<id:pk>/results/", finance.batch_results, name="batch_results"),
    path(
        "batches/<id:pk>/results/<id:import_pk>/progress/",
        finance.batch_results_progress,
        name="batch_results_progress",
    ),
    path(
        "batches/<id:pk>/payments/<id:payment_pk>/hold/", finance.payment_hold, name="payment_hold"
    ),
    path("recoveries/", recoveries.recovery_list, name="recovery_list"),
    path("recoveries/<id:pk>/", recoveries.recovery_detail, name="recovery"),
    path(
        "recoveries/<id:pk>/repayments/",
        recoveries.repayment_record,
        name="recovery_repayment",
    ),
    path("recoveries/<id:pk>/waive/", recoveries.waiver_request, name="recovery_waive"),
    path(
        "recoveries/<id:pk>/approve-waiver/",
        recoveries.waiver_approve,
        name="recovery_approve_waiver",
    ),
    # Program managers
    path("rounds/", rounds.round_list, name="round_list"),
    path("rounds/<id:pk>/", rounds.round_detail, name="round"),
    path("rounds/<id:pk>/top-up/", rounds.round_top_up, name="round_top_up"),
    path("rounds/<id:pk>/money/", rounds.round_money, name="round_money"),
    *[
        path(
            f"rounds/<id:pk>/{action}/",
            rounds.round_transition,
            {"action": action},
            name=f"round_{action}",
        )
        for action in rounds.ROUND_ACTIONS
    ],
    path("registries/", registries.registry_list, name="registry_list"),
    path("registries/imports/<id:pk>/", registries.import_detail, name="registry_import"),
    path(
        "registries/imports/<id:pk>/progress/",
        registries.import_progress,
        name="registry_import_progress",
    ),
    # Everyone on staff
    path("reports/", reports.report_list, name="report_list"),
    path("reports/<id:pk>/", reports.report_detail, name="report"),
]

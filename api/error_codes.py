"""The error codes each operation answers beyond those drf-standardized-errors finds in its
serializer and filter fields: what the services refuse (a closed appeal window, a batch its
maker approves, a state that does not allow the move). api/schema.py writes them into the
OpenAPI schema; tests/api/test_fuzz.py fails on a code an operation answers that is not here.

Keyed by (method, path); for each error status, the codes by `attr`, the field the error
names (`non_field_errors` for the request as a whole, `status` for the object's state).
"""

from benefits.services import PROFILE_REQUIRED_FOR_SUBMIT

TRANSITION = {"status": ["invalid_transition", "conflict"]}
REASON = {"reason": ["required"]}
RECOVERY_CLOSED = {"status": ["recovery_closed", "conflict"]}

RESULT_FILE = [
    "invalid_result_file", "invalid", "encoding", "csv", "header", "columns", "reference",
    "duplicate_reference", "result", "reason_required", "empty_file", "xml", "xml_doctype",
    "not_pain002", "status", "unknown_reference", "result_conflict", "file_too_large",
]  # fmt: skip
PROFILE = {
    "rrn": [
        "invalid_format", "invalid_gender_digit", "invalid_birth_date", "rrn_locked", "rrn_taken",
    ],
    "account_number": ["invalid_account_number"],
}  # fmt: skip
V1 = "/api/v1"

ERRORS: dict[tuple[str, str], dict[int, dict[str, list[str]]]] = {
    ("POST", f"{V1}/auth/token/"): {400: {"non_field_errors": ["invalid_login"]}},
    ("POST", f"{V1}/auth/register/"): {
        400: {"username": ["unique"], "password": ["password_too_weak"]},
    },
    ("POST", f"{V1}/rounds/{{id}}/open/"): {409: TRANSITION},
    ("POST", f"{V1}/rounds/{{id}}/close/"): {409: TRANSITION},
    ("POST", f"{V1}/rounds/{{id}}/select/"): {409: TRANSITION},
    ("POST", f"{V1}/rounds/{{id}}/money/"): {
        400: {
            **REASON,
            "amount": ["fixed_after_open"],
            "capacity": ["fixed_after_open"],
            "budget": ["budget_below_capacity"],
        },
        409: {**TRANSITION, "budget": ["budget_below_committed"]},
    },
    ("POST", f"{V1}/rounds/{{id}}/voucher-top-up/"): {
        400: {"non_field_errors": ["no_top_up"]},
        409: {**TRANSITION, "non_field_errors": ["over_budget"]},
    },
    ("PUT", f"{V1}/me/profile/"): {400: PROFILE},
    ("PATCH", f"{V1}/me/profile/"): {400: PROFILE},
    ("POST", f"{V1}/applications/"): {
        400: {
            "round": ["round_not_open", "already_applied"],
            "training": ["required"],
            "training.course_name": ["required"],
            "training.institution": ["required"],
            "training.starts_on": ["required", "out_of_range"],
            "training.ends_on": ["required", "out_of_range", "ends_before_start"],
            "training.weekly_hours": ["required"],
        },
    },
    ("PATCH", f"{V1}/applications/{{id}}/"): {
        400: {
            "training": ["required"],
            "training.course_name": ["required"],
            "training.institution": ["required"],
            "training.starts_on": ["required", "out_of_range"],
            "training.ends_on": ["required", "out_of_range", "ends_before_start"],
            "training.weekly_hours": ["required"],
        },
        409: {"status": ["not_editable", "invalid_transition", "conflict"]},
    },
    ("POST", f"{V1}/applications/{{id}}/documents/"): {
        400: {"file": ["file_too_large", "unsupported_file_type", "unreadable_file"]},
        409: {"status": ["not_editable"], "documents": ["too_many_documents"]},
    },
    ("POST", f"{V1}/applications/{{id}}/submit/"): {
        400: {
            "round": ["round_not_open"],
            **{f"profile.{name}": ["profile_incomplete"] for name in PROFILE_REQUIRED_FOR_SUBMIT},
            "profile.consent_data_checks": ["consent_required"],
            "training": ["required"],
            "training.course_name": ["required"],
            "training.institution": ["required"],
            "training.starts_on": ["required"],
            "training.ends_on": ["required"],
            "training.weekly_hours": ["required"],
        },
        409: TRANSITION,
    },
    ("POST", f"{V1}/applications/{{id}}/withdraw/"): {409: TRANSITION},
    ("POST", f"{V1}/applications/{{id}}/appeal/"): {
        400: {"reason": ["required", "appeal_window_closed"]},
        409: {"status": ["invalid_transition", "conflict", "rejection_final"]},
    },
    ("POST", f"{V1}/review/applications/{{id}}/approve/"): {409: TRANSITION},
    ("POST", f"{V1}/review/applications/{{id}}/reject/"): {400: REASON, 409: TRANSITION},
    ("POST", f"{V1}/review/applications/{{id}}/request-documents/"): {
        400: REASON,
        409: TRANSITION,
    },
    ("POST", f"{V1}/review/applications/{{id}}/reveal-rrn/"): {400: REASON},
    ("POST", f"{V1}/review/applications/{{id}}/appeal-decision/"): {
        400: REASON,
        403: {"outcome": ["same_reviewer"]},
        409: TRANSITION,
    },
    ("POST", f"{V1}/review/applications/{{id}}/revoke/"): {400: REASON, 409: TRANSITION},
    ("POST", f"{V1}/review/applications/{{id}}/clear-flag/"): {
        400: REASON,
        409: {"status": ["invalid_transition", "conflict", "no_open_flag"]},
    },
    ("POST", f"{V1}/review/applications/{{id}}/matches/{{match_id}}/resolve/"): {
        400: REASON,
        409: TRANSITION,
    },
    ("POST", f"{V1}/review/applications/{{id}}/training-ended/"): {
        400: {
            "ended_on": ["no_training", "future", "outside_training"],
            "evidence": ["file_too_large", "unsupported_file_type", "unreadable_file"],
        },
        409: {
            **TRANSITION,
            "application": ["voucher_program", "recovery_exists", "payment_in_progress"],
        },
    },
    ("POST", f"{V1}/recoveries/{{id}}/repayments/"): {
        400: {"amount": ["exceeds_outstanding"], "paid_on": ["future", "before_training_end"]},
        409: RECOVERY_CLOSED,
    },
    ("POST", f"{V1}/recoveries/{{id}}/waive/"): {
        400: REASON,
        409: {**RECOVERY_CLOSED, "non_field_errors": ["waiver_pending"]},
    },
    ("POST", f"{V1}/recoveries/{{id}}/approve-waiver/"): {
        403: {"approved_by": ["maker_checker"]},
        409: {"status": ["recovery_closed", "no_waiver_requested", "conflict"]},
    },
    ("POST", f"{V1}/registries/{{kind}}/imports/"): {400: {"kind": ["unknown_kind"]}},
    ("POST", f"{V1}/disbursements/"): {
        400: {
            "round": ["round_not_selected", "nothing_to_pay", "not_a_voucher_round"],
            "period_starts_on": ["required"],
            "period_ends_on": ["required", "invalid_period"],
        },
        409: {"round": ["over_budget", "batch_building"]},
    },
    ("POST", f"{V1}/disbursements/{{id}}/submit/"): {
        400: {"non_field_errors": ["nothing_to_pay"]},
        409: {"status": ["invalid_transition", "conflict", "batch_building"]},
    },
    ("POST", f"{V1}/disbursements/{{id}}/approve/"): {
        403: {"approved_by": ["maker_checker"]},
        409: {
            "status": ["invalid_transition", "conflict", "batch_building"],
            "round": ["over_budget"],
        },
    },
    ("POST", f"{V1}/disbursements/{{id}}/disburse/"): {
        409: {**TRANSITION, "non_field_errors": ["export_missing"]},
    },
    ("POST", f"{V1}/disbursements/{{id}}/cancel/"): {
        400: REASON,
        409: {"status": ["invalid_transition", "conflict", "batch_building"]},
    },
    ("POST", f"{V1}/disbursements/{{id}}/close/"): {409: TRANSITION},
    ("POST", f"{V1}/disbursements/{{id}}/results/"): {
        400: {"file": RESULT_FILE},
        409: TRANSITION,
    },
    ("POST", f"{V1}/disbursements/{{id}}/payments/{{payment_pk}}/hold/"): {
        400: REASON,
        409: TRANSITION,
    },
    ("GET", f"{V1}/disbursements/{{id}}/export/"): {
        400: {"format": ["invalid_choice"]},
        409: {"status": ["invalid_transition"], "format": ["no_file"]},
    },
    ("GET", f"{V1}/reports/rounds/{{id}}/"): {400: {"format": ["invalid_choice"]}},
    ("POST", f"{V1}/vouchers/redemptions/"): {
        400: {
            "voucher_code": ["unknown_voucher", "voucher_expired"],
            "non_field_errors": ["provider_suspended"],
            "purpose": ["not_a_course"],
            "course": ["required"],
            "amount": ["insufficient_balance"],
        },
    },
    ("POST", f"{V1}/vouchers/redemptions/{{id}}/refund/"): {
        400: {"amount": ["invalid_amount"]},
        409: {"non_field_errors": ["refunded"]},
    },
    ("POST", f"{V1}/vouchers/redemptions/{{id}}/complete/"): {409: TRANSITION},
}

IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_ERRORS = {
    400: {IDEMPOTENCY_HEADER: ["invalid_idempotency_key"]},
    409: {IDEMPOTENCY_HEADER: ["idempotency_request_in_progress"]},
    422: {IDEMPOTENCY_HEADER: ["idempotency_key_reused"]},
}
PAGE_SIZE_ERRORS = {400: {"page_size": ["invalid", "min_value", "max_value"]}}

"""Request and response examples for the OpenAPI schema: the citizen's and the caseworker's
main calls, with values as the demo gives them (see README.md, "Walk-through with curl")."""

from drf_spectacular.utils import OpenApiExample

_SEOUL = "+09:00"
_ASKED = "내일배움카드 훈련과 다른 과정임을 보여 주는 수강 확인서를 올려 주세요."
_DOCUMENT = {
    "id": 141,
    "kind": "enrollment_certificate",
    "original_name": "certificate.pdf",
    "content_type": "application/pdf",
    "size": 48213,
    "sha256": "f246a0043abad99c6fe9964c6dbd54b20a506bdd2720b0bf7b14a21f9bc4aa61",
    "uploaded_at": f"2026-12-03T09:50:14{_SEOUL}",
}
_TRAINING = {
    "course_id": "AIG20260001",
    "course_name": "빅데이터 분석 실무",
    "institution": "서울직업전문학교",
    "starts_on": "2026-12-03",
    "ends_on": "2027-03-31",
    "weekly_hours": 15,
}


def _application(status: str, **fields) -> dict:
    return {
        "id": 201,
        "round": 4,
        "program": "SCHOLARSHIP",
        "status": status,
        "income_category": "basic_livelihood",
        "training": _TRAINING,
        "documents": [_DOCUMENT],
        "missing_documents": [],
        "decision_reason": "",
        "payments": [],
        "submitted_at": f"2026-12-03T09:50:16{_SEOUL}",
        "decided_at": None,
        "created_at": f"2026-12-03T09:50:14{_SEOUL}",
        "updated_at": f"2026-12-03T09:50:16{_SEOUL}",
        **fields,
    }


def _error(kind: str, code: str, detail: str, attr: str | None) -> dict:
    return {"type": kind, "errors": [{"code": code, "detail": detail, "attr": attr}]}


REGISTER = [
    OpenApiExample(
        "A new citizen",
        request_only=True,
        value={
            "username": "jiwoo",
            "password": "a-long-passphrase-9",
            "email": "jiwoo@example.org",
        },
    ),
    OpenApiExample(
        "Registered",
        response_only=True,
        status_codes=["201"],
        value={"id": 201, "username": "jiwoo", "email": "jiwoo@example.org"},
    ),
    OpenApiExample(
        "Username taken",
        response_only=True,
        status_codes=["400"],
        value=_error("validation_error", "unique", "This username is taken.", "username"),
    ),
]

TOKEN = [
    OpenApiExample(
        "Log in",
        request_only=True,
        value={"username": "jiwoo", "password": "a-long-passphrase-9"},
    ),
    OpenApiExample(
        "A token for the Authorization header",
        response_only=True,
        value={"token": "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"},
    ),
]

_PROFILE_IN = {
    "legal_name": "박지우",
    "rrn": "900101-2345678",
    "phone": "010-1111-2222",
    "email": "jiwoo@example.org",
    "district": "11440",
    "address": "서울특별시 마포구 월드컵북로 400",
    "bank_code": "004",
    "account_number": "123-4567-89012",
    "account_holder": "박지우",
    "consent_data_checks": True,
}
_PROFILE_OUT = {
    **_PROFILE_IN,
    "rrn": "900101-2******",
    "birth_date": "1990-01-01",
    "district_name": "마포구",
    "account_number": "****9012",
    "consent_at": f"2026-12-03T09:50:14{_SEOUL}",
}
PROFILE = [
    OpenApiExample("The whole profile", request_only=True, value=_PROFILE_IN),
    OpenApiExample(
        "The profile with the RRN and account masked", response_only=True, value=_PROFILE_OUT
    ),
    OpenApiExample(
        "An impossible birth date in the RRN",
        response_only=True,
        status_codes=["400"],
        value=_error(
            "validation_error",
            "invalid_birth_date",
            "The resident registration number does not start with a valid birth date.",
            "rrn",
        ),
    ),
]
PROFILE_READ = [PROFILE[1]]

APPLICATION_CREATE = [
    OpenApiExample(
        "A scholarship application",
        request_only=True,
        value={"round": 4, "income_category": "basic_livelihood", "training": _TRAINING},
    ),
    OpenApiExample(
        "The draft",
        response_only=True,
        status_codes=["201"],
        value=_application(
            "draft",
            documents=[],
            missing_documents=["enrollment_certificate"],
            submitted_at=None,
        ),
    ),
    OpenApiExample(
        "The scholarship needs the training",
        response_only=True,
        status_codes=["400"],
        value=_error(
            "validation_error", "required", "Training is required for the scholarship.", "training"
        ),
    ),
]
DOCUMENT_UPLOAD = [
    OpenApiExample(
        "The enrollment certificate stored",
        response_only=True,
        status_codes=["201"],
        value=_DOCUMENT,
    ),
]
APPLICATION_SUBMIT = [
    OpenApiExample(
        "Submitted - screening follows",
        response_only=True,
        value=_application("submitted"),
    ),
    OpenApiExample(
        "Consent missing",
        response_only=True,
        status_codes=["400"],
        value=_error(
            "validation_error",
            "consent_required",
            "Consent to the eligibility and duplicate-benefit checks is required to submit.",
            "profile.consent_data_checks",
        ),
    ),
]
APPLICATION_READ = [
    OpenApiExample(
        "Waiting for a caseworker",
        response_only=True,
        value=_application("under_review"),
    ),
]

_QUEUE_ITEM = {
    "id": 201,
    "round": 4,
    "program": "SCHOLARSHIP",
    "status": "under_review",
    "income_category": "basic_livelihood",
    "applicant": {
        "id": 201,
        "legal_name": "박지우",
        "district": "11440",
        "district_name": "마포구",
    },
    "submitted_at": f"2026-12-03T09:50:16{_SEOUL}",
    "screening_outcome": "needs_review",
    "flags": ["duplicate", "needs_review"],
}
REVIEW_QUEUE = [
    OpenApiExample(
        "Applications with a duplicate benefit to look at",
        response_only=True,
        value={"count": 1, "next": None, "previous": None, "results": [_QUEUE_ITEM]},
    ),
]


def _detail(status: str, **fields) -> dict:
    return {
        **_QUEUE_ITEM,
        "status": status,
        "applicant": {
            "id": 201,
            "legal_name": "박지우",
            "rrn": "900101-2******",
            "birth_date": "1990-01-01",
            "district": "11440",
            "district_name": "마포구",
            "phone": "010-1111-2222",
            "email": "jiwoo@example.org",
            "bank_code": "004",
            "account_number": "****9012",
            "account_holder": "박지우",
            "account_changed_at": None,
        },
        "training": _TRAINING,
        "documents": [_DOCUMENT],
        "decision_reason": "",
        "decided_at": None,
        "screening": {
            "id": 192,
            "outcome": "needs_review",
            "ruleset_version": "scholarship-2026.1",
            "rules": [
                {
                    "rule": "income_status",
                    "outcome": "pass",
                    "code": "income_status_confirmed",
                    "message": "The claimed income category is confirmed by the registry.",
                    "message_ko": "신청한 소득 구분이 사회보장 정보로 확인되었습니다.",
                    "evidence": {
                        "claimed": "basic_livelihood",
                        "applied_on": "2026-12-03",
                        "status": "basic_livelihood",
                        "district": "11440",
                        "valid_from": "2025-01-01",
                        "valid_to": None,
                    },
                },
                {
                    "rule": "duplicate_naeilbaeum",
                    "outcome": "review",
                    "code": "duplicate_naeilbaeum",
                    "message": "Holds a Naeil-baeum card for an overlapping training.",
                    "message_ko": "기간 또는 과정이 겹치는 국민내일배움카드 훈련 이력이 있습니다.",
                    "evidence": {
                        "matches": [
                            {
                                "course_id": "HRD202600000",
                                "training_from": "2026-12-01",
                                "training_to": "2027-03-31",
                                "same_course": False,
                                "same_period": True,
                            }
                        ],
                        "policy": "review",
                    },
                },
            ],
            "duplicates": [
                {
                    "registry": "naeilbaeum",
                    "action": "review",
                    "detail": "Holds a Naeil-baeum card for an overlapping training.",
                }
            ],
            "snapshot_ids": {"social_security": 2, "naeilbaeum": 3, "training_courses": 1},
            "created_at": f"2026-12-03T09:50:16{_SEOUL}",
        },
        "history": [
            {
                "at": f"2026-12-03T09:50:14{_SEOUL}",
                "action": "application.submitted",
                "actor": "jiwoo",
                "from_state": "draft",
                "to_state": "submitted",
                "reason": "",
            }
        ],
        **fields,
    }


REVIEW_DETAIL = [
    OpenApiExample(
        "Screening asks for a person - a Naeil-baeum card overlaps",
        response_only=True,
        value=_detail("under_review"),
    ),
]
_REASON_REQUIRED = OpenApiExample(
    "No reason given",
    response_only=True,
    status_codes=["400"],
    value=_error("validation_error", "required", "A reason is required.", "reason"),
)
REVIEW_APPROVE = [
    OpenApiExample(
        "Approve with an optional note",
        request_only=True,
        value={"reason": "다른 과정 수강 확인"},
    ),
    OpenApiExample(
        "Approved",
        response_only=True,
        value=_detail(
            "approved",
            decision_reason="다른 과정 수강 확인",
            decided_at=f"2026-12-03T10:02:41{_SEOUL}",
        ),
    ),
]
REVIEW_REJECT = [
    OpenApiExample(
        "Reject saying why",
        request_only=True,
        value={"reason": "사회보장 정보로 자격이 확인되지 않습니다."},
    ),
    OpenApiExample(
        "Rejected",
        response_only=True,
        value=_detail(
            "rejected",
            decision_reason="사회보장 정보로 자격이 확인되지 않습니다.",
            decided_at=f"2026-12-03T10:02:41{_SEOUL}",
        ),
    ),
    _REASON_REQUIRED,
]
REVIEW_REQUEST_DOCUMENTS = [
    OpenApiExample(
        "Ask for a document",
        request_only=True,
        value={
            "reason": _ASKED,
            "documents": ["other"],
        },
    ),
    OpenApiExample(
        "Waiting for the citizen",
        response_only=True,
        value=_detail(
            "needs_documents",
            flags=["duplicate", "needs_review", "needs_documents"],
            decision_reason=_ASKED,
        ),
    ),
    _REASON_REQUIRED,
]

NOTIFICATIONS = [
    OpenApiExample(
        "Documents asked for",
        response_only=True,
        value={
            "count": 2,
            "next": None,
            "previous": None,
            "results": [
                {
                    "id": 412,
                    "application": 201,
                    "kind": "documents_requested",
                    "subject": "서류 보완 요청 / Documents requested",
                    "body": _ASKED,
                    "created_at": f"2026-12-03T10:01:05{_SEOUL}",
                    "sent_at": f"2026-12-03T10:01:05{_SEOUL}",
                },
                {
                    "id": 398,
                    "application": 201,
                    "kind": "submitted",
                    "subject": "신청이 접수되었습니다 / Application received",
                    "body": "…",
                    "created_at": f"2026-12-03T09:50:16{_SEOUL}",
                    "sent_at": f"2026-12-03T09:50:16{_SEOUL}",
                },
            ],
        },
    ),
]

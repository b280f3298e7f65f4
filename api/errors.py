"""One JSON error format for the whole API, including Django's 404 and 500 under /api/."""

from django.core.exceptions import (
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import JsonResponse
from django.views import csrf, defaults
from django.views.decorators.csrf import csrf_exempt
from django_fsm import ConcurrentTransition, TransitionNotAllowed
from drf_standardized_errors.handler import ExceptionHandler
from rest_framework import exceptions
from rest_framework.fields import get_error_detail
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.settings import api_settings

from core.exceptions import DomainError


def field_error(field: str | None, message: str, code: str, status: int = 400):
    """A ValidationError naming one field, with a status other than 400 if needed."""
    key = field or api_settings.NON_FIELD_ERRORS_KEY
    exc = exceptions.ValidationError({key: [exceptions.ErrorDetail(message, code=code)]})
    exc.status_code = status
    return exc


class FileDownloadNegotiation(DefaultContentNegotiation):
    """For views that stream a file: whatever `Accept` or `?format=` asks, the errors they
    raise are JSON (a client asking for a PDF still learns why it got none)."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class RequestTooLarge(exceptions.APIException):
    status_code = 413
    default_detail = "The request body is too large."
    default_code = "request_too_large"


class BaeumExceptionHandler(ExceptionHandler):
    def convert_known_exceptions(self, exc: Exception) -> Exception:
        if isinstance(exc, RequestDataTooBig):
            return RequestTooLarge()
        if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
            return exceptions.ParseError("The request has too many fields or files.")
        if isinstance(exc, DjangoValidationError):
            detail = get_error_detail(exc)
            if not isinstance(detail, dict):
                detail = {api_settings.NON_FIELD_ERRORS_KEY: detail}
            return exceptions.ValidationError(detail)
        if isinstance(exc, DomainError):
            if exc.details:
                key = exc.field or api_settings.NON_FIELD_ERRORS_KEY
                errors = [exceptions.ErrorDetail(m, code=c) for m, c in exc.details]
                converted = exceptions.ValidationError({key: errors})
                converted.status_code = exc.status_code
                return converted
            return field_error(exc.field, exc.message, exc.code, exc.status_code)
        if isinstance(exc, TransitionNotAllowed):
            return field_error(
                "status", "This action is not allowed now.", "invalid_transition", 409
            )
        if isinstance(exc, ConcurrentTransition):
            return field_error(
                "status", "The object changed meanwhile; reload and try again.", "conflict", 409
            )
        return super().convert_known_exceptions(exc)


def _json_error(status: int, code: str, detail: str) -> JsonResponse:
    body = {
        "type": "server_error" if status >= 500 else "client_error",
        "errors": [{"code": code, "detail": detail, "attr": None}],
    }
    return JsonResponse(body, status=status)


@csrf_exempt  # no path here, whatever the method: a POST is as unknown as a GET
def api_not_found(request, *args, **kwargs):
    return _json_error(404, "not_found", "Not found.")


def csrf_failure(request, reason=""):
    """CSRF_FAILURE_VIEW: a JSON 403 under /api/ (as DRF answers a session without its
    CSRF token), Django's page elsewhere (the admin, the staff pages)."""
    if request.path.startswith("/api/"):
        return _json_error(403, "permission_denied", f"CSRF Failed: {reason}")
    return csrf.csrf_failure(request, reason)


def handler404(request, exception):
    if request.path.startswith("/api/"):
        return api_not_found(request)
    return defaults.page_not_found(request, exception)


def handler500(request):
    if request.path.startswith("/api/"):
        return _json_error(500, "error", "Server Error (500)")
    return defaults.server_error(request)

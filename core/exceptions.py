"""Domain errors that services raise and the API turns into JSON error responses: 4xx for
what the caller asked, 5xx where the server's own data failed (core.files)."""


class DomainError(Exception):
    """A refused action, with a stable code and a message fit for the user."""

    status_code = 400
    default_code = "invalid"
    field = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        details: list[tuple[str, str]] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        if field is not None:
            self.field = field
        # Several (message, code) pairs for the same field, e.g. one per bad line of a file.
        self.details = details or []


class InvalidTransition(DomainError):
    """The object is not in a state that allows this action."""

    status_code = 409
    default_code = "invalid_transition"
    field = "status"


class Conflict(DomainError):
    """The action collides with another one (a concurrent change, a duplicate)."""

    status_code = 409
    default_code = "conflict"

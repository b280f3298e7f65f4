"""A logging filter that keeps RRNs and account numbers out of log output."""

import logging
import re

# Six digits (birth date), optional hyphen, then seven digits starting with the gender digit.
_RRN_RE = re.compile(r"(?<!\d)\d{6}-?[1-8]\d{6}(?!\d)")
# Ten or more digits, single hyphens allowed between them: account and phone numbers.
# Longer runs are redacted too, so that an account number glued to other digits still hides.
# Not the fraction of a decimal number (timings such as "0.0123456789s").
_LONG_NUMBER_RE = re.compile(r"(?<![\d.])\d(?:-?\d){9,}(?!\d)")


def redact(text: str) -> str:
    """Return the text with RRN-shaped and long digit runs replaced."""
    return _LONG_NUMBER_RE.sub("[redacted]", _RRN_RE.sub("******-*******", text))


class RedactPersonalDataFilter(logging.Filter):
    """Rewrite each record's message, traceback and stack with personal numbers redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the record
            message = f"{record.msg} {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def redact_handlers(logger: logging.Logger) -> None:
    """Put the redacting filter on each of the logger's handlers that lacks it.

    On the handler, not the logger: a logger's own filters never see the records that
    propagate to it from its children.
    """
    for handler in logger.handlers:
        if not any(isinstance(f, RedactPersonalDataFilter) for f in handler.filters):
            handler.addFilter(RedactPersonalDataFilter())


def redact_celery_logger(logger: logging.Logger | None = None, **kwargs) -> None:
    """Receiver of Celery's after_setup_logger and after_setup_task_logger signals.

    A worker or beat sets up its own handlers (the task logger's, and the root's too if
    it hijacks it): they get the filter like Django's.
    """
    for each in (logger, logging.getLogger(), logging.getLogger("celery.task")):
        if each is not None:
            redact_handlers(each)

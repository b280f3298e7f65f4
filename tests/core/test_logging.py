import logging
import sys

import pytest

from core.logging import RedactPersonalDataFilter


def filtered(msg, *args, exc_info=None) -> logging.LogRecord:
    record = logging.LogRecord("baeum", logging.INFO, __file__, 1, msg, args, exc_info)
    assert RedactPersonalDataFilter().filter(record) is True
    return record


@pytest.mark.parametrize("rrn", ["850315-1234567", "8503151234567", "210315-4123450"])
def test_rrn_in_message_is_redacted(rrn):
    record = filtered(f"applicant rrn={rrn} saved")
    assert record.getMessage() == "applicant rrn=******-******* saved"
    assert record.args is None


def test_rrn_and_account_in_args_are_redacted():
    record = filtered("rrn %s account %s", "850315-1234567", "123-456-789012")
    assert record.getMessage() == "rrn ******-******* account [redacted]"


def test_account_numbers_of_10_to_16_digits_are_redacted():
    record = filtered("acct 1234567890 and 1234567890123456 and 110-123-456789")
    assert record.getMessage() == "acct [redacted] and [redacted] and [redacted]"


def test_dict_args_are_redacted():
    record = filtered("%(account)s", {"account": "123456789012"})
    assert record.getMessage() == "[redacted]"


def test_short_numbers_and_dates_are_kept():
    message = "round 42 paid 1000000 KRW on 2024-01-15 batch 123456789"
    assert filtered(message).getMessage() == message


def test_record_whose_args_do_not_match_is_kept_and_redacted():
    record = filtered("rrn %s %s", "850315-1234567")
    message = record.getMessage()
    assert "1234567" not in message
    assert "rrn" in message


def test_traceback_is_redacted():
    try:
        raise ValueError("bad account 123456789012")
    except ValueError:
        record = filtered("failed", exc_info=sys.exc_info())
    text = logging.Formatter().format(record)
    assert "123456789012" not in text
    assert "[redacted]" in text


def test_filter_works_through_a_handler(caplog):
    logger = logging.getLogger("baeum.test.redact")
    caplog.handler.addFilter(RedactPersonalDataFilter())
    logger.warning("profile %s", "850315-1234567")
    assert "850315-1234567" not in caplog.text
    assert "******-*******" in caplog.text


def test_decimal_fractions_are_left_alone():
    from core.logging import redact

    assert redact("task succeeded in 0.0123456789s") == "task succeeded in 0.0123456789s"
    assert redact("account 110234567890") == "account [redacted]"

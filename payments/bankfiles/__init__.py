"""Bank transfer files: write the CSV and pain.001.001.09, validate pain.001, read the results.

Pure functions over streams and bytes: no Django, no database, no clock, so output is reproducible.
"""

from payments.bankfiles.common import (
    MAX_ERRORS,
    BankFileError,
    BatchHeader,
    ResultLine,
    TransferLine,
)

# Private, but tests reach it as payments.bankfiles._safe_parser to prove it refuses hostile XML.
from payments.bankfiles.common import _safe_parser as _safe_parser
from payments.bankfiles.outgoing import CSV_HEADER, PAIN001_NS, write_csv, write_pain001
from payments.bankfiles.results import (
    RESULT_CSV_HEADER,
    parse_pain002,
    parse_result_csv,
    parse_result_file,
)
from payments.bankfiles.validation import PAIN001_XSD, validate_pain001

__all__ = [
    "CSV_HEADER",
    "MAX_ERRORS",
    "PAIN001_NS",
    "PAIN001_XSD",
    "RESULT_CSV_HEADER",
    "BankFileError",
    "BatchHeader",
    "ResultLine",
    "TransferLine",
    "parse_pain002",
    "parse_result_csv",
    "parse_result_file",
    "validate_pain001",
    "write_csv",
    "write_pain001",
]

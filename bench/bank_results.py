"""Reading a bank result file of a whole round: held whole (parse_result_file, as before the
chunked import) against streamed (iter_result_file, what the import and its chunk tasks
read), time and peak Python memory (tracemalloc) of each. No database.

    .venv/bin/python bench/bank_results.py [--lines 700000] [--format csv|pain002]
"""

import argparse
import platform
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from payments.bankfiles.results import iter_result_file, parse_result_file  # noqa: E402


def write(path: Path, lines: int, fmt: str) -> None:
    with path.open("w", encoding="utf-8") as out:
        if fmt == "csv":
            out.write("reference,result,reason\n")
            for i in range(1, lines + 1):
                out.write(f"BAEUM-P{i:010d},{'failed,계좌 없음' if i % 20 == 0 else 'paid,'}\n")
            return
        out.write(
            '<?xml version="1.0" encoding="UTF-8"?><Document xmlns="urn:iso:std:iso:20022:'
            'tech:xsd:pain.002.001.10"><CstmrPmtStsRpt><GrpHdr><MsgId>B</MsgId></GrpHdr>'
            "<OrgnlPmtInfAndSts><OrgnlPmtInfId>P</OrgnlPmtInfId>\n"
        )
        for i in range(1, lines + 1):
            why = "<StsRsnInf><Rsn><Cd>AC04</Cd></Rsn></StsRsnInf>" if i % 20 == 0 else ""
            status = "RJCT" if i % 20 == 0 else "ACSC"
            out.write(
                f"<TxInfAndSts><OrgnlEndToEndId>BAEUM-P{i:010d}</OrgnlEndToEndId>"
                f"<TxSts>{status}</TxSts>{why}</TxInfAndSts>\n"
            )
        out.write("</OrgnlPmtInfAndSts></CstmrPmtStsRpt></Document>\n")


def measure(label: str, run) -> None:
    tracemalloc.start()
    started = time.perf_counter()
    n = run()
    took = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"{label}: {n:,} lines in {took:.2f} s, peak {peak / 2**20:.1f} MB (tracemalloc)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=700_000)
    parser.add_argument("--format", choices=["csv", "pain002"], default="csv")
    args = parser.parse_args()
    print(f"{platform.machine()}, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "results"
        write(path, args.lines, args.format)
        print(f"{args.format} of {args.lines:,} lines: {path.stat().st_size / 2**20:.1f} MB")
        measure("held whole (parse_result_file)", lambda: len(parse_result_file(path.read_bytes())))

        def streamed() -> int:
            with path.open("rb") as stream:
                return sum(1 for _ in iter_result_file(stream))

        measure("streamed (iter_result_file)", streamed)


if __name__ == "__main__":
    main()

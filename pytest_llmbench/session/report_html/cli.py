"""`llmbench-report BATCH.json [BATCH2.json ...] -o report.html`: the report from batch files after the fact.

With two or more batches the report compares them: the first is the reference every delta is measured against.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ...exceptions import BatchFileError
from ...metrics.batch_file import read_batch
from .render import DEFAULT_NAME, write_report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmbench-report",
        description="Write the pytest-llmbench HTML report from batch files; two or more are compared, the first "
                    "being the reference.")
    parser.add_argument("batches", nargs="+", type=Path, metavar="BATCH.json", help="batch_results_*.json files")
    parser.add_argument("-o", "--output", type=Path, default=Path(DEFAULT_NAME),
                        help=f"the HTML file to write (default: {DEFAULT_NAME})")
    parser.add_argument("--label", action="append", default=[],
                        help="a name for each run, in the order of the batch files (default: the file name)")
    parser.add_argument("--title", help="the report's title")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if len(args.label) > len(args.batches):
        print(f"llmbench-report: {len(args.label)} labels for {len(args.batches)} batch files", file=sys.stderr)
        return 2
    labels = args.label + [path.stem for path in args.batches[len(args.label):]]
    try:
        runs = [(read_batch(path, required=("tests",)), label, path.resolve().parent)
                for path, label in zip(args.batches, labels)]
    except BatchFileError as exc:
        print(f"llmbench-report: {exc}", file=sys.stderr)
        return 2
    try:
        written = write_report(runs, args.output, args.title)
    except OSError as exc:
        print(f"llmbench-report: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"llmbench report: {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

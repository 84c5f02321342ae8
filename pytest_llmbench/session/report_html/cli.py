"""`llmbench-report RUN [RUN2 ...] -o report.html`: the report from batch files after the fact; a run is named by
its batch file, its run folder or ``<output>/latest``, as ``--llmbench-compare`` names one.

With two or more batches the report compares them: the first is the reference every delta is measured against.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ...batch import Batch
from ...exceptions import BatchFileError
from ...metrics.batch_file import read_batch
from ..run_folder import resolve_run, run_label
from .render import DEFAULT_NAME, write_report


def find_batch(given: Path) -> tuple[Path, str]:
    """The batch file a path names (as ``--llmbench-compare`` reads it: the file, its run folder, or
    ``<output>/latest``) and the run's default label: its run id (its run folder's name, else the batch file's
    time stamp)."""
    try:
        found = resolve_run(given, given.parent)
    except ValueError as exc:
        raise BatchFileError(str(exc)) from None
    if found is None:
        raise BatchFileError(f"{given}: no run with a batch file in {given.parent}")
    return found, run_label(found, named_folder=found != given)


def baseline_of(batch: Batch) -> tuple[Batch, str] | None:
    """The baseline a lone run was compared with at run time (``--llmbench-compare``), while its batch file is still
    where the run found it: its distributions are drawn beside the run's, as in the run's own report. Only a regular
    file is read (a batch naming a pipe or a device cannot make the command wait)."""
    gates = batch.get("gates")
    comparison = gates.get("comparison") if isinstance(gates, dict) else None
    stored = comparison.get("baseline") if isinstance(comparison, dict) else None
    path = Path(stored) if isinstance(stored, str) and stored else None
    if path is None or not path.is_file():
        return None
    try:
        return read_batch(path, required=("tests",)), run_label(path, named_folder=False)
    except BatchFileError as exc:
        print(f"llmbench-report: its baseline is not drawn: {exc}", file=sys.stderr)
        return None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmbench-report",
        description="Write the pytest-llmbench HTML report from batch files; two or more are compared, the first "
                    "being the reference.")
    parser.add_argument("batches", nargs="+", type=Path, metavar="RUN",
                        help="batch_results_*.json files, run folders, or <output>/latest")
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
    try:
        found = [find_batch(path) for path in args.batches]
        labels: list[str] = args.label + [label for _, label in found[len(args.label):]]
        runs: list[tuple[Batch, str, Path | None]] = [
            (read_batch(path, required=("tests",)), label, path.resolve().parent)
            for (path, _), label in zip(found, labels)]
    except BatchFileError as exc:
        print(f"llmbench-report: {exc}", file=sys.stderr)
        return 2
    try:
        written = write_report(runs, args.output, args.title, baseline_of(runs[0][0]) if len(runs) == 1 else None)
    except OSError as exc:
        print(f"llmbench-report: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"llmbench report: {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

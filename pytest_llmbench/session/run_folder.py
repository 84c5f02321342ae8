"""One run, one folder: ``<output>/<run id>/`` holds everything a session writes, ``<output>/latest`` points at it.

A run never writes into an earlier run's folder, so per-test files always match the batch file beside them, and
comparing with "the last run" means opening one folder. The run id is the UTC start time (``20261129-173012``),
with ``-2``, ``-3`` … when two runs start in the same second; it sorts in time order and needs no quoting.
"""

from __future__ import annotations

import contextlib
import os
from datetime import datetime, timezone
from pathlib import Path

LATEST = "latest"  # the symbolic link to the newest run folder
LATEST_FILE = "latest.txt"  # its stand-in where links cannot be made (Windows without the privilege)
BATCH_GLOB = "batch_results_*.json"


def run_id(started: datetime) -> str:
    return f"{started.astimezone(timezone.utc):%Y%m%d-%H%M%S}"


def make_run_folder(output: Path, started: datetime) -> Path:
    """Create a new, empty run folder under ``output`` (made too); never reuses an existing one. Raises OSError."""
    output.mkdir(parents=True, exist_ok=True)
    base = run_id(started)
    number = 1
    while True:
        folder = output / (base if number == 1 else f"{base}-{number}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            number += 1


def point_latest(output: Path, folder: Path) -> None:
    """Make ``<output>/latest`` name ``folder``: a relative link, replaced atomically; else ``latest.txt``."""
    link = output / LATEST
    temp = output / f".{LATEST}-{os.getpid()}.llmbench-tmp"
    try:
        if temp.is_symlink():
            temp.unlink()
        os.symlink(folder.name, temp, target_is_directory=True)
        os.replace(temp, link)
        return
    except OSError:
        with contextlib.suppress(OSError):
            temp.unlink()
    with contextlib.suppress(OSError):  # a pointer is a convenience; the run's own files are what matter
        (output / LATEST_FILE).write_text(folder.name + "\n", encoding="utf-8")


def latest_folder(output: Path) -> Path | None:
    """The folder ``latest`` points at (the link, else ``latest.txt``), or None."""
    link = output / LATEST
    if link.is_symlink() and link.is_dir():  # a real folder named "latest" is not ours to read
        return link
    try:
        name = (output / LATEST_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return output / name if name and (output / name).is_dir() else None


def batch_in(folder: Path) -> Path | None:
    """The batch file of a run folder (the newest, should there be several), or None."""
    found = sorted(folder.glob(BATCH_GLOB))
    return found[-1] if found else None


def latest_batch(output: Path) -> Path | None:
    """The batch file of the most recent run that wrote one: the ``latest`` run first, else the newest folder."""
    pointed = latest_folder(output)
    if pointed is not None and batch_in(pointed) is not None:
        return batch_in(pointed.resolve())  # named by its run folder: "latest" moves on with the next run
    folders = sorted((p for p in output.iterdir() if p.is_dir() and not p.is_symlink()), reverse=True) \
        if output.is_dir() else []
    for folder in folders:
        found = batch_in(folder)
        if found is not None:
            return found
    return None


def resolve_run(given: Path, output: Path) -> Path | None:
    """What names a run, as its batch file: the file, its run folder, or ``latest`` (``<output>/latest`` or the word
    alone: the newest run in ``output`` that wrote one). None for ``latest`` when no run has written one yet: a first
    run has nothing to compare with. Raises ValueError for a folder that holds no batch file."""
    if given.name == LATEST and not given.exists():
        return latest_batch(output)
    if given.is_dir():
        found = batch_in(given)
        if found is None:
            raise ValueError(f"{given}: the folder holds no {BATCH_GLOB} (name a run folder, or "
                             f"{given / LATEST} for the newest run in an output folder)")
        return found
    return given


def resolve_baseline(given: Path, output: Path) -> tuple[Path | None, str | None]:
    """``--llmbench-compare``'s batch file, or None and why not: a first run into a new output folder compares
    with nothing and says so, rather than failing a CI job's very first run. Raises ValueError."""
    try:
        found = resolve_run(given, output)
    except ValueError as exc:
        raise ValueError(f"--llmbench-compare {exc}") from None
    if found is None:
        return None, (f"no earlier run with a batch file in {output}, so nothing to compare with "
                      f"(--llmbench-compare {given}); this run is the baseline of the next")
    return found, None


def run_label(batch_file: Path, named_folder: bool = True) -> str:
    """A run's default label: its run id (its run folder's name, when the folder was named or is the run's own),
    else the batch file's time stamp."""
    folder, stamp = batch_file.resolve().parent.name, batch_file.stem.removeprefix("batch_results_")
    return folder if named_folder or folder.startswith(stamp) else stamp  # run ids: 20261207-045933-2

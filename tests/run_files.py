"""Reading what a session wrote: the batch file and the per-test result files under a folder.

``folder`` may be the output folder, its ``latest`` link or a run folder: both look below it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def batch_of(folder: Path) -> dict[str, Any]:
    """The one batch file under ``folder`` (a test that expects one run fails if there are several)."""
    [path] = folder.rglob("batch_results_*.json")
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def results_by_id(folder: Path) -> dict[str, dict[str, Any]]:
    """Every ``*_result.json`` under ``folder``, by test id."""
    found = (json.loads(path.read_text(encoding="utf-8")) for path in folder.rglob("*_result.json"))
    return {result["test_id"]: result for result in found}

"""Whether pytest took its rootdir from a suite path: a trap of ``--llmbench-suite PATH`` written with a space.

pytest settles its rootdir and ini file before any plugin's options are known, so the value of
``--llmbench-suite ../checkout/suite.json`` is read as a test path: a run from one's own folder then gets the
suite's project as rootdir, with that project's ini file (its ``addopts``, markers, timeouts). A plugin cannot
move the rootdir afterwards; it can say what happened and how to avoid it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path


def borrowed_rootdir(rootpath: Path, invocation_dir: Path, suites: Sequence[Path], argv: Sequence[str]) -> str | None:
    """A warning when the rootdir lies outside the folder pytest was run from and was found from a suite path
    given as a separate argument; None otherwise."""
    root, here = rootpath.resolve(), invocation_dir.resolve()
    if root == here or root in here.parents:
        return None
    separate = {str(value) for option, value in itertools.pairwise(argv) if option == "--llmbench-suite"}
    for suite in suites:
        if root in suite.parents and any(Path(v).resolve() == suite or Path(here, v).resolve() == suite
                                         for v in separate):
            return (f"llmbench: pytest took its rootdir {root} (and any ini file there) from the suite path "
                    f"{suite}, because `--llmbench-suite PATH` with a space is read as a test path before "
                    f"plugins load; write `--llmbench-suite={suite}` or add `--rootdir=.` to keep {here}")
    return None

"""How a field of the settings declares its option: shared by ``options.Settings`` and the groups of options it
inherits from modules of their own (``search_options``)."""

from __future__ import annotations

from dataclasses import field
from typing import Any


def option(default: Any, help: str, metavar: str | None = None, *, low: float | None = None,
           high: float | None = None, inclusive: bool = True, path: bool = False, lines: bool = False,
           const: str | None = None) -> Any:
    """A settings field that is also an option: its help, metavar, numeric bounds and whether it is a path.

    A list option's ini value is split on whitespace (quotes keep a path with spaces whole), unless ``lines``:
    then one value per line (headers, whose values hold spaces). ``const``: the value of the flag given alone.
    """
    meta = {"help": help, "metavar": metavar, "low": low, "high": high, "inclusive": inclusive, "path": path,
            "lines": lines, "const": const}
    return field(default=default, metadata=meta)

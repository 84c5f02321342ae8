"""What to say when a command line misuses an llmbench option: pytest's own messages name the slip, not the
option that was meant. Apart from options.py, which declares the options."""

from __future__ import annotations

import difflib

from .collect.suite import SUITE_SUFFIX
from .options import OPTIONS


def flag_hint(unknown: list[str]) -> str | None:
    """What to say about arguments the parser did not know, when one looks like an llmbench option: pytest's own
    "unrecognized arguments" names the slip but not the option that was meant (as ``--llmbench-slo``'s values do)."""
    ours = [flag for opt in OPTIONS for flag in (opt.flag, *((f"--no-{opt.flag[2:]}",) if opt.kind == "bool" else ()))]
    hints = []
    for arg in unknown:
        written = arg.split("=", 1)[0]
        if not written.startswith("--"):
            continue
        close = difflib.get_close_matches(written, ours, n=1, cutoff=0.75)
        if close:
            hints.append(f"{written}: unknown option; did you mean {close[0]}?")
        elif written.startswith(("--llmbench", "--no-llmbench")):
            hints.append(f"{written}: unknown option; the llmbench options are listed by pytest --help")
    return "\n".join(hints) or None


def suite_paths_hint(args: list[str]) -> str | None:
    """``--llmbench-suite a.json b.json`` hands b.json to pytest as a test path, where no collector takes it: say to
    repeat the option rather than let b.json be "not found" or silently not run."""
    flag = next(opt.flag for opt in OPTIONS if opt.name == "suite")
    for index, arg in enumerate(args[:-1]):
        if arg == flag and index + 2 < len(args):
            given, following = args[index + 1], args[index + 2]
        elif arg.startswith(f"{flag}="):
            given, following = arg.split("=", 1)[1], args[index + 1]
        else:
            continue
        if following.lower().endswith(".json") and not following.endswith(SUITE_SUFFIX):
            return (f"{flag} takes one suite: {following} after {flag} {given} would be a test path, which no "
                    f"collector takes. Repeat the option for each suite: {flag} {given} {flag} {following}")
    return None

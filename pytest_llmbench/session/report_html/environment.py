"""The report's Jinja environment, its compiled template kept between runs.

Imported by the first report a process renders, never with the plugin: Jinja2 takes 12 ms to load, which a run
without a report (or an xdist worker) would otherwise spend for nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.bccache import Bucket

SYNTAX: dict[str, Any] = {"autoescape": True, "trim_blocks": True, "lstrip_blocks": True}


class _CompiledTemplates(jinja2.FileSystemBytecodeCache):
    """The compiled template, kept between runs: compiling it takes about 20 ms of every report.

    In Jinja's per-user folder (owner-only, in the temp directory; Jinja refuses one it does not own). Jinja
    checks each file against the template's source; the name carries the syntax options, which change the
    compiled code but not the source. A file that cannot be read or written only means compiling again.
    """

    def __init__(self) -> None:
        options = hashlib.sha256(repr(sorted(SYNTAX.items())).encode()).hexdigest()[:16]
        super().__init__(pattern=f"__llmbench_{options}_%s.cache")

    def load_bytecode(self, bucket: Bucket) -> None:
        with contextlib.suppress(OSError):
            super().load_bytecode(bucket)

    def dump_bytecode(self, bucket: Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


def _compiled_templates() -> _CompiledTemplates | None:
    try:
        return _CompiledTemplates()
    except (OSError, RuntimeError):  # no per-user folder could be made, or one is not safe to use
        return None


@lru_cache(maxsize=1)
def report_environment() -> jinja2.Environment:
    loader = jinja2.PackageLoader(__package__, "templates")
    return jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined, bytecode_cache=_compiled_templates(),
                              **SYNTAX)

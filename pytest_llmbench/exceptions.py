"""The plugin's one exception root and its warning category.

Catch ``LLMBenchError`` for anything the plugin raises on purpose; the subclasses say which stage refused:
the options, a suite file, the HTTP exchange or the output folder. Free of pytest, so that ``http/``,
``checks/`` and ``metrics/`` can raise them too.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .result import ApiError


class LLMBenchError(Exception):
    """Anything pytest-llmbench raises on purpose; ``str()`` is a readable message without secrets."""


class ConfigurationError(LLMBenchError):
    """An option, an ini key or the endpoint set-up cannot be used; the message says which and why."""


class EndpointError(ConfigurationError):
    """The session cannot talk to any server; the message says why and what to do."""


class LocalServerError(EndpointError):
    """The embedded server cannot run; the message says why and what to do instead."""


class SuiteError(LLMBenchError):
    """A suite file that cannot be used; str() is the whole message, one problem a line."""

    def __init__(self, path: str | Path, problems: str | list[str]) -> None:
        self.path = str(path)
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(f"{self.path}: {problem}" for problem in self.problems))

    def __reduce__(self) -> tuple[type[SuiteError], tuple[str, list[str]]]:
        return type(self), (self.path, self.problems)  # so that it can be pickled across processes


class BatchFileError(LLMBenchError, ValueError):
    """A batch file someone else wrote (a baseline, a ``latest`` target, an ``llmbench-report`` input) that cannot
    be used; ``str()`` names the file and its first problem."""


class ClientError(LLMBenchError):
    """A request the client could not complete; ``str()`` is one readable line without secrets."""

    def __init__(self, message: str, error: ApiError | None = None) -> None:
        super().__init__(message)
        self.error = error  # the normalized ApiError, when there is one


class EndpointUnreachable(ClientError):
    """The server cannot be reached at all, or it rejected our credentials."""


class StorageError(LLMBenchError):
    """The output folder cannot take files."""


class OutputNotWritable(StorageError):
    """The output folder cannot take files; raised before a run so nothing is lost at the end."""


class HookError(LLMBenchError):
    """A hook implementation (a conftest's) raised; the message names the hook and the exception."""


class LLMBenchWarning(UserWarning):
    """A health alert, a configuration risk or a result file that could not be written.

    Filter it as ``-W error::pytest_llmbench.LLMBenchWarning`` or ``-W ignore::...``.
    """

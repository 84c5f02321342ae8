"""Tokenizers a workload builds its prompts with: the protocol, a local Hugging Face one and the estimate.

The server's own tokenizer (http/tokenize.py) is the one that makes lengths exact; these two serve when the
server has none: a ``tokenizer.json`` the user names (``--llmbench-tokenizer``, the ``tokenizers`` package),
or, as the last resort, an estimate that every result and the summary flag (one token per word).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from ...exceptions import ConfigurationError
from ...http.client import LLMClient
from ...http.tokenize import find_server_tokenizer


class Tokenizer(Protocol):
    """Token ids of a text without the special tokens a server adds (BOS), and the text of ids."""

    name: str  # what the summary says built the prompts
    estimated: bool  # lengths are a guess, not the server's own count

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


class EstimateTokenizer:
    """One token per whitespace-separated word: no server, no file, and flagged as an estimate everywhere."""

    name = "estimate (one token per word)"
    estimated = True

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._words: list[str] = []

    def encode(self, text: str) -> list[int]:
        ids = []
        for word in text.split():
            if word not in self._ids:
                self._ids[word] = len(self._words)
                self._words.append(word)
            ids.append(self._ids[word])
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(self._words[i] for i in ids)


class LocalTokenizer:
    """A Hugging Face ``tokenizer.json`` (a file, or a folder holding one), read with the ``tokenizers`` package.

    A hub name is refused rather than downloaded: the plugin talks to no host but the ones it is pointed at."""

    estimated = False

    def __init__(self, where: str) -> None:
        path = Path(where).expanduser()
        if path.is_dir():
            path = path / "tokenizer.json"
        if not path.is_file():
            raise ConfigurationError(f"--llmbench-tokenizer {where}: no tokenizer.json there; give the path of a "
                                     "tokenizer.json or of the folder that holds it (names are not downloaded)")
        try:
            from tokenizers import Tokenizer as HFTokenizer
        except ImportError:
            raise ConfigurationError("--llmbench-tokenizer needs the 'tokenizers' package: pip install "
                                     "'pytest-llmbench[tokenizer]'") from None
        try:
            self._tokenizer: Any = HFTokenizer.from_file(str(path))
        except Exception as exc:  # noqa: BLE001 - the library raises its own exception types
            raise ConfigurationError(f"--llmbench-tokenizer {where}: cannot load {path}: {exc}") from None
        self.name = f"local tokenizer {path}"

    def encode(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._tokenizer.decode(list(ids)))


def resolve_tokenizer(client: LLMClient, model: str | None, local: str | None) -> tuple[Tokenizer, str | None]:
    """The tokenizer prompts are built with, and a warning when lengths will be estimates.

    The server's own comes first (its counts are the ones usage reports), then ``--llmbench-tokenizer``, then the
    estimate. A named local tokenizer that cannot be loaded raises ConfigurationError."""
    found, tried = find_server_tokenizer(client, model)
    if found is not None:
        return found, None
    if local:
        return LocalTokenizer(local), None
    return EstimateTokenizer(), (f"the server has no tokenizer route (tried {tried}) and no --llmbench-tokenizer "
                                 "was given: workload prompt lengths are estimates (one token per word), flagged "
                                 "in every result")

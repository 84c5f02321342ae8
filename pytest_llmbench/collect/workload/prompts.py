"""Prompt text of an exact token length, built from token ids of a fixed corpus.

As AIPerf and vLLM do, prompts are slices of a tokenized corpus rather than random words: the corpus is
tokenized once per process, a request takes ids from a place its seed chooses, and the ids are turned into
text. A tokenizer's round trip is not always stable (ids decoded and encoded again may merge or split at the
edges), so the text is encoded again and cut or padded until it has the wanted count; what it ends with is
returned beside it, and the result records it.

Blocks named by a key (a shared prefix group, a trace's hash id) are the same ids wherever they are used, so that
requests which share them share a prefix the server can cache.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from .tokens import Tokenizer

ROUND_TRIPS = 6  # encode/decode rounds before a length that will not settle is taken as it is
CORPUS_WORDS = 6000
_WORDS = (  # a plain word list: the corpus needs no file and no licence
    "the of and to in is was that for on with as by at from his her they this which but not are be have had "
    "one all were when we there can an your more so if out up about who them some time into only would could "
    "over after other many before long little great through where much should well people down just each "
    "house light water river mountain garden window morning evening winter summer autumn spring city village "
    "road bridge market letter story music paper table chair door stone forest field ocean island cloud "
    "thunder silver golden quiet bright dark gentle ancient modern simple careful sudden distant narrow "
    "travel remember answer listen follow gather carry build measure return wonder open close begin finish "
    "teacher student doctor farmer sailor painter writer builder baker driver engine signal number pattern "
    "question reason picture history science language balance harvest journey kingdom machine network "
    "orchard pocket quarter ribbon shadow theory valley whisper yellow zero copper marble lantern compass"
)


def corpus_text() -> str:
    """The corpus: words in sentences, the same in every process (a fixed seed)."""
    rng = random.Random("llmbench-corpus")
    words = _WORDS.split()
    sentences, count = [], 0
    while count < CORPUS_WORDS:
        length = rng.randint(6, 18)
        chosen = [rng.choice(words) for _ in range(length)]
        sentences.append(" ".join(chosen).capitalize() + ".")
        count += length
    return " ".join(sentences)


class PromptBuilder:
    """One process's prompt factory over one tokenizer; blocks are kept so that shared ones cost once."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self._corpus: list[int] | None = None
        self._blocks: dict[str, list[int]] = {}

    @property
    def corpus(self) -> list[int]:
        if self._corpus is None:
            self._corpus = self.tokenizer.encode(corpus_text())
        return self._corpus

    def ids(self, key: str, count: int) -> list[int]:
        """``count`` ids from the corpus at a place ``key`` chooses (wrapping around its end)."""
        corpus = self.corpus
        start = random.Random(key).randrange(len(corpus))
        out: list[int] = []
        while len(out) < count:
            out += corpus[start:start + count - len(out)]
            start = 0
        return out

    def block(self, key: str, count: int) -> list[int]:
        """Shared ids: the same key gives the same ids every time (prefix groups, a trace's hash ids)."""
        name = f"{key}/{count}"
        if name not in self._blocks:
            self._blocks[name] = self.ids(key, count)
        return self._blocks[name]

    def text(self, count: int, key: str, head: Sequence[int] = ()) -> tuple[str, int]:
        """Text of ``count`` tokens that starts with the ids ``head`` (cut to ``count``), filled from the corpus
        at ``key``'s place; returns the text and its count by this tokenizer (``count`` unless it never settled)."""
        ids = list(head[:count]) + self.ids(key, max(0, count - len(head)))
        text, got = "", -1
        for round_trip in range(ROUND_TRIPS):
            text = self.tokenizer.decode(ids)
            encoded = self.tokenizer.encode(text)
            got = len(encoded)
            if got == count:
                break
            ids = encoded[:count] if got > count else encoded + self.ids(f"{key}/pad{round_trip}", count - got)
        return text, got

"""The files a run leaves in its output folder: safe names, atomic writes, write failures recorded.

Test names come from user JSON and model names from servers, so every name is made valid on
Linux and Windows and kept inside the output folder before it touches the disk. The controller
writes two files per test, thousands of times a run: the per-test path never fsyncs and never
lists a directory; only the batch file, written once, is made durable.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import os
import re
import secrets
import socket
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..batch import Batch
from ..exceptions import OutputNotWritable
from ..result import dumps_strict
from ..textsafe import INVISIBLE_CLASS
from .render import batch_json, completion_pieces, render_completion_text

TEMP_SUFFIX = ".llmbench-tmp"
LARGE_TEXT = 1 << 20  # characters of an answer past which its completion file is written in pieces
COMPLETION_SUFFIX = "_completion.txt"
RESULT_SUFFIX = "_result.json"
MAX_NAME_BYTES = 255  # the common per-name limit (ext4, NTFS in UTF-16 units, APFS)
MAX_STEM_BYTES = MAX_NAME_BYTES - max(len(s.encode()) for s in (COMPLETION_SUFFIX, RESULT_SUFFIX))
HASH_CHARS = 8

# Path separators, characters Windows forbids, C0/C1 controls and lone surrogates (which no
# file system encoding accepts).
_UNSAFE = re.compile(r'[/\\<>:"|?*\x00-\x1f\x7f-\x9f\ud800-\udfff' + INVISIBLE_CLASS + "]")
_SPACES = re.compile(r"\s+")  # a shell splits names on them: "Test 0" is written as "Test_0"
_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{port}{n}" for port in ("COM", "LPT") for n in (*"0123456789", "\u00b9", "\u00b2", "\u00b3")]
)
_FALLBACK_STEM = "test"
_OPEN_FLAGS = (
    os.O_WRONLY | os.O_CREAT | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
)


@dataclass(frozen=True)
class WriteFailure:
    path: Path
    reason: str


# ---------------------------------------------------------------------------------------------
# Names


def _clean(name: str) -> str:
    """The name with every unsafe character replaced; may still be too long (see _hashed)."""
    stem = _UNSAFE.sub("_", _SPACES.sub("_", name.strip(" ."))).strip(" .") or _FALLBACK_STEM
    # Windows reserves device names whatever follows the first dot ("nul.txt" is NUL).
    if stem.split(".", 1)[0].rstrip(" ").upper() in _RESERVED:
        stem = "_" + stem
    return stem


def is_portable_stem(stem: str) -> bool:
    """Whether stem is already a valid name on Linux and Windows, within the byte limit.

    The writer checks every stem it is handed, thousands of times a run; this is the cheap part
    of file_stem, so only a stem that fails it pays for a hash.
    """
    return _clean(stem) == stem and len(stem.encode()) <= MAX_STEM_BYTES


def _fold(stem: str) -> str:
    """What case-insensitive, normalizing file systems (NTFS, APFS) see as the same name."""
    return unicodedata.normalize("NFC", stem).casefold()


def _hashed(stem: str, key: str) -> str:
    """The stem cut on a character boundary to leave room for a hash of the key, then the hash."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_CHARS]
    room = MAX_STEM_BYTES - len(digest) - 2  # "-" before the hash, "_" a reserved name may gain
    cut = stem.encode()[:room].decode("utf-8", "ignore")
    return f"{_clean(cut)}-{digest}"


class StemAllocator:
    """Hands out stems one test at a time, for a controller that learns of tests as they finish.

    A stem gets a hash suffix when its name had to change or when the stem is already taken
    (case-insensitively), so distinct keys never share a file; the same key always gets the same stem.
    """

    def __init__(self, taken: Iterable[str] = ()) -> None:
        self._used = {_fold(stem) for stem in taken}
        self._by_key: dict[str, str] = {}

    def claim(self, name: str, key: str, *, shared: bool = False) -> str:
        """The stem for key; shared=True forces the hash (the name is known to repeat)."""
        if key in self._by_key:
            return self._by_key[key]
        stem = _SPACES.sub("_", name.strip(" "))  # only spaces changed: the name stays readable, no hash
        if shared or not is_portable_stem(stem) or _fold(stem) in self._used:
            base = _clean(name)
            stem = _hashed(base, key)
            retry = 1
            while _fold(stem) in self._used:  # a name crafted to look like another key's hash
                retry += 1
                stem = _hashed(base, f"{key}\x00{retry}")
        self._used.add(_fold(stem))
        self._by_key[key] = stem
        return stem


def file_stem(name: str, key: str, taken: Iterable[str] | None = None) -> str:
    """A file-name stem for name, valid on Linux and Windows, distinct from every stem in taken."""
    return StemAllocator(taken or ()).claim(name, key)


def assign_stems(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Stems for a whole run's (key, name) pairs, independent of their order.

    Every test whose name repeats (case-insensitively) gets a hash, not all but the first.
    """
    names = dict(items)
    counts = Counter(_fold(_clean(name)) for name in names.values())
    allocator = StemAllocator()
    return {
        key: allocator.claim(names[key], key, shared=counts[_fold(_clean(names[key]))] > 1)
        for key in sorted(names)
    }


# ---------------------------------------------------------------------------------------------
# Writing


def atomic_write_text(path: str | os.PathLike[str], text: str | Iterable[str], *, durable: bool = False) -> None:
    """Replace path with text (a string, or pieces of one) whole, or leave it as it was.

    The temporary name is short and independent of the target so that a target at the 255-byte
    limit still has room; O_EXCL|O_NOFOLLOW keep a planted file or link from being written through.
    Lone surrogates (valid in JSON strings) are written as \\uXXXX escapes instead of failing.
    Plain strings and os calls: this runs twice per test, and pathlib and buffered files cost more
    than the write itself.
    """
    path = os.fspath(path)
    tmp = os.path.join(os.path.dirname(path), _temp_name())
    fd = os.open(tmp, _OPEN_FLAGS, 0o666)
    try:
        try:
            if isinstance(text, str):  # the per-test files: one encode, no buffer to copy into
                _write_bytes(fd, text.encode("utf-8", "backslashreplace"))
            else:
                _write_all(fd, text)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)  # replaces a symlink at path itself, never its target
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        _fsync_directory(os.path.dirname(path))


def _write_all(fd: int, pieces: Iterable[str], flush_at: int = 1 << 18) -> None:
    """Many small pieces (the batch file's rows) in few system calls; a large one (an answer of many MB) is
    written as it is encoded, never copied into the buffer."""
    pending = bytearray()
    for piece in pieces:
        data = piece.encode("utf-8", "backslashreplace")
        if len(data) >= flush_at:
            _write_bytes(fd, pending)
            pending.clear()
            _write_bytes(fd, data)
            continue
        pending += data
        if len(pending) >= flush_at:
            _write_bytes(fd, pending)
            pending.clear()
    _write_bytes(fd, pending)


def _write_bytes(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


_temp_names = itertools.count()
_TEMP_PREFIX = secrets.token_hex(4)
HOST_TAG = hashlib.sha256(socket.gethostname().encode("utf-8", "surrogatepass")).hexdigest()[:8]
STALE_AFTER_S = 3600.0  # a temporary file of another host (or of a reused pid) this old has no live writer
_TEMP_NAME = re.compile(r"\.([0-9a-f]{8})-([0-9a-f]+)-[0-9a-f]+-\d+" + re.escape(TEMP_SUFFIX) + r"\Z")


def _temp_name() -> str:
    """The writer's identity (host tag and pid: see clean_temp_files), then a random prefix and a counter
    (O_EXCL turns any collision into an error, never into a shared file)."""
    return f".{HOST_TAG}-{os.getpid():x}-{_TEMP_PREFIX}-{next(_temp_names)}{TEMP_SUFFIX}"


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable; POSIX only (Windows cannot open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on directories; the data itself is synced
    finally:
        os.close(fd)


def clean_temp_files(directory: Path, stale_after_s: float = STALE_AFTER_S) -> int:
    """Remove the temporary files a killed run left behind; returns how many went.

    Several sessions may share an output folder, so only stale files go: one whose writer (named in the file's
    name) was a process of this host that is no longer running, or one older than ``stale_after_s`` (another
    host's, whose processes cannot be checked, or a name without a writer).
    """
    removed = 0
    now = time.time()
    for folder, _dirs, files in os.walk(directory):  # does not follow links into other folders
        for name in files:
            if not name.endswith(TEMP_SUFFIX):
                continue
            path = os.path.join(folder, name)
            writer = _TEMP_NAME.match(name)
            import psutil  # here: loading it costs every run 5 ms, and only a killed run's leftovers need it
            try:
                dead = writer is not None and writer[1] == HOST_TAG and not psutil.pid_exists(int(writer[2], 16))
                if dead or now - os.lstat(path).st_mtime > stale_after_s:
                    os.unlink(path)
                    removed += 1
            except OSError:
                pass  # gone already, or not ours to remove: not worth failing a run over
    return removed


_REASONS = {
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EEXIST: "the path exists and is not a folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.ENOSPC: "no space left on the device",
}


def check_writable(directory: Path) -> None:
    """Fail before the run, not after an hour of requests, when results could not be saved."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / _temp_name()
        os.close(os.open(probe, _OPEN_FLAGS, 0o600))
        os.unlink(probe)
    except OSError as exc:
        reason = _REASONS.get(exc.errno or 0, exc.strerror or str(exc))
        raise OutputNotWritable(f"llmbench output folder '{directory}' is not writable: {reason}") from exc


# ---------------------------------------------------------------------------------------------
# The writer


class ResultWriter:
    """Writes per-test files and the batch file; a failed write is recorded, never raised.

    A full disk or a folder gone read-only must not end a run whose results are still being
    counted: the caller warns about `failures` and lists the missing files in its summary.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.failures: list[WriteFailure] = []
        self.written = 0
        self._made: set[str] = set()
        self._subdirs = StemAllocator()

    def write_test(self, result: dict[str, Any], stem: str, subdir: str | None = None) -> list[Path]:
        """Write {stem}_completion.txt and {stem}_result.json; returns the paths written."""
        folder = os.fspath(self.directory)
        if subdir is not None:
            folder = os.path.join(folder, self._subdirs.claim(subdir, subdir))
        if not is_portable_stem(stem):  # stems from assign_stems pass; a hand-made one is made safe
            stem = file_stem(stem, stem)
        base = os.path.join(folder, stem)
        large = len(result.get("response_text") or "") > LARGE_TEXT  # pieces: no copy of a huge answer
        files: list[tuple[str, Callable[[], str | list[str]]]] = [
            (base + COMPLETION_SUFFIX, lambda: completion_pieces(result) if large else render_completion_text(result)),
            (base + RESULT_SUFFIX, lambda: dumps_strict(result)),  # compact: C-speed encoder
        ]
        return [Path(path) for path, render in files if self._write(path, render)]

    def write_batch(self, batch: Batch, started: datetime) -> Path | None:
        """Write batch_results_<UTC start>.json, never over an earlier run's file; durable.

        A naive `started` is taken as local time (Python's rule for astimezone).
        """
        name = f"batch_results_{started.astimezone(timezone.utc):%Y%m%d-%H%M%S}"
        path = self.directory / f"{name}.json"
        number = 1
        while os.path.lexists(path):
            number += 1
            path = self.directory / f"{name}-{number}.json"
        return path if self._write(os.fspath(path), lambda: batch_json(batch), durable=True) else None

    def _write(self, path: str, render: Callable[[], str | Iterable[str]], *, durable: bool = False) -> bool:
        folder = os.path.dirname(path)
        try:
            self._ensure_folder(folder)
            atomic_write_text(path, render(), durable=durable)
        except Exception as exc:  # noqa: BLE001 - a disk error, or a value a hook put in the result that does not render
            self.failures.append(WriteFailure(Path(path), _describe(exc)))
            self._made.discard(folder)  # check the folder again next time
            return False
        self.written += 1
        return True

    def _ensure_folder(self, folder: str) -> None:
        if folder in self._made:
            return
        os.makedirs(folder, exist_ok=True)
        if folder != os.fspath(self.directory) and os.path.islink(folder):
            raise OSError(f"'{folder}' is a symbolic link; not followed")
        self._made.add(folder)


def _describe(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{_REASONS.get(exc.errno, exc.strerror)} [{errno.errorcode.get(exc.errno, exc.errno)}]"
    return f"{type(exc).__name__}: {exc}"

"""Images in chat messages: a content part ``{"type": "image_url", "image_url": {"url": "file:images/cat.png"}}``
names a file relative to the suite, checked when the suite loads (it exists, is an image type, is under the cap)
and sent as a base64 data URL, read just before the request is built (``inline_images``), so a suite stays small
and the server needs no access to the test machine's files; ``http(s):`` and ``data:`` URLs pass through untouched.
"""

from __future__ import annotations

import base64
import mimetypes
from pathlib import Path
from typing import Any

from ..exceptions import ClientError
from .sections import Problems

MAX_IMAGE_BYTES = 20 * 1024 * 1024  # OpenAI's limit per image; a larger file is a mistake, not a test
FILE_SCHEME = "file:"


def image_mime(path: Path) -> str | None:
    """The image type a file's name says (image/png ...), or None for anything else."""
    mime = mimetypes.guess_type(path.name)[0]
    return mime if mime is not None and mime.startswith("image/") else None


def local_images(messages: tuple[dict[str, Any], ...], folder: Path, problems: Problems) -> tuple[dict[str, Any], ...]:
    """The messages with each ``file:`` image URL made absolute; a missing, oversized or non-image file is a problem
    of the suite, found before anything is sent."""
    for i, message in enumerate(messages):
        parts = message.get("content")
        for j, part in enumerate(parts if isinstance(parts, list) else ()):
            url = _file_url(part)
            if url is None:
                continue
            where = f"messages[{i}].content[{j}].image_url.url"
            path = (folder / url[len(FILE_SCHEME):]).resolve()
            if not path.is_file():
                problems.add(f"{where}: no image file {path}")
            elif image_mime(path) is None:
                problems.add(f"{where}: {path.name} is not an image file (.png, .jpg, .gif, .webp)")
            elif path.stat().st_size > MAX_IMAGE_BYTES:
                problems.add(f"{where}: {path.name} has {path.stat().st_size} bytes, over the "
                             f"{MAX_IMAGE_BYTES // (1024 * 1024)} MiB an image may have")
            else:
                part["image_url"]["url"] = FILE_SCHEME + str(path)
    return messages


def inline_images(body: dict[str, Any]) -> None:
    """Give each message of ``body`` (its own copies, as build_body makes them) a content list whose ``file:`` image
    URLs are data URLs; the test case's messages are left as they are. Raises ClientError when a file went missing
    or grew past the cap since the suite loaded: nothing is sent then."""
    for message in body.get("messages") or ():
        parts = message.get("content") if isinstance(message, dict) else None
        if isinstance(parts, list) and any(_file_url(part) for part in parts):
            message["content"] = [_inlined(part, url) if (url := _file_url(part)) else part for part in parts]


def _inlined(part: dict[str, Any], url: str) -> dict[str, Any]:
    return {**part, "image_url": {**part["image_url"], "url": _data_url(Path(url[len(FILE_SCHEME):]))}}


def _file_url(part: Any) -> str | None:
    image = part.get("image_url") if isinstance(part, dict) and part.get("type") == "image_url" else None
    url = image.get("url") if isinstance(image, dict) else None
    return url if isinstance(url, str) and url.startswith(FILE_SCHEME) else None


def _data_url(path: Path) -> str:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_IMAGE_BYTES + 1)
    except OSError as exc:
        raise ClientError(f"cannot read the image {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_IMAGE_BYTES:
        raise ClientError(f"the image {path} is over {MAX_IMAGE_BYTES // (1024 * 1024)} MiB")
    return f"data:{image_mime(path)};base64,{base64.b64encode(data).decode('ascii')}"

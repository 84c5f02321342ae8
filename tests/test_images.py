"""Images in chat: ``file:`` image parts read relative to the suite, checked at load, sent as base64 data URLs;
web URLs untouched."""

from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from openai_stub import OpenAIStub, write_suite

from pytest_llmbench.collect import images
from pytest_llmbench.exceptions import ClientError


def png(width: int = 2, height: int = 2) -> bytes:
    """A real PNG of grey pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def image_test(url: str, test_id: str = "look") -> dict[str, Any]:
    return {"id": test_id, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": url, "detail": "low"}}]}]}


def test_a_local_image_goes_as_a_data_url_and_a_web_url_as_it_is(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    (pytester.path / "suites" / "images").mkdir(parents=True)
    picture = png()
    (pytester.path / "suites" / "images" / "cat.png").write_bytes(picture)
    suite = write_suite(pytester.path / "suites" / "s.json", [
        image_test("file:images/cat.png"), image_test("https://127.0.0.1/cat.png", "web")])
    run = pytester.runpytest("--llmbench-endpoint", stub.url, "--llmbench-suite", str(suite), "-p", "no:cacheprovider")
    run.assert_outcomes(passed=2)
    sent = {tuple(r["body"]["messages"][0]["content"])[1]["image_url"]["url"]: r["body"] for r in stub.requests
            if r["path"].endswith("/chat/completions")}
    encoded = "data:image/png;base64," + base64.b64encode(picture).decode()
    assert set(sent) == {encoded, "https://127.0.0.1/cat.png"}
    assert sent[encoded]["messages"][0]["content"][1]["image_url"]["detail"] == "low"


@pytest.mark.parametrize(("name", "content", "message"), [
    ("missing.png", None, "messages[0].content[1].image_url.url: no image file "),
    ("notes.txt", b"text", "messages[0].content[1].image_url.url: notes.txt is not an image file"),
    ("big.png", b"x" * 101, "messages[0].content[1].image_url.url: big.png has 101 bytes, over the"),
])
def test_a_missing_oversized_or_non_image_file_is_a_suite_error_naming_the_test(
        pytester: pytest.Pytester, stub: OpenAIStub, monkeypatch: pytest.MonkeyPatch, name: str,
        content: bytes | None, message: str) -> None:
    monkeypatch.setattr(images, "MAX_IMAGE_BYTES", 100)
    if content is not None:
        (pytester.path / name).write_bytes(content)
    suite = write_suite(pytester.path / "s.json", [image_test(f"file:{name}")])
    run = pytester.runpytest("--llmbench-endpoint", stub.url, "--llmbench-suite", str(suite), "-p", "no:cacheprovider")
    assert run.ret != 0
    assert f"s.json: tests[0] (id 'look'): {message}" in run.stdout.str()
    assert not [r for r in stub.requests if r["path"].endswith("/chat/completions")]


def test_an_image_gone_since_the_suite_loaded_stops_the_request_and_leaves_the_case_alone(tmp_path: Path) -> None:
    case: list[dict[str, Any]] = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": f"file:{tmp_path / 'x.png'}"}}]}]
    body: dict[str, Any] = {"messages": [dict(message) for message in case]}
    with pytest.raises(ClientError, match=r"cannot read the image .*x\.png"):
        images.inline_images(body)
    (tmp_path / "x.png").write_bytes(png())
    images.inline_images(body)
    assert body["messages"][0]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,iVBOR")
    assert case[0]["content"][0]["image_url"]["url"].startswith("file:")

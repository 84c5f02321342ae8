"""Options and ini keys as a user meets them: ``pytest --help`` lists them all and does not crash."""

from __future__ import annotations

import pytest

from pytest_llmbench.options import OPTIONS


def test_help_lists_every_option_and_ini_key(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    assert result.ret == 0, result.stderr.str()
    text = result.stdout.str()
    for opt in OPTIONS:
        assert opt.flag in text and opt.dest in text
    assert "p50_latency_ms:10%" in text

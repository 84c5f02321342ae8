"""The embedded llama-cpp-python server and per-request server timings: what it sends, and that nothing is made up.

llama.cpp's own ``llama-server`` sends a ``timings`` object; the Python server the plugin embeds does not (its
llama.cpp timings go to its log only). The run must then say so and leave the fields empty.
"""

from __future__ import annotations

import json

import pytest
from run_files import batch_of
from test_real_llm import run_quickstart, shared_model_cache  # noqa: F401  (the model cache fixture)

pytestmark = [pytest.mark.real_llm, pytest.mark.timeout(900), pytest.mark.usefixtures("local_extra")]


def test_the_embedded_server_sends_no_timings_and_none_are_invented(pytester: pytest.Pytester) -> None:
    run, output = run_quickstart(pytester, "--llmbench-stream", "--llmbench-server-timing")
    run.stdout.fnmatch_lines(["server timing: none sent*"])
    found = [json.loads(p.read_text(encoding="utf-8")) for p in output.glob("*_result.json")]
    assert found and all(r["server_timing"] is None and r["prefill_time"] is None for r in found)
    assert all(r["request"]["include_metrics"] is True for r in found)  # asked, and the server took the field
    assert batch_of(output)["server_timing"]["sources"] == {}

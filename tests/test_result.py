"""The result record and its declared metrics: one shape from the client to the batch file."""

from __future__ import annotations

import dataclasses

from pytest_llmbench.result import METRICS, TestResult
from pytest_llmbench.session.recorder import ROW_FIELDS


def test_every_declared_metric_is_a_result_field_with_a_unique_key():
    fields = {f.name for f in dataclasses.fields(TestResult)}
    assert [m.field for m in METRICS if m.field not in fields] == []
    assert len({m.key for m in METRICS}) == len(METRICS)


def test_every_scalar_metric_is_a_batch_row_column():
    assert {m.field for m in METRICS if not m.per_chunk} <= set(ROW_FIELDS)

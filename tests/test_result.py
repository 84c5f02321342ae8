"""The result record and its declared metrics: one shape from the client to the batch file."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import cast

from pytest_llmbench.batch import RunInfo, row_value
from pytest_llmbench.metrics.slo import parse_run_slo
from pytest_llmbench.result import METRICS, TestResult
from pytest_llmbench.session.handoff import Delivery
from pytest_llmbench.session.recorder import ROW_FIELDS, Recorder


def test_every_declared_metric_is_a_result_field_with_a_unique_key() -> None:
    fields = {f.name for f in dataclasses.fields(TestResult)}
    assert [m.field for m in METRICS if m.field not in fields] == []
    assert len({m.key for m in METRICS}) == len(METRICS)


def test_every_scalar_metric_is_a_batch_row_column() -> None:
    assert {m.field for m in METRICS if not m.per_chunk} <= set(ROW_FIELDS)


def test_schedule_lag_reaches_statistics_rows_completion_text_and_run_slos(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path)
    for number, lag in enumerate((0.002, 0.004, None)):
        result = TestResult(test_id=f"t{number}", test_name=f"t{number}", success=True, execution_time=0.1,
                            schedule_lag=lag)
        recorder.record(Delivery(result, f"t{number}"), passed=True)

    batch = recorder.build_batch(run=cast(RunInfo, {}), partial_reason=None, wall_time_s=1.0)

    assert [row_value(row, "schedule_lag") for row in batch["tests"]] == [0.002, 0.004, None]
    aggregate = batch["aggregate"]
    assert (aggregate["count_schedule_lag"], aggregate["mean_schedule_lag_ms"]) == (2, 3.0)
    assert aggregate["max_schedule_lag_ms"] == 4.0
    assert "schedule_lag: 0.004 s" in (tmp_path / "t1_completion.txt").read_text()
    assert "schedule_lag" not in (tmp_path / "t2_completion.txt").read_text()  # nothing planned: no line
    assert parse_run_slo("schedule_lag_p99=5ms").key == "p99_schedule_lag_ms"

"""The end of a run on the controller: the run's metadata, the HTML report, the warnings and the summary.

Apart from controller.py, which decides *when* these happen; here is *what* each one writes. The order the
controller keeps is the guarantee: batch file first, then the report, then warnings (which ``-W error`` may raise).
"""

from __future__ import annotations

import platform
import socket
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from .._version import __version__
from ..batch import Batch, RunInfo
from ..exceptions import LLMBenchWarning
from ..http.redact import Secrets, redact_headers
from ..metrics.gates import GateResult, Gates
from ..metrics.server.section import summary_lines
from ..metrics.workload import workload_lines
from ..options import Settings
from ..session.endpoint import Endpoint
from ..session.load.summary import capacity_lines, load_lines
from ..session.report_html import DEFAULT_NAME, write_report
from ..session.run_folder import run_label
from ..session.target import Target
from .terminal import safe, write_gates, write_summary


def run_metadata(config: pytest.Config, settings: Settings, endpoint: Endpoint | None, target: Target | None,
                 run_dir: Path | None, started: datetime) -> RunInfo:
    """The batch's ``run`` section: what ran where, with every option as given and every secret masked."""
    options = {k: v for k, v in vars(settings).items() if k not in ("api_key", "header")}
    options = {k: (str(v) if isinstance(v, Path) else [str(x) for x in v] if isinstance(v, tuple) else v)
               for k, v in options.items()}
    options["api_key"] = "***" if settings.api_key else None
    options["header"] = [f"{k}: {v}" for k, v in redact_headers(settings.headers()).items()]
    secrets = Secrets(settings.secrets())
    for key in ("endpoint", "judge_endpoint"):  # a URL may carry user:password@ or ?api_key=
        options[key] = options[key] and secrets.redact(options[key])
    return {
        "plugin_version": __version__,
        "pytest_version": pytest.__version__,
        "python_version": platform.python_version(),
        "hostname": socket.gethostname(),
        "endpoint": secrets.redact(endpoint.url) if endpoint else options["endpoint"],
        "target": target.to_dict() if target is not None else None,
        "run_dir": str(run_dir) if run_dir is not None else None,
        "models": list(settings.model) or ([endpoint.model] if endpoint and endpoint.model else []),
        "workers": config.getoption("numprocesses", None) or 0,
        "start_time": started.isoformat(timespec="seconds"),
        "end_time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "options": options,
    }


def write_html_report(config: pytest.Config, settings: Settings, batch: Batch, folder: Path,
                      started: datetime, problems: list[str], gates: Gates | None = None) -> Path | None:
    """The HTML report, after the batch file is safe on disk: a report that fails is a warning, nothing more.
    With ``--llmbench-compare``, the baseline's distributions are drawn beside the run's."""
    html = settings.html
    if (html or "").strip().lower() == "none" or len(batch.get("tests") or ()) < 2:
        return None
    # the default goes into the run's folder; a given path is relative to where pytest started
    path = config.invocation_params.dir / html if html else folder / DEFAULT_NAME
    try:
        baseline = None if gates is None or gates.baseline is None or gates.baseline_path is None else (
            gates.baseline, run_label(gates.baseline_path, named_folder=False))
        return write_report([(batch, started.strftime("%Y-%m-%d %H:%M:%S UTC"), folder)], path, baseline=baseline)
    except Exception as exc:  # noqa: BLE001 - a bad value from a hook, a full disk: the batch is safe already
        problems.append(f"could not write the HTML report {path}: {type(exc).__name__}: {exc}")
        return None


def emit_warnings(messages: list[str]) -> list[str]:
    """The run's warnings, through the warnings machinery (pytest's summary lists them); returns those that a
    filter turned into errors (-W error), which the caller reports once the batch file and summary are safe."""
    raised = []
    for message in messages:
        try:
            warnings.warn(LLMBenchWarning(message), stacklevel=1)
        except Warning:
            raised.append(message)
    return raised


def fail_session(session: pytest.Session) -> None:
    """A non-zero exit status for a run whose tests passed but whose record is not what it should be."""
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def write_end_summary(reporter: Any, batch: Batch, files: list[str], gate_result: GateResult | None,
                      batch_problem: str | None, warnings_as_errors: list[str]) -> None:
    """The llmbench part of pytest's terminal summary: tables, load and server lines, gates, lost files."""
    write_summary(reporter, batch, files)
    hit_rate = (batch.get("server") or {}).get("prefix_cache_hit_rate")
    lines = load_lines(batch.get("load"), batch.get("sweep")) + capacity_lines(batch.get("capacity"))
    for line in lines + workload_lines(batch.get("workload"), hit_rate):
        reporter.write_line(safe(line))
    if batch.get("server"):
        for line in summary_lines(batch["server"]):
            reporter.write_line(safe(line))
    if gate_result is not None:
        write_gates(reporter, gate_result)
    if batch_problem is not None:
        reporter.write_line(f"batch file NOT WRITTEN: {safe(batch_problem)}", red=True, bold=True)
    for message in warnings_as_errors:
        reporter.write_line(f"FAILED llmbench warning raised as an error (-W): {safe(message)}", red=True, bold=True)


def lost_reason(report: pytest.TestReport) -> str:
    """Why a test ended without a result: the exception's own line (a traceback's first line is only code)."""
    crash = getattr(report.longrepr, "reprcrash", None)
    lines = [line for line in str(report.longrepr).splitlines() if line.strip()]
    message = crash.message if crash is not None else (lines[-1] if lines else "no result")
    return message.splitlines()[0] if message else "no result"

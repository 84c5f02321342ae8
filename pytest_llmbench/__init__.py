"""pytest-llmbench: JSON suites of LLM prompts as pytest items against OpenAI-compatible endpoints.

The public API: what hooks receive and what ordinary tests and scripts may use directly.
"""

from ._version import __version__
from .collect.suite import Suite, TestCase, load_suite
from .exceptions import (
    ClientError,
    ConfigurationError,
    EndpointUnreachable,
    LLMBenchError,
    LLMBenchWarning,
    StorageError,
    SuiteError,
)
from .http.client import ClientConfig, LLMClient
from .metrics.hardware.monitor import Measurement, PerformanceMonitor
from .result import ApiError, Attempt, TestResult
from .session.progress import ExecutionProgress

__all__ = [
    "ApiError", "Attempt", "ClientConfig", "ClientError", "ConfigurationError", "EndpointUnreachable",
    "ExecutionProgress", "LLMBenchError", "LLMBenchWarning", "LLMClient", "Measurement", "PerformanceMonitor",
    "StorageError", "Suite", "SuiteError", "TestCase", "TestResult", "__version__", "load_suite",
]
